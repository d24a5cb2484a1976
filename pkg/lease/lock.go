/*
Copyright 2026 The jobstate Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/metrics"
)

// Lock is a held lock.
type Lock struct {
	client *Client
	key    client.ObjectKey
	token  atomic.Int64
	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{} // closed by Release
	done   chan struct{} // closed when renew returns

	writeMu sync.Mutex // serializes our writes of the Lease (renewal, RaiseToken)
	mu      sync.Mutex
	lease   *coordinationv1.Lease // as last written by us
	lost    bool
	once    sync.Once

	// acquired is when the lock was taken (real time, for
	// jobstate_lock_hold_seconds); ended, guarded by mu, that the hold
	// ended: released or lost, whichever came first.
	acquired time.Time
	ended    bool
}

// Key names the Lease.
func (l *Lock) Key() client.ObjectKey { return l.key }

// Name is the Lease's name.
func (l *Lock) Name() string { return l.key.Name }

// Token is the fencing token of this acquisition: the Lease's
// leaseTransitions, larger than that of every earlier acquisition.
func (l *Lock) Token() int64 { return l.token.Load() }

// Lost is closed when the lock is no longer held: renewal failed or was
// rejected, or it was released.
func (l *Lock) Lost() <-chan struct{} { return l.ctx.Done() }

// Context is cancelled when Lost is closed. Do the guarded work with it.
func (l *Lock) Context() context.Context { return l.ctx }

// renew renews the Lease every RenewInterval until Release, the Acquire
// context ends (then it releases), or the lock is lost. The lock counts as
// lost once TTL - RenewInterval has passed since the last renewal was sent
// without another one succeeding — enforced by a timer, and by bounding each
// renewal by that deadline — so the holder stops acting at least
// RenewInterval before any waiter may take over.
func (l *Lock) renew(parent context.Context, lastRenew time.Time) {
	defer close(l.done)
	c := l.client
	budget := c.opts.TTL - c.opts.RenewInterval
	ticker := c.opts.Clock.NewTicker(c.opts.RenewInterval)
	defer ticker.Stop()
	// The deadline fires on its own goroutine: nothing this loop waits for
	// (a slow renewal, RaiseToken holding writeMu) can hold it back.
	deadline := c.opts.Clock.AfterFunc(budget-c.opts.Clock.Since(lastRenew), l.markLost)
	defer deadline.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done(): // lost (the deadline) or released
			return
		case <-parent.Done():
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.TTL)
			_ = l.release(ctx)
			cancel()
			return
		case <-ticker.C():
		}
		remaining := budget - c.opts.Clock.Since(lastRenew)
		if remaining <= 0 {
			l.markLost()
			return
		}
		sent := c.opts.Clock.Now()
		ctx, cancel := context.WithTimeout(l.ctx, min(c.opts.RenewInterval, remaining))
		err := l.renewOnce(ctx)
		cancel()
		switch {
		case err == nil:
			lastRenew = sent
			deadline.Reset(budget - c.opts.Clock.Since(lastRenew))
		case errors.Is(err, errLost):
			l.markLost()
			return
		}
	}
}

// errLost: the Lease is no longer ours. The renewal and release actions
// return it, which ends the updater's retries without a write.
var errLost = errors.New("lock was taken over")

// renewOnce writes a new renewTime through the Client's renewals updater:
// after a conflict it re-reads the Lease and renews again, for as long as
// the Lease is still ours and ctx allows. errLost: it is not ours any more.
func (l *Lock) renewOnce(ctx context.Context) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	c := l.client
	lease := l.current()
	err := c.renewals.Update(ctx, lease, func(lease *coordinationv1.Lease) error {
		if !l.isOurs(lease) {
			return errLost
		}
		now := metav1.NewMicroTime(c.opts.Clock.Now())
		lease.Spec.RenewTime = &now
		return nil
	})
	switch {
	case err == nil:
		l.setLease(lease)
		return nil
	case apierrors.IsNotFound(err):
		return errLost // the Lease was deleted
	}
	return err
}

// RaiseToken makes this lock's fencing token larger than floor by raising
// the Lease's leaseTransitions, if it is not already. A holder needs it when
// it finds a larger token stored in a guarded object than it was given —
// which happens only if the Lease was deleted and created anew, restarting
// its count. It fails if the lock is no longer held.
func (l *Lock) RaiseToken(ctx context.Context, floor int64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.Token() > floor {
		return nil
	}
	if floor >= math.MaxInt32 {
		return fmt.Errorf("raising the token of lock %s: %d is the largest leaseTransitions can hold", l.key, floor)
	}
	if l.ctx.Err() != nil {
		return fmt.Errorf("raising the token of lock %s: %w", l.key, errLost)
	}
	// Bounded like a renewal, so the renew loop is not kept waiting long.
	ctx, cancel := context.WithTimeout(ctx, l.client.opts.RenewInterval)
	defer cancel()
	lease := l.current()
	raised := int32(floor + 1)
	lease.Spec.LeaseTransitions = &raised
	if err := l.client.c.Update(ctx, lease); err != nil {
		return fmt.Errorf("raising the token of lock %s: %w", l.key, err)
	}
	l.token.Store(int64(raised))
	l.setLease(lease)
	return nil
}

func (l *Lock) isOurs(lease *coordinationv1.Lease) bool {
	return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == l.client.opts.Identity &&
		transitions(lease) == l.Token()
}

// transitions is the Lease's leaseTransitions: the token of its holder.
func transitions(lease *coordinationv1.Lease) int64 {
	if lease.Spec.LeaseTransitions == nil {
		return 0
	}
	return int64(*lease.Spec.LeaseTransitions)
}

// current is a copy of the Lease as we last wrote it.
func (l *Lock) current() *coordinationv1.Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lease.DeepCopy()
}

func (l *Lock) setLease(lease *coordinationv1.Lease) {
	l.mu.Lock()
	l.lease = lease
	l.mu.Unlock()
}

func (l *Lock) markLost() {
	l.mu.Lock()
	l.lost = true
	first := l.end()
	l.mu.Unlock()
	if first {
		metrics.LockLosses.Inc()
	}
	l.cancel()
}

// end records, the first time it is called, that the hold ended, and
// reports whether this was the first time. The caller holds mu.
func (l *Lock) end() bool {
	if l.ended {
		return false
	}
	l.ended = true
	metrics.LockHold.Observe(time.Since(l.acquired).Seconds())
	return true
}

// Release gives the lock up: the Lease's holder is cleared (the Lease
// stays, so the next acquisition's token keeps growing), waiters are woken
// by their watch, and Lost is closed. Releasing a lost or released lock
// does nothing, nor does releasing one whose Lease someone else has taken
// or deleted meanwhile. If the Lease kept changing under the release while
// still ours, the error wraps an *update.ConflictError (apierrors.IsConflict
// reports true); Lost is closed all the same and the Lease stays held by
// this identity until its TTL passes.
func (l *Lock) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.cancel() // also ends a renewal in flight, so this does not wait for it
		<-l.done
		err = l.release(ctx)
	})
	return err
}

// release clears the Lease's holder through the Client's releases updater,
// which re-reads the Lease after a conflict and stops when it is not ours.
func (l *Lock) release(ctx context.Context) error {
	// Stop the guarded work before anyone else can hold the lock.
	l.cancel()
	l.writeMu.Lock() // after any RaiseToken, so Token() is current
	defer l.writeMu.Unlock()
	l.mu.Lock()
	lost, lease := l.lost, l.lease.DeepCopy()
	l.end()
	l.mu.Unlock()
	if lost {
		return nil
	}
	c := l.client
	err := c.releases.Update(ctx, lease, func(lease *coordinationv1.Lease) error {
		if !l.isOurs(lease) {
			return errLost
		}
		rec := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
		rec.HolderIdentity = ""
		rec.RenewTime = metav1.NewTime(c.opts.Clock.Now())
		lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(rec)
		return nil
	})
	if err == nil || errors.Is(err, errLost) || apierrors.IsNotFound(err) {
		return nil // released, or no longer ours to release
	}
	return fmt.Errorf("releasing lock %s: %w", l.key, err)
}

// Locks are several locks held together; see AcquireAll.
type Locks []*Lock

// Release releases every lock, in reverse order of acquisition.
func (ls Locks) Release(ctx context.Context) error {
	var errs []error
	for i := len(ls) - 1; i >= 0; i-- {
		errs = append(errs, ls[i].Release(ctx))
	}
	return errors.Join(errs...)
}
