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
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jobstate-dev/jobstate/pkg/lease"
)

// Regression tests for bugs found in review.

// TestTryAcquireTakesAnExpiredLock: repeated TryAcquire calls remember
// when they first saw the Lease, so a crashed holder's Lease expires for
// them (it once looked fresh on every call).
func TestTryAcquireTakesAnExpiredLock(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	opts := lease.Options{TTL: time.Second, RenewInterval: 250 * time.Millisecond}
	la := acquire(t, newClient(t, ns, "a", opts), ctx, "expired")
	la.CrashForTest()
	b := newClient(t, ns, "b", opts)
	// 5 TTLs after the crash, with a TryAcquire every 100ms.
	var lastErr error
	if !eventually(5*time.Second, func() bool {
		l, err := b.TryAcquire(ctx, "expired")
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
	l := acquire(t, newClient(t, ns, "a", opts), t.Context(), "named")
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
	l, err := newClient(t, ns, "a", lease.Options{}).Acquire(t.Context(), "owned", lease.WithOwner(owner))
	if err != nil {
		t.Fatalf("Acquire WithOwner of a ConfigMap with a 100-character name: %v", err)
	}
	release(t, l)
}

// TestRaiseToken: a holder raises its token past a floor; the Lease keeps
// the raised count, so the next acquisition's token is larger still.
func TestRaiseToken(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, ns, "a", lease.Options{})
	l := acquire(t, c, t.Context(), "raised")
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
	next := acquire(t, c, t.Context(), "raised")
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
	l := acquire(t, newClient(t, ns, "a", lease.Options{TTL: 3 * time.Second, RenewInterval: time.Second}), t.Context(), "healthy")
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
	l := acquire(t, newClient(t, ns, "a", lease.Options{}), t.Context(), "overflow")
	defer release(t, l)
	if err := l.RaiseToken(t.Context(), math.MaxInt32); err == nil {
		t.Fatal("RaiseToken past int32 succeeded")
	}
}
