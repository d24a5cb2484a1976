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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Defaults of Options.
const (
	DefaultTTL = 15 * time.Second
)

// Options configure a Client. They are validated by New.
type Options struct {
	// Identity names the holder in the Lease's holderIdentity; required and
	// unique per holder (two holders with one identity are one holder).
	Identity string

	// TTL is the Lease's leaseDurationSeconds: how long after the holder's
	// last renewal, on a waiter's own clock, a waiter may take the lock
	// over. Whole seconds, at least 1s. Default DefaultTTL.
	TTL time.Duration

	// RenewInterval is how often the holder renews: at most TTL/3, so that
	// at least one renewal falls well before the renew deadline. Default
	// TTL/3. A holder that cannot renew for TTL - RenewInterval declares the
	// lock lost.
	RenewInterval time.Duration

	// AcquireTimeout bounds Acquire. Zero: only the context bounds it.
	AcquireTimeout time.Duration

	// Clock is the time source. Default: the real clock.
	Clock clock.WithTickerAndDelayedExecution

	// Labels are set on Leases this Client creates.
	Labels map[string]string
}

// ErrTimeout is matched (errors.Is) by *TimeoutError.
var ErrTimeout = errors.New("timed out acquiring lock")

// ErrHeld is matched (errors.Is) by *HeldError.
var ErrHeld = errors.New("lock is held")

// TimeoutError: Acquire gave up because its timeout or context ended.
type TimeoutError struct {
	// Name is the Lease, Holder its holder when Acquire gave up.
	Name   string
	Holder string
	Waited time.Duration
	// Err is the context's error.
	Err error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s waiting for lock %s: held by %q", e.Waited.Round(time.Millisecond), e.Name, e.Holder)
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns the context's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// HeldError: TryAcquire found the lock held by someone else.
type HeldError struct {
	Name   string
	Holder string
}

func (e *HeldError) Error() string { return fmt.Sprintf("lock %s is held by %q", e.Name, e.Holder) }

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Client acquires locks in one namespace for one holder identity.
type Client struct {
	c         client.WithWatch
	namespace string
	opts      Options

	mu       sync.Mutex
	observed map[string]observation // by Lease name
}

// maxObserved bounds the observations a Client keeps.
const maxObserved = 4096

// observation is when this Client first saw a Lease at a resourceVersion,
// on its own clock: the start of the TTL of a holder that has gone silent.
// It is kept across calls so that TryAcquire, called again and again, can
// see a Lease expire.
type observation struct {
	resourceVersion string
	at              time.Time
}

// New validates opts and returns a Client for Leases in namespace.
func New(c client.WithWatch, namespace string, opts Options) (*Client, error) {
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.RenewInterval == 0 {
		opts.RenewInterval = opts.TTL / 3
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	switch {
	case c == nil:
		return nil, errors.New("lease: client must not be nil")
	case namespace == "":
		return nil, errors.New("lease: namespace is required")
	case opts.Identity == "":
		return nil, errors.New("lease: Options.Identity is required: it is the Lease's holderIdentity and must be unique per holder")
	case opts.TTL < time.Second || opts.TTL%time.Second != 0:
		return nil, fmt.Errorf("lease: Options.TTL must be whole seconds, at least 1s (leaseDurationSeconds), got %s", opts.TTL)
	case opts.RenewInterval <= 0 || 3*opts.RenewInterval > opts.TTL:
		return nil, fmt.Errorf("lease: Options.RenewInterval must be positive and at most TTL/3 (%s), so that a renewal falls well before the renew deadline TTL - RenewInterval; got %s", opts.TTL/3, opts.RenewInterval)
	case opts.AcquireTimeout < 0:
		return nil, fmt.Errorf("lease: Options.AcquireTimeout must not be negative, got %s", opts.AcquireTimeout)
	}
	return &Client{c: c, namespace: namespace, opts: opts, observed: map[string]observation{}}, nil
}

// Identity is the holder identity of this Client.
func (c *Client) Identity() string { return c.opts.Identity }

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

// Acquire blocks until this Client holds the lock name, and returns it. It
// fails with a *TimeoutError naming the holder when the context or
// Options.AcquireTimeout ends first. The lock is released when ctx is
// cancelled after Acquire returned, or by Release.
func (c *Client) Acquire(ctx context.Context, name string, opts ...AcquireOption) (*Lock, error) {
	return c.acquire(ctx, name, true, opts)
}

// TryAcquire takes the lock name if it is free (or expired) and returns a
// *HeldError at once otherwise.
func (c *Client) TryAcquire(ctx context.Context, name string, opts ...AcquireOption) (*Lock, error) {
	return c.acquire(ctx, name, false, opts)
}

// acquire is the acquisition loop. The steps, and what each protects:
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
func (c *Client) acquire(ctx context.Context, name string, wait bool, opts []AcquireOption) (*Lock, error) {
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
	start := c.opts.Clock.Now()
	var holder string
	var seen *coordinationv1.Lease // the Lease as the watch delivered it
	for {
		if err := ctx.Err(); err != nil {
			return nil, &TimeoutError{Name: name, Holder: holder, Waited: c.opts.Clock.Since(start), Err: err}
		}
		// Step 1 (the watch already answered it, if it delivered the Lease).
		lease, err := seen, error(nil)
		if seen == nil {
			lease = &coordinationv1.Lease{}
			err = c.c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, lease)
		}
		seen = nil
		if apierrors.IsNotFound(err) {
			sent := c.opts.Clock.Now()
			lease, err = c.create(ctx, name, o.owner)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, c.wrap(ctx, err, name, holder, start)
			}
			return c.hold(parent, lease, sent), nil
		}
		if err != nil {
			return nil, c.wrap(ctx, err, name, holder, start)
		}
		// Step 2.
		now := c.opts.Clock.Now()
		observedAt := c.observe(name, lease.ResourceVersion, now)
		record := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
		holder = record.HolderIdentity
		expiry := observedAt.Add(time.Duration(record.LeaseDurationSeconds) * time.Second)
		// Step 3.
		if holder == "" || !now.Before(expiry) {
			sent := c.opts.Clock.Now()
			taken, err := c.take(ctx, lease, record)
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // someone else moved first, or the Lease vanished
			}
			if err != nil {
				return nil, c.wrap(ctx, err, name, holder, start)
			}
			return c.hold(parent, taken, sent), nil
		}
		if !wait {
			return nil, &HeldError{Name: name, Holder: holder}
		}
		// Step 4.
		seen = c.waitForChange(ctx, lease, expiry)
	}
}

// observe records that the Lease name was seen at resourceVersion rv at now,
// and returns when this Client first saw it at rv.
func (c *Client) observe(name, rv string, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.observed[name]
	if !ok || o.resourceVersion != rv {
		if len(c.observed) >= maxObserved {
			// Forgetting only makes waiters wait longer, never less.
			clear(c.observed)
		}
		o = observation{resourceVersion: rv, at: now}
		c.observed[name] = o
	}
	return o.at
}

func (c *Client) wrap(ctx context.Context, err error, name, holder string, start time.Time) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &TimeoutError{Name: name, Holder: holder, Waited: c.opts.Clock.Since(start), Err: ctxErr}
	}
	return fmt.Errorf("acquiring lock %s/%s: %w", c.namespace, name, err)
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

func (c *Client) create(ctx context.Context, name string, owner client.Object) (*coordinationv1.Lease, error) {
	rec := c.record(1)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: name, Labels: map[string]string{}},
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
	w, err := c.c.Watch(ctx, &coordinationv1.LeaseList{}, client.InNamespace(c.namespace),
		client.MatchingFields{"metadata.name": lease.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: lease.ResourceVersion}})
	if err != nil {
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
	delete(c.observed, lease.Name) // only waiters need it; keeps the map small
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	l := &Lock{
		client: c, name: lease.Name, lease: lease,
		ctx: ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}),
	}
	l.token.Store(transitions(lease))
	go l.renew(parent, sent)
	return l
}

func transitions(lease *coordinationv1.Lease) int64 {
	if lease.Spec.LeaseTransitions == nil {
		return 0
	}
	return int64(*lease.Spec.LeaseTransitions)
}

// Lock is a held lock.
type Lock struct {
	client *Client
	name   string
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
}

// Name is the Lease's name.
func (l *Lock) Name() string { return l.name }

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

var errLost = errors.New("lock was taken over")

// renewOnce writes a new renewTime, re-reading after a conflict for as long
// as the Lease is still ours and ctx allows.
func (l *Lock) renewOnce(ctx context.Context) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	c := l.client
	for {
		l.mu.Lock()
		lease := l.lease.DeepCopy()
		l.mu.Unlock()
		now := metav1.NewMicroTime(c.opts.Clock.Now())
		lease.Spec.RenewTime = &now
		err := c.c.Update(ctx, lease)
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			if err == nil {
				l.setLease(lease)
			}
			return err
		}
		// Someone else wrote the Lease: is it still ours?
		current := &coordinationv1.Lease{}
		if err := c.c.Get(ctx, client.ObjectKeyFromObject(lease), current); err != nil {
			if apierrors.IsNotFound(err) {
				return errLost
			}
			return err
		}
		if !l.isOurs(current) {
			return errLost
		}
		l.setLease(current)
	}
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
		return fmt.Errorf("raising the token of lock %s: %d is the largest leaseTransitions can hold", l.name, floor)
	}
	if l.ctx.Err() != nil {
		return fmt.Errorf("raising the token of lock %s: %w", l.name, errLost)
	}
	// Bounded like a renewal, so the renew loop is not kept waiting long.
	ctx, cancel := context.WithTimeout(ctx, l.client.opts.RenewInterval)
	defer cancel()
	l.mu.Lock()
	lease := l.lease.DeepCopy()
	l.mu.Unlock()
	raised := int32(floor + 1)
	lease.Spec.LeaseTransitions = &raised
	if err := l.client.c.Update(ctx, lease); err != nil {
		return fmt.Errorf("raising the token of lock %s: %w", l.name, err)
	}
	l.token.Store(int64(raised))
	l.setLease(lease)
	return nil
}

func (l *Lock) isOurs(lease *coordinationv1.Lease) bool {
	return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == l.client.opts.Identity &&
		transitions(lease) == l.Token()
}

func (l *Lock) setLease(lease *coordinationv1.Lease) {
	l.mu.Lock()
	l.lease = lease
	l.mu.Unlock()
}

func (l *Lock) markLost() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
	l.cancel()
}

// Release gives the lock up: the Lease's holder is cleared (the Lease
// stays, so the next acquisition's token keeps growing), waiters are woken
// by their watch, and Lost is closed. Releasing a lost or released lock
// does nothing.
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

func (l *Lock) release(ctx context.Context) error {
	// Stop the guarded work before anyone else can hold the lock.
	l.cancel()
	l.writeMu.Lock() // after any RaiseToken, so Token() is current
	defer l.writeMu.Unlock()
	l.mu.Lock()
	lost, lease := l.lost, l.lease.DeepCopy()
	l.mu.Unlock()
	if lost {
		return nil
	}
	c := l.client
	for range 5 {
		if !l.isOurs(lease) {
			return nil
		}
		rec := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
		rec.HolderIdentity = ""
		rec.RenewTime = metav1.NewTime(c.opts.Clock.Now())
		lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(rec)
		err := c.c.Update(ctx, lease)
		if !apierrors.IsConflict(err) {
			if err != nil {
				return fmt.Errorf("releasing lock %s/%s: %w", lease.Namespace, lease.Name, err)
			}
			return nil
		}
		lease = &coordinationv1.Lease{}
		if err := c.c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: l.name}, lease); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	return fmt.Errorf("releasing lock %s/%s: the Lease kept changing", c.namespace, l.name)
}

// Locks are several locks held together; see AcquireAll.
type Locks []*Lock

// AcquireAll acquires every lock in names, one at a time in sorted order —
// the same order for every caller, so two callers wanting overlapping sets
// cannot deadlock — and returns them in that order. On failure it releases
// what it had taken.
func (c *Client) AcquireAll(ctx context.Context, names []string, opts ...AcquireOption) (Locks, error) {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var held Locks
	for _, name := range sorted {
		l, err := c.Acquire(ctx, name, opts...)
		if err != nil {
			_ = held.Release(context.WithoutCancel(ctx))
			return nil, err
		}
		held = append(held, l)
	}
	for _, l := range held {
		if l.ctx.Err() != nil {
			_ = held.Release(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("acquiring locks %v: lock %s was lost while waiting for the others", sorted, l.name)
		}
	}
	return held, nil
}

// Release releases every lock, in reverse order of acquisition.
func (ls Locks) Release(ctx context.Context) error {
	var errs []error
	for i := len(ls) - 1; i >= 0; i-- {
		errs = append(errs, ls[i].Release(ctx))
	}
	return errors.Join(errs...)
}
