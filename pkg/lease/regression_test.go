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
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// Regression tests for bugs found in review.

// TestTryAcquireTakesAnExpiredLock: repeated TryAcquire calls remember
// when they first saw the Lease, so a crashed holder's Lease expires for
// them (it once looked fresh on every call).
func TestTryAcquireTakesAnExpiredLock(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	opts := lease.Options{TTL: time.Second, RenewInterval: 250 * time.Millisecond}
	la := acquire(t, newClient(t, "a", opts), ctx, client.ObjectKey{Namespace: ns, Name: "expired"})
	la.CrashForTest()
	b := newClient(t, "b", opts)
	// 5 TTLs after the crash, with a TryAcquire every 100ms.
	var lastErr error
	if !eventually(5*time.Second, func() bool {
		l, err := b.TryAcquire(ctx, client.ObjectKey{Namespace: ns, Name: "expired"})
		if err != nil {
			lastErr = err
			return false
		}
		release(t, l)
		return true
	}) {
		t.Fatalf("TryAcquire still fails 5 TTLs after the holder stopped renewing: %v", lastErr)
	}
}

// TestNameDoesNotRaceWithRenewal: Lock.Name is read while the renew
// goroutine replaces the Lease (it once read it unguarded).
func TestNameDoesNotRaceWithRenewal(t *testing.T) {
	ns := env.Namespace(t)
	opts := lease.Options{TTL: time.Second, RenewInterval: 50 * time.Millisecond}
	l := acquire(t, newClient(t, "a", opts), t.Context(), client.ObjectKey{Namespace: ns, Name: "named"})
	defer release(t, l)
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		if l.Name() != "named" {
			t.Fatalf("Name() = %q", l.Name())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWithOwnerLongName: owner names may be longer than a label value (it
// once put the name in a label and failed).
func TestWithOwnerLongName(t *testing.T) {
	ns := env.Namespace(t)
	owner := newConfigMap(t, ns, strings.Repeat("x", 100), nil)
	l, err := newClient(t, "a", lease.Options{}).Acquire(t.Context(), client.ObjectKey{Namespace: ns, Name: "owned"}, lease.WithOwner(owner))
	if err != nil {
		t.Fatalf("Acquire WithOwner of a ConfigMap with a 100-character name: %v", err)
	}
	release(t, l)
}

// TestRaiseToken: a holder raises its token past a floor; the Lease keeps
// the raised count, so the next acquisition's token is larger still.
func TestRaiseToken(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, "a", lease.Options{})
	l := acquire(t, c, t.Context(), client.ObjectKey{Namespace: ns, Name: "raised"})
	if err := l.RaiseToken(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if l.Token() != 11 {
		t.Fatalf("Token() = %d after RaiseToken(10), want 11", l.Token())
	}
	if err := l.RaiseToken(t.Context(), 5); err != nil || l.Token() != 11 {
		t.Fatalf("RaiseToken below the token: err %v, token %d, want no change", err, l.Token())
	}
	release(t, l)
	next := acquire(t, c, t.Context(), client.ObjectKey{Namespace: ns, Name: "raised"})
	defer release(t, next)
	if next.Token() != 12 {
		t.Errorf("next acquisition's token = %d, want 12", next.Token())
	}
}

// TestHealthyLockIsNotLost: with RenewInterval at its largest (TTL/3), a
// lock whose renewals succeed stays held over several TTLs (the renew
// deadline once could fire before the first renewal happened).
func TestHealthyLockIsNotLost(t *testing.T) {
	ns := env.Namespace(t)
	l := acquire(t, newClient(t, "a", lease.Options{TTL: 3 * time.Second, RenewInterval: time.Second}), t.Context(), client.ObjectKey{Namespace: ns, Name: "healthy"})
	defer release(t, l)
	select {
	case <-l.Lost():
		t.Fatal("a lock renewed against a healthy API server was declared lost")
	case <-time.After(7 * time.Second):
	}
}

// TestRaiseTokenRefusesOverflow: leaseTransitions is an int32.
func TestRaiseTokenRefusesOverflow(t *testing.T) {
	ns := env.Namespace(t)
	l := acquire(t, newClient(t, "a", lease.Options{}), t.Context(), client.ObjectKey{Namespace: ns, Name: "overflow"})
	defer release(t, l)
	if err := l.RaiseToken(t.Context(), math.MaxInt32); err == nil {
		t.Fatal("RaiseToken past int32 succeeded")
	}
}

// TestReleaseOfAChangingLease: a Lease that another writer changes before
// every write of the release, leaving it ours, makes Release give up after
// 5 writes with an error wrapping *update.ConflictError (it once was a bare
// "the Lease kept changing"). Lost is closed all the same, and the Lease
// stays held by the releaser, for its TTL to end.
func TestReleaseOfAChangingLease(t *testing.T) {
	ns := env.Namespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "changing"}
	var releases atomic.Int64
	c := interceptor.NewClient(env.Client, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if l, ok := obj.(*coordinationv1.Lease); ok && holderOf(l) == "" {
				releases.Add(1)
				if err := touch(ctx, c, key); err != nil {
					return err
				}
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	locks, err := lease.New(c, lease.Options{Identity: "a"})
	if err != nil {
		t.Fatal(err)
	}
	l := acquire(t, locks, t.Context(), key)
	err = l.Release(t.Context())
	var conflict *update.ConflictError
	if !errors.As(err, &conflict) || conflict.Attempts != 5 || conflict.Key != key {
		t.Fatalf("Release: err = %v, want an *update.ConflictError for %s after 5 attempts", err, key)
	}
	if !apierrors.IsConflict(err) {
		t.Errorf("apierrors.IsConflict(%v) = false", err)
	}
	if got := releases.Load(); got != 5 {
		t.Errorf("%d release writes, want exactly 5", got)
	}
	if !closedWithin(l.Lost(), time.Second) {
		t.Error("Lost not closed after the failed Release")
	}
	if got := holderOf(getLease(t, ns, key.Name)); got != "a" {
		t.Errorf("Lease held by %q, want the releaser %q until its TTL ends", got, "a")
	}
}

// touch changes the Lease key without changing its holder, as a writer
// other than the lock's would.
func touch(ctx context.Context, c client.Client, key client.ObjectKey) error {
	l := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, l); err != nil {
		return err
	}
	n, _ := strconv.Atoi(l.Annotations["lease.test/touched"])
	metav1.SetMetaDataAnnotation(&l.ObjectMeta, "lease.test/touched", strconv.Itoa(n+1))
	return c.Update(ctx, l)
}
