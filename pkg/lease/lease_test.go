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

package lease_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// tokenKey is the annotation guarded writes keep the fencing token in.
const tokenKey = "lease.test/token"

var tokenField = update.AnnotationToken[*corev1.ConfigMap](tokenKey)

func newClient(t *testing.T, identity string, opts lease.Options) *lease.Client {
	t.Helper()
	opts.Identity = identity
	c, err := lease.New(env.Client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func acquire(t *testing.T, c *lease.Client, ctx context.Context, key client.ObjectKey, opts ...lease.AcquireOption) *lease.Lock {
	t.Helper()
	l, err := c.Acquire(ctx, key, opts...)
	if err != nil {
		t.Fatalf("%s: Acquire(%s): %v", c.Identity(), key, err)
	}
	return l
}

func release(t *testing.T, l *lease.Lock) {
	t.Helper()
	if err := l.Release(t.Context()); err != nil {
		t.Errorf("Release(%s): %v", l.Name(), err)
	}
}

func newConfigMap(t *testing.T, ns, name string, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	if err := env.Client.Create(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func getConfigMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func getLease(t *testing.T, ns, name string) *coordinationv1.Lease {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, l); err != nil {
		t.Fatal(err)
	}
	return l
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// eventually polls cond every 20ms until it holds or timeout passes, and
// reports whether it held.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedWithin reports whether ch is closed within timeout.
func closedWithin(ch <-chan struct{}, timeout time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(timeout):
		return false
	}
}

// guardedWrite sets data.holder of the ConfigMap to value with update.Fenced
// under token.
func guardedWrite(ctx context.Context, ns, name string, token int64, value string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	return update.Update(ctx, env.Client, cm, update.Fenced(token, tokenField, func(cm *corev1.ConfigMap) error {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["holder"] = value
		return nil
	}), update.Options{})
}

const (
	incrementers   = 16
	perIncrementer = 25
)

// incrementAll runs incrementers × perIncrementer read-increment-write
// cycles on data.n of a ConfigMap, each written with a merge patch without
// resourceVersion precondition (last write wins), each under the lock
// "counter" when locked. It returns the final n and how many times a holder
// found another holder inside the critical section.
func incrementAll(t *testing.T, locked bool) (n int, overlaps int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ns := env.Namespace(t)
	newConfigMap(t, ns, "counter", map[string]string{"n": "0"})
	clients := make([]*lease.Client, incrementers)
	for w := range clients {
		clients[w] = newClient(t, fmt.Sprintf("incrementer-%d", w), lease.Options{})
	}

	var holders, overlapped, failed atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		failed.Add(1)
		once.Do(func() { firstErr = err })
	}
	increment := func() error {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "counter"}, cm); err != nil {
			return err
		}
		base := cm.DeepCopy()
		v, err := strconv.Atoi(cm.Data["n"])
		if err != nil {
			return err
		}
		cm.Data["n"] = strconv.Itoa(v + 1)
		// No optimistic lock: only the lease keeps writers apart.
		return env.Client.Patch(ctx, cm, client.MergeFrom(base))
	}
	var wg sync.WaitGroup
	for w := range incrementers {
		wg.Go(func() {
			for range perIncrementer {
				if !locked {
					if err := increment(); err != nil {
						fail(err)
					}
					continue
				}
				l, err := clients[w].Acquire(ctx, client.ObjectKey{Namespace: ns, Name: "counter"})
				if err != nil {
					fail(err)
					return
				}
				if holders.Add(1) > 1 {
					overlapped.Add(1)
				}
				if err := increment(); err != nil {
					fail(err)
				}
				holders.Add(-1)
				if err := l.Release(ctx); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d cycles failed; first: %v", failed.Load(), incrementers*perIncrementer, firstErr)
	}
	n, err := strconv.Atoi(getConfigMap(t, ns, "counter").Data["n"])
	if err != nil {
		t.Fatal(err)
	}
	return n, overlapped.Load()
}

// TestMutualExclusion: 16 holders × 25 increments of a ConfigMap written
// without optimistic lock, each under the lock, leave exactly 400, and no
// holder ever finds another inside the critical section (0 overlaps).
func TestMutualExclusion(t *testing.T) {
	start := time.Now()
	n, overlaps := incrementAll(t, true)
	if want := incrementers * perIncrementer; n != want {
		t.Errorf("n = %d, want exactly %d (%d updates lost)", n, want, want-n)
	}
	if overlaps != 0 {
		t.Errorf("a holder found another in the critical section %d times, want 0", overlaps)
	}
	t.Logf("%d locked increments in %s", incrementers*perIncrementer, time.Since(start).Round(time.Millisecond))
}

// TestWithoutLockUpdatesAreLost is the broken variant of TestMutualExclusion:
// the same workload without the lock must lose updates (n < 400) — proof
// that the counter check can fail.
func TestWithoutLockUpdatesAreLost(t *testing.T) {
	n, _ := incrementAll(t, false)
	want := incrementers * perIncrementer
	if n >= want {
		t.Fatalf("n = %d: the unlocked variant lost no update, so TestMutualExclusion proves nothing", n)
	}
	t.Logf("unlocked variant: n = %d of %d, %d updates lost", n, want, want-n)
}

// TestCrashedHolderIsTakenOverAndFenced: a holder that stops renewing
// without releasing loses the lock after its TTL, to a waiter with a larger
// token; the crashed holder's late guarded write is then rejected.
func TestCrashedHolderIsTakenOverAndFenced(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	opts := lease.Options{TTL: 2 * time.Second, RenewInterval: 500 * time.Millisecond}
	a, b := newClient(t, "a", opts), newClient(t, "b", opts)

	newConfigMap(t, ns, "guarded", nil)
	la := acquire(t, a, ctx, client.ObjectKey{Namespace: ns, Name: "crash"})
	if err := guardedWrite(ctx, ns, "guarded", la.Token(), "a"); err != nil {
		t.Fatalf("A's guarded write: %v", err)
	}
	la.CrashForTest()

	start := time.Now()
	lb := acquire(t, b, ctx, client.ObjectKey{Namespace: ns, Name: "crash"})
	waited := time.Since(start)
	if waited < 1500*time.Millisecond || waited >= 15*time.Second {
		t.Errorf("B acquired after %s, want about the TTL %s (at least 1.5s, under 15s)", waited, opts.TTL)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("B's token %d is not larger than A's %d", lb.Token(), la.Token())
	}
	if err := guardedWrite(ctx, ns, "guarded", lb.Token(), "b"); err != nil {
		t.Fatalf("B's guarded write: %v", err)
	}

	err := guardedWrite(ctx, ns, "guarded", la.Token(), "a-late")
	if !errors.Is(err, update.ErrStaleToken) {
		t.Fatalf("A's late guarded write: err = %v, want update.ErrStaleToken", err)
	}
	var stale *update.StaleTokenError
	if !errors.As(err, &stale) || stale.Token != la.Token() || stale.Stored != lb.Token() {
		t.Errorf("err = %#v, want *update.StaleTokenError{Token: %d, Stored: %d}", err, la.Token(), lb.Token())
	}
	if got := getConfigMap(t, ns, "guarded").Data["holder"]; got != "b" {
		t.Errorf("ConfigMap holds %q, want B's value %q", got, "b")
	}

	// The crashed holder's Release does nothing: B still holds.
	if err := la.Release(ctx); err != nil {
		t.Errorf("crashed holder's Release: %v", err)
	}
	if got := holderOf(getLease(t, ns, "crash")); got != "b" {
		t.Errorf("after the crashed holder's Release the Lease is held by %q, want %q", got, "b")
	}
	select {
	case <-lb.Lost():
		t.Error("B's lock was lost")
	default:
	}
	release(t, lb)
}

// TestLostWhenTakenOver: a holder whose Lease is taken by someone else
// learns it at its next renewal: Lost closes, Context is cancelled, and its
// Release leaves the Lease to the intruder.
func TestLostWhenTakenOver(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	opts := lease.Options{TTL: 10 * time.Second, RenewInterval: 300 * time.Millisecond}
	la := acquire(t, newClient(t, "a", opts), ctx, client.ObjectKey{Namespace: ns, Name: "taken"})

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := getLease(t, ns, "taken")
		intruder := "intruder"
		l.Spec.HolderIdentity = &intruder
		return env.Client.Update(ctx, l)
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// 10 renew intervals, far below the TTL: the rejected renewal, not the
	// TTL, must close Lost.
	if !closedWithin(la.Lost(), 10*opts.RenewInterval) {
		t.Fatalf("Lost not closed %s after the Lease was taken", 10*opts.RenewInterval)
	}
	t.Logf("Lost closed %s after the takeover", time.Since(start).Round(time.Millisecond))
	if la.Context().Err() == nil {
		t.Error("Context not cancelled after Lost closed")
	}
	if err := la.Release(ctx); err != nil {
		t.Errorf("Release of a lost lock: %v", err)
	}
	if got := holderOf(getLease(t, ns, "taken")); got != "intruder" {
		t.Errorf("Lease held by %q, want %q", got, "intruder")
	}
}

// TestReleaseOnContextCancel: cancelling the context given to Acquire
// releases the lock — the Lease's holder is cleared and Lost closed — and a
// waiter blocked in Acquire then gets it quickly.
func TestReleaseOnContextCancel(t *testing.T) {
	ns := env.Namespace(t)
	opts := lease.Options{TTL: 15 * time.Second}
	a, b := newClient(t, "a", opts), newClient(t, "b", opts)

	// Without a waiter: the holder is cleared.
	ctx, cancel := context.WithCancel(t.Context())
	la := acquire(t, a, ctx, client.ObjectKey{Namespace: ns, Name: "cancel"})
	cancel()
	if !eventually(5*time.Second, func() bool { return holderOf(getLease(t, ns, "cancel")) == "" }) {
		t.Fatalf("Lease still held by %q 5s after the context was cancelled", holderOf(getLease(t, ns, "cancel")))
	}
	if !closedWithin(la.Lost(), 5*time.Second) {
		t.Error("Lost not closed after the context was cancelled")
	}
	if err := la.Release(t.Context()); err != nil {
		t.Errorf("Release after cancel: %v", err)
	}

	// With a waiter: it gets the lock.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	acquire(t, a, ctx, client.ObjectKey{Namespace: ns, Name: "cancel"})
	got := make(chan *lease.Lock, 1)
	go func() {
		l, err := b.Acquire(t.Context(), client.ObjectKey{Namespace: ns, Name: "cancel"})
		if err != nil {
			t.Errorf("waiter's Acquire: %v", err)
		}
		got <- l
	}()
	time.Sleep(200 * time.Millisecond) // Let the waiter block; not a timing assertion.
	cancel()
	select {
	case lb := <-got:
		if lb != nil {
			release(t, lb)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not get the lock within 5s of the holder's context being cancelled")
	}
}

// TestHandoffIsWatchDriven: a waiter gets a released lock within 1s, far
// below the TTL (15s) and any polling period.
func TestHandoffIsWatchDriven(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	opts := lease.Options{TTL: 15 * time.Second}
	la := acquire(t, newClient(t, "a", opts), ctx, client.ObjectKey{Namespace: ns, Name: "handoff"})

	type result struct {
		l  *lease.Lock
		at time.Time
	}
	got := make(chan result, 1)
	go func() {
		l, err := newClient(t, "b", opts).Acquire(ctx, client.ObjectKey{Namespace: ns, Name: "handoff"})
		if err != nil {
			t.Errorf("B's Acquire: %v", err)
		}
		got <- result{l, time.Now()}
	}()
	time.Sleep(500 * time.Millisecond) // Let B block; not a timing assertion.
	select {
	case <-got:
		t.Fatal("B acquired a lock A holds")
	default:
	}
	released := time.Now()
	release(t, la)
	select {
	case r := <-got:
		if r.l == nil {
			return
		}
		if d := r.at.Sub(released); d >= time.Second {
			t.Errorf("B acquired %s after the release, want < 1s", d)
		} else {
			t.Logf("handoff took %s", d.Round(time.Millisecond))
		}
		release(t, r.l)
	case <-time.After(10 * time.Second):
		t.Fatal("B did not acquire within 10s of the release")
	}
}

// TestAcquireTimeout: a waiter with AcquireTimeout gives up with a
// *TimeoutError naming the lock and its holder.
// TestAcquireWithLostResponseIsUnknown: the write that takes a free lock
// is stored, and its response lost. Acquire fails with an
// *update.UnknownOutcomeError (the Lease is in fact held under its
// identity); giving up while waiting, in TestAcquireTimeout, is a
// *TimeoutError that is not one.
func TestAcquireWithLostResponseIsUnknown(t *testing.T) {
	ns := env.Namespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "lost"}
	lossy := interceptor.NewClient(env.Client, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := c.Create(ctx, obj, opts...); err != nil {
				return err
			}
			return apierrors.NewTimeoutError("stored, but the response was lost", 1)
		},
	})
	c, err := lease.New(lossy, lease.Options{Identity: "lossy"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Acquire(t.Context(), key)
	if err == nil {
		release(t, l)
		t.Fatal("Acquire succeeded although its response was lost")
	}
	if !errors.Is(err, update.ErrOutcomeUnknown) || !apierrors.IsTimeout(err) {
		t.Fatalf("err = %v, want an *update.UnknownOutcomeError around the timeout", err)
	}
	if got := holderOf(getLease(t, ns, key.Name)); got != "lossy" {
		t.Errorf("the Lease is held by %q, want lossy (the lost write was stored)", got)
	}
}

func TestAcquireTimeout(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	la := acquire(t, newClient(t, "holder-a", lease.Options{}), ctx, client.ObjectKey{Namespace: ns, Name: "busy"})
	defer release(t, la)
	b := newClient(t, "b", lease.Options{AcquireTimeout: 300 * time.Millisecond})

	start := time.Now()
	l, err := b.Acquire(ctx, client.ObjectKey{Namespace: ns, Name: "busy"})
	waited := time.Since(start)
	if err == nil {
		release(t, l)
		t.Fatal("B acquired a lock A holds")
	}
	var te *lease.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want *lease.TimeoutError", err, err)
	}
	if !errors.Is(err, lease.ErrTimeout) {
		t.Errorf("errors.Is(%v, lease.ErrTimeout) = false", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
	if errors.Is(err, update.ErrOutcomeUnknown) {
		t.Errorf("giving up while waiting is reported as an unknown outcome: %v", err)
	}
	if te.Key != (client.ObjectKey{Namespace: ns, Name: "busy"}) || te.Holder != "holder-a" {
		t.Errorf("TimeoutError = %+v, want Name busy, Holder holder-a", te)
	}
	for _, s := range []string{"busy", "holder-a"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not contain %q", err.Error(), s)
		}
	}
	if waited < 300*time.Millisecond || waited > 10*time.Second {
		t.Errorf("Acquire returned after %s, want about 300ms", waited)
	}
	select {
	case <-la.Lost():
		t.Error("the holder's lock was lost")
	default:
	}
}

// TestTryAcquire: on a held lock TryAcquire returns a *HeldError naming the
// holder at once; on a free one (never taken, or released) it succeeds.
func TestTryAcquire(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	a := newClient(t, "a", lease.Options{})
	b := newClient(t, "b", lease.Options{})

	lb := func() *lease.Lock {
		l, err := b.TryAcquire(ctx, client.ObjectKey{Namespace: ns, Name: "fresh"})
		if err != nil {
			t.Fatalf("TryAcquire of a never taken lock: %v", err)
		}
		return l
	}()
	release(t, lb)

	la := acquire(t, a, ctx, client.ObjectKey{Namespace: ns, Name: "try"})
	start := time.Now()
	l, err := b.TryAcquire(ctx, client.ObjectKey{Namespace: ns, Name: "try"})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("TryAcquire of a held lock took %s, want at once", d)
	}
	if err == nil {
		release(t, l)
		t.Fatal("TryAcquire took a lock A holds")
	}
	var held *lease.HeldError
	if !errors.As(err, &held) || held.Holder != "a" || held.Key != (client.ObjectKey{Namespace: ns, Name: "try"}) {
		t.Fatalf("err = %v, want *lease.HeldError{Name: try, Holder: a}", err)
	}
	if !errors.Is(err, lease.ErrHeld) {
		t.Errorf("errors.Is(%v, lease.ErrHeld) = false", err)
	}

	release(t, la)
	l, err = b.TryAcquire(ctx, client.ObjectKey{Namespace: ns, Name: "try"})
	if err != nil {
		t.Fatalf("TryAcquire of a released lock: %v", err)
	}
	release(t, l)
}

// TestTokensGrow: 5 acquire/release cycles by alternating clients give
// strictly increasing tokens, and the Lease's leaseTransitions is the last.
func TestTokensGrow(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	clients := []*lease.Client{newClient(t, "a", lease.Options{}), newClient(t, "b", lease.Options{})}
	var tokens []int64
	for i := range 5 {
		l := acquire(t, clients[i%2], ctx, client.ObjectKey{Namespace: ns, Name: "tokens"})
		tokens = append(tokens, l.Token())
		release(t, l)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("tokens %v do not strictly increase", tokens)
			break
		}
	}
	l := getLease(t, ns, "tokens")
	if l.Spec.LeaseTransitions == nil || int64(*l.Spec.LeaseTransitions) != tokens[len(tokens)-1] {
		t.Errorf("leaseTransitions = %v, want the last token %d", l.Spec.LeaseTransitions, tokens[len(tokens)-1])
	}
}

// TestAcquireAllUnderContention: 6 holders × 10 AcquireAll calls of
// overlapping subsets of 4 locks in two namespaces all succeed (60 in all)
// without deadlock, and no lock ever has two holders at once (0 overlaps).
func TestAcquireAllUnderContention(t *testing.T) {
	const holders, rounds = 6, 10
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ns1, ns2 := env.Namespace(t), env.Namespace(t)
	if ns2 < ns1 {
		ns1, ns2 = ns2, ns1
	}
	// In sorted order: by namespace, then name.
	names := []client.ObjectKey{{Namespace: ns1, Name: "b"}, {Namespace: ns1, Name: "d"}, {Namespace: ns2, Name: "a"}, {Namespace: ns2, Name: "c"}}
	inside := map[client.ObjectKey]*atomic.Int64{}
	for _, key := range names {
		inside[key] = &atomic.Int64{}
	}
	var succeeded, overlapped atomic.Int64
	var wg sync.WaitGroup
	for h := range holders {
		c := newClient(t, fmt.Sprintf("holder-%d", h), lease.Options{})
		wg.Go(func() {
			for range rounds {
				subset := slices.Clone(names)
				rand.Shuffle(len(subset), func(i, j int) { subset[i], subset[j] = subset[j], subset[i] })
				subset = subset[:2+rand.IntN(2)]
				locks, err := c.AcquireAll(ctx, subset)
				if err != nil {
					t.Errorf("%s: AcquireAll(%v): %v", c.Identity(), subset, err)
					return
				}
				got := make([]client.ObjectKey, len(locks))
				for i, l := range locks {
					got[i] = l.Key()
				}
				want := slices.DeleteFunc(slices.Clone(names), func(k client.ObjectKey) bool { return !slices.Contains(subset, k) })
				if !slices.Equal(got, want) {
					t.Errorf("AcquireAll(%v) returned %v, want %v", subset, got, want)
				}
				for _, key := range got {
					if inside[key].Add(1) > 1 {
						overlapped.Add(1)
					}
				}
				time.Sleep(5 * time.Millisecond) // Hold briefly.
				for _, key := range got {
					inside[key].Add(-1)
				}
				if err := locks.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
				}
				succeeded.Add(1)
			}
		})
	}
	wg.Wait()
	if got := succeeded.Load(); got != holders*rounds {
		t.Errorf("%d AcquireAll rounds succeeded, want exactly %d", got, holders*rounds)
	}
	if got := overlapped.Load(); got != 0 {
		t.Errorf("a lock had two holders at once %d times, want 0", got)
	}
}

// TestWithOwner: a Lease created WithOwner has an ownerReference to the
// owner and the owner labels, besides Options.Labels.
func TestWithOwner(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	owner := newConfigMap(t, ns, "owner", nil)
	c := newClient(t, "a", lease.Options{Labels: map[string]string{"app": "test"}})
	release(t, acquire(t, c, ctx, client.ObjectKey{Namespace: ns, Name: "owned"}, lease.WithOwner(owner)))

	l := getLease(t, ns, "owned")
	if len(l.OwnerReferences) != 1 {
		t.Fatalf("ownerReferences = %+v, want one", l.OwnerReferences)
	}
	ref := l.OwnerReferences[0]
	if ref.UID != owner.UID || ref.Kind != "ConfigMap" || ref.APIVersion != "v1" || ref.Name != "owner" {
		t.Errorf("ownerReference = %+v, want ConfigMap v1 owner with UID %s", ref, owner.UID)
	}
	if kind, uid := l.Labels[lease.OwnerKindLabel], l.Labels[lease.OwnerUIDLabel]; kind != "ConfigMap" || uid != string(owner.UID) {
		t.Errorf("owner labels = %q/%q, want ConfigMap/%s", kind, uid, owner.UID)
	}
	if got := l.Labels["app"]; got != "test" {
		t.Errorf("label app = %q, want %q (Options.Labels)", got, "test")
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts lease.Options
	}{
		{"missing identity", lease.Options{}},
		{"TTL below 1s", lease.Options{Identity: "a", TTL: 500 * time.Millisecond}},
		{"TTL not whole seconds", lease.Options{Identity: "a", TTL: 1500 * time.Millisecond}},
		{"RenewInterval equal to TTL", lease.Options{Identity: "a", TTL: 2 * time.Second, RenewInterval: 2 * time.Second}},
		{"RenewInterval above TTL", lease.Options{Identity: "a", TTL: 2 * time.Second, RenewInterval: 3 * time.Second}},
		{"RenewInterval above TTL/3", lease.Options{Identity: "a", TTL: 3 * time.Second, RenewInterval: 1500 * time.Millisecond}},
		{"negative RenewInterval", lease.Options{Identity: "a", RenewInterval: -time.Second}},
		{"negative AcquireTimeout", lease.Options{Identity: "a", AcquireTimeout: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := lease.New(env.Client, tc.opts); err == nil {
				t.Errorf("New(%+v) accepted invalid options", tc.opts)
			}
		})
	}
	if _, err := lease.New(nil, lease.Options{Identity: "a"}); err == nil {
		t.Error("New accepted a nil client")
	}
	c, err := lease.New(env.Client, lease.Options{Identity: "a"})
	if err != nil {
		t.Fatalf("New with only an identity: %v", err)
	}
	for _, key := range []client.ObjectKey{{Name: "no-namespace"}, {Namespace: "ns"}} {
		if l, err := c.TryAcquire(t.Context(), key); err == nil {
			release(t, l)
			t.Errorf("TryAcquire(%+v) accepted a key without namespace or name", key)
		}
	}
}
