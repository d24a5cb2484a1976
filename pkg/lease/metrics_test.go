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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/lease"
)

// lockMetrics is a reading of the lock metrics: observations of the
// histograms (count, sum) and the losses.
type lockMetrics struct {
	waits, holds, handoffs uint64
	waited, held           float64
	losses                 float64
}

func readLockMetrics() lockMetrics {
	var m lockMetrics
	m.waits, m.waited = metrics.Observed(metrics.LockWait)
	m.holds, m.held = metrics.Observed(metrics.LockHold)
	m.handoffs, _ = metrics.Observed(metrics.LockHandoff)
	m.losses = testutil.ToFloat64(metrics.LockLosses)
	return m
}

// TestLockWaitHoldAndHandoffMetrics: A takes a free lock, B waits for it
// at least 300ms, A releases, B gets it and releases. Two acquisitions
// (B's wait at least 300ms), two holds (A's at least 300ms), and exactly
// one handoff: B's. (Holds are counted at least, not exactly: an earlier
// test's lock may be released by its context meanwhile.)
func TestLockWaitHoldAndHandoffMetrics(t *testing.T) {
	ctx := t.Context()
	key := client.ObjectKey{Namespace: env.Namespace(t), Name: "metered"}
	opts := lease.Options{TTL: 15 * time.Second}
	before := readLockMetrics()

	la := acquire(t, newClient(t, "a", opts), ctx, key)
	if m := readLockMetrics(); m.waits != before.waits+1 || m.handoffs != before.handoffs {
		t.Fatalf("after taking a free lock: %d waits, %d handoffs; want %d, %d", m.waits, m.handoffs, before.waits+1, before.handoffs)
	}
	got := make(chan *lease.Lock, 1)
	go func() {
		l, err := newClient(t, "b", opts).Acquire(ctx, key)
		if err != nil {
			t.Errorf("B's Acquire: %v", err)
		}
		got <- l
	}()
	const blocked = 300 * time.Millisecond
	time.Sleep(blocked) // B waits at least this long.
	release(t, la)
	lb := <-got
	if lb == nil {
		return
	}
	release(t, lb)

	m := readLockMetrics()
	if m.waits != before.waits+2 || m.waited-before.waited < blocked.Seconds() {
		t.Errorf("waits: %d more, %.3fs in all; want 2, at least %s", m.waits-before.waits, m.waited-before.waited, blocked)
	}
	if m.holds < before.holds+2 || m.held-before.held < blocked.Seconds() {
		t.Errorf("holds: %d more, %.3fs in all; want at least 2, %s", m.holds-before.holds, m.held-before.held, blocked)
	}
	if m.handoffs != before.handoffs+1 {
		t.Errorf("handoffs: %d more, want exactly 1 (B's)", m.handoffs-before.handoffs)
	}
	if m.losses != before.losses {
		t.Errorf("losses: %g more, want none: releases are not losses", m.losses-before.losses)
	}
}

// TestLockLossMetrics: another identity takes A's Lease over; A's next
// renewal finds it and declares the lock lost. Exactly one loss, and A's
// hold ends with it: the Release after it counts neither a second hold nor
// a second loss.
func TestLockLossMetrics(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	opts := lease.Options{TTL: 10 * time.Second, RenewInterval: 300 * time.Millisecond}
	la := acquire(t, newClient(t, "a", opts), ctx, client.ObjectKey{Namespace: ns, Name: "lost"})
	before := readLockMetrics()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := getLease(t, ns, "lost")
		intruder := "intruder"
		l.Spec.HolderIdentity = &intruder
		return env.Client.Update(ctx, l)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !closedWithin(la.Lost(), 10*opts.RenewInterval) {
		t.Fatalf("Lost not closed %s after the Lease was taken", 10*opts.RenewInterval)
	}
	lost := readLockMetrics()
	if lost.losses != before.losses+1 || lost.holds < before.holds+1 {
		t.Fatalf("after the loss: %g losses, %d holds more; want 1, at least 1", lost.losses-before.losses, lost.holds-before.holds)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if m := readLockMetrics(); m.losses != lost.losses || m.holds != lost.holds {
		t.Errorf("the Release of a lost lock counted %g losses and %d holds more, want none", m.losses-lost.losses, m.holds-lost.holds)
	}
}
