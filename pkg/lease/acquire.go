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
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// AcquireOption adjusts one acquisition.
type AcquireOption func(*acquireOptions)

type acquireOptions struct {
	owner client.Object
}

// WithOwner makes a Lease created by this acquisition owned by owner (an
// ownerReference, and OwnerKindLabel and OwnerUIDLabel), so it is garbage
// collected with it. owner must have a UID.
func WithOwner(owner client.Object) AcquireOption {
	return func(o *acquireOptions) { o.owner = owner }
}

// Acquire blocks until this Client holds the lock, the Lease key, and
// returns it. It fails with a *TimeoutError naming the holder when the
// context or Options.AcquireTimeout ends first: the lock was not taken.
// If they end while a write taking it is in flight (or that write's
// response is lost), the error is an *update.UnknownOutcomeError
// (errors.Is(err, update.ErrOutcomeUnknown)) around it: the lock may be
// held under this Client's identity, with no one renewing it, until its
// TTL passes. The lock is released when ctx is cancelled after Acquire
// returned, or by Release.
func (c *Client) Acquire(ctx context.Context, key client.ObjectKey, opts ...AcquireOption) (*Lock, error) {
	return c.acquire(ctx, key, true, opts)
}

// TryAcquire takes the lock, the Lease key, if it is free (or expired) and returns a
// *HeldError at once otherwise.
func (c *Client) TryAcquire(ctx context.Context, key client.ObjectKey, opts ...AcquireOption) (*Lock, error) {
	return c.acquire(ctx, key, false, opts)
}

// acquire checks the key, applies opts and, when waiting, the acquire
// timeout, and runs the acquisition loop.
func (c *Client) acquire(ctx context.Context, key client.ObjectKey, wait bool, opts []AcquireOption) (*Lock, error) {
	if key.Namespace == "" || key.Name == "" {
		return nil, fmt.Errorf("acquiring lock %s: a lock needs a namespace and a name", key)
	}
	var o acquireOptions
	for _, opt := range opts {
		opt(&o)
	}
	parent := ctx
	if c.opts.AcquireTimeout > 0 && wait {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.AcquireTimeout)
		defer cancel()
	}
	start := time.Now()
	l, err := c.acquireLoop(ctx, parent, key, wait, o.owner)
	if err == nil {
		metrics.LockWait.Observe(time.Since(start).Seconds())
	}
	return l, err
}

// handoff times, for jobstate_lock_handoff_seconds, an acquisition that
// found the lock held and then saw it released: from seeing the release to
// holding the lock. Real time, not Options.Clock: it is a measurement.
type handoff struct {
	held  bool      // the Lease was seen held by someone
	freed time.Time // when it was then seen released; zero: not (yet)
}

// saw records the holder of the Lease as read.
func (h *handoff) saw(holder string) {
	switch {
	case holder != "":
		h.held, h.freed = true, time.Time{}
	case h.held && h.freed.IsZero():
		h.freed = time.Now()
	}
}

// raced records that another waiter took the lock first: its release, if
// any, is a new one.
func (h *handoff) raced() { h.freed = time.Time{} }

// acquired records that the lock is held.
func (h *handoff) acquired() {
	if !h.freed.IsZero() {
		metrics.LockHandoff.Observe(time.Since(h.freed).Seconds())
	}
}

// acquireLoop is the acquisition loop. The steps, and what each protects:
//
//  1. Read the Lease live. Missing: create it held by us (AlreadyExists: a
//     racer created it first, go to 1).
//  2. Note the local time whenever its resourceVersion changes: the TTL of
//     a silent holder is counted from there, on our clock only.
//  3. Free (holderIdentity empty) or expired by that rule: take it with a
//     write preconditioned on the resourceVersion read in 1, incrementing
//     leaseTransitions — the fencing token. Conflict: someone else moved
//     first, go to 1.
//  4. Held: watch the Lease from that resourceVersion until it changes or
//     its TTL would pass, then go to 1.
//
// ctx bounds the wait; a Lock it returns is released when parent ends.
func (c *Client) acquireLoop(ctx, parent context.Context, key client.ObjectKey, wait bool, owner client.Object) (*Lock, error) {
	start := c.opts.Clock.Now()
	var holder string
	var seen *coordinationv1.Lease // the Lease as the watch delivered it
	var sinceRelease handoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, &TimeoutError{Key: key, Holder: holder, Waited: c.opts.Clock.Since(start), Err: err}
		}
		// Step 1 (the watch already answered it, if it delivered the Lease).
		lease, err := c.read(ctx, key, seen)
		seen = nil
		if apierrors.IsNotFound(err) {
			l, err := c.createHeld(ctx, parent, key, owner)
			if !apierrors.IsAlreadyExists(err) {
				return l, c.wrapWrite(ctx, err, key, holder, start)
			}
			continue // a racer created it first
		}
		if err != nil {
			return nil, c.wrap(ctx, err, key, holder, start)
		}
		// Step 2.
		now := c.opts.Clock.Now()
		record := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
		holder = record.HolderIdentity
		sinceRelease.saw(holder)
		expiry := c.observe(key, lease.ResourceVersion, now).Add(time.Duration(record.LeaseDurationSeconds) * time.Second)
		// Step 3.
		if holder == "" || !now.Before(expiry) {
			l, err := c.takeHeld(ctx, parent, lease, record)
			if err == nil {
				sinceRelease.acquired()
			}
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				return l, c.wrapWrite(ctx, err, key, holder, start)
			}
			sinceRelease.raced()
			continue // someone else moved first, or the Lease vanished
		}
		if !wait {
			return nil, &HeldError{Key: key, Holder: holder}
		}
		// Step 4.
		seen = c.waitForChange(ctx, lease, expiry)
	}
}

// read returns seen if it is set, else the Lease read live.
func (c *Client) read(ctx context.Context, key client.ObjectKey, seen *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	if seen != nil {
		return seen, nil
	}
	lease := &coordinationv1.Lease{}
	return lease, c.c.Get(ctx, key, lease)
}

// createHeld creates the Lease held by us and starts holding it.
func (c *Client) createHeld(ctx, parent context.Context, key client.ObjectKey, owner client.Object) (*Lock, error) {
	sent := c.opts.Clock.Now()
	lease, err := c.create(ctx, key, owner)
	if err != nil {
		return nil, err
	}
	return c.hold(parent, lease, sent), nil
}

// takeHeld takes over the Lease from the holder in old and starts holding
// it.
func (c *Client) takeHeld(ctx, parent context.Context, lease *coordinationv1.Lease, old *resourcelock.LeaderElectionRecord) (*Lock, error) {
	sent := c.opts.Clock.Now()
	taken, err := c.take(ctx, lease, old)
	if err != nil {
		return nil, err
	}
	return c.hold(parent, taken, sent), nil
}

// observe records that the Lease key was seen at resourceVersion rv at now,
// and returns when this Client first saw it at rv.
func (c *Client) observe(key client.ObjectKey, rv string, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.observed[key]
	if !ok || o.resourceVersion != rv {
		if len(c.observed) >= maxObserved {
			// Forgetting only makes waiters wait longer, never less.
			clear(c.observed)
		}
		o = observation{resourceVersion: rv, at: now}
		c.observed[key] = o
	}
	return o.at
}

// wrap says what failed: the wait, if ctx ended, else the acquisition.
// A nil err stays nil.
func (c *Client) wrap(ctx context.Context, err error, key client.ObjectKey, holder string, start time.Time) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &TimeoutError{Key: key, Holder: holder, Waited: c.opts.Clock.Since(start), Err: ctxErr}
	}
	return fmt.Errorf("acquiring lock %s: %w", key, err)
}

// wrapWrite is wrap for the error of a write that would have taken the
// lock: unless the API server refused it, whether it took the lock is
// unknown, and the error is an *update.UnknownOutcomeError around what
// wrap says (the Lease's holder tells; the TTL frees it if it did). A
// *TimeoutError alone means the lock was not taken.
func (c *Client) wrapWrite(ctx context.Context, err error, key client.ObjectKey, holder string, start time.Time) error {
	if err == nil || update.Refused(err) {
		return c.wrap(ctx, err, key, holder, start)
	}
	return &update.UnknownOutcomeError{Kind: "Lease", Key: key, Err: c.wrap(ctx, err, key, holder, start)}
}

func (c *Client) record(transitions int) resourcelock.LeaderElectionRecord {
	now := metav1.NewTime(c.opts.Clock.Now())
	return resourcelock.LeaderElectionRecord{
		HolderIdentity:       c.opts.Identity,
		LeaseDurationSeconds: int(c.opts.TTL / time.Second),
		AcquireTime:          now,
		RenewTime:            now,
		LeaderTransitions:    transitions,
	}
}

func (c *Client) create(ctx context.Context, key client.ObjectKey, owner client.Object) (*coordinationv1.Lease, error) {
	rec := c.record(1)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{}},
		Spec:       resourcelock.LeaderElectionRecordToLeaseSpec(&rec),
	}
	for k, v := range c.opts.Labels {
		lease.Labels[k] = v
	}
	if owner != nil {
		gvk, err := apiutil.GVKForObject(owner, c.c.Scheme())
		if err != nil {
			return nil, err
		}
		lease.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)}
		lease.Labels[OwnerKindLabel] = gvk.Kind
		lease.Labels[OwnerUIDLabel] = string(owner.GetUID())
	}
	return lease, c.c.Create(ctx, lease)
}

// Labels of Leases created WithOwner: the owner's kind and UID (names may
// be longer than a label value allows), to find an object's locks with a
// label selector.
const (
	OwnerKindLabel = "lease.jobstate.dev/owner-kind"
	OwnerUIDLabel  = "lease.jobstate.dev/owner-uid"
)

func (c *Client) take(ctx context.Context, lease *coordinationv1.Lease, old *resourcelock.LeaderElectionRecord) (*coordinationv1.Lease, error) {
	lease = lease.DeepCopy()
	rec := c.record(old.LeaderTransitions + 1)
	lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&rec)
	return lease, c.c.Update(ctx, lease)
}

// waitForChange returns when the Lease changes after lease's
// resourceVersion — with the changed Lease, so the caller need not read it
// again — when until passes, or when ctx ends. A watch that cannot start or
// breaks also returns (after a short pause): then the caller re-reads.
func (c *Client) waitForChange(ctx context.Context, lease *coordinationv1.Lease, until time.Time) *coordinationv1.Lease {
	timer := c.opts.Clock.NewTimer(until.Sub(c.opts.Clock.Now()))
	defer timer.Stop()
	w, err := c.c.Watch(ctx, &coordinationv1.LeaseList{}, client.InNamespace(lease.Namespace),
		client.MatchingFields{"metadata.name": lease.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: lease.ResourceVersion}})
	if err != nil {
		if apierrors.IsForbidden(err) {
			// Waiting still works, by polling: say once why it is slow.
			c.watchRefused.Do(func() {
				logf.FromContext(ctx).Error(err, "Cannot watch Leases: waiting for held locks by re-reading every 100ms; grant watch on leases")
			})
		}
		select {
		case <-ctx.Done():
		case <-timer.C():
		case <-c.opts.Clock.After(100 * time.Millisecond):
		}
		return nil
	}
	defer w.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C():
	case ev, ok := <-w.ResultChan():
		if changed, isLease := ev.Object.(*coordinationv1.Lease); ok && ev.Type == watch.Modified && isLease {
			return changed
		}
		if !ok || ev.Type == watch.Error {
			// For example 410 Gone: the resourceVersion left the watch
			// cache. Pause before re-reading rather than spin.
			select {
			case <-ctx.Done():
			case <-timer.C():
			case <-c.opts.Clock.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// hold starts renewing a freshly taken Lease and returns its Lock. sent is
// when the write that took it was sent: the holder counts its TTL from
// there, never later than any waiter can have seen the write.
func (c *Client) hold(parent context.Context, lease *coordinationv1.Lease, sent time.Time) *Lock {
	c.mu.Lock()
	delete(c.observed, client.ObjectKeyFromObject(lease)) // only waiters need it; keeps the map small
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	l := &Lock{
		client: c, key: client.ObjectKeyFromObject(lease), lease: lease,
		ctx: ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}),
		acquired: time.Now(),
	}
	l.token.Store(transitions(lease))
	go l.renew(parent, sent)
	return l
}

// AcquireAll acquires every lock in keys, one at a time in sorted order —
// the same order for every caller, so two callers wanting overlapping sets
// cannot deadlock — and returns them in that order. On failure it releases
// what it had taken.
func (c *Client) AcquireAll(ctx context.Context, keys []client.ObjectKey, opts ...AcquireOption) (Locks, error) {
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, compareKeys)
	sorted = slices.Compact(sorted)
	var held Locks
	for _, key := range sorted {
		l, err := c.Acquire(ctx, key, opts...)
		if err != nil {
			_ = held.Release(context.WithoutCancel(ctx))
			return nil, err
		}
		held = append(held, l)
	}
	for _, l := range held {
		if l.ctx.Err() != nil {
			_ = held.Release(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("acquiring locks %v: lock %s was lost while waiting for the others", sorted, l.key)
		}
	}
	return held, nil
}

// compareKeys orders keys by namespace, then name.
func compareKeys(a, b client.ObjectKey) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}
