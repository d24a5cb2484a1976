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

package jobstate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

func leaseJob(t *testing.T) client.ObjectKey {
	t.Helper()
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "locked"},
		Spec:       jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease},
	}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(js)
}

// TestLeasePolicyConcurrentUpdates: 16 writers, each its own Client (as 16
// processes), 100 increments each on a JobState with lockPolicy Lease. Every
// update holds the job's Lease: exactly 1600, no call fails, and the last
// write carries the token of the 1600th acquisition.
func TestLeasePolicyConcurrentUpdates(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	key := leaseJob(t)
	const writers, perWriter = 16, 100
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		c, err := jobstate.New(env.Client, jobstate.Options{Identity: fmt.Sprintf("writer-%02d", w)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range perWriter {
				if _, err := c.Update(ctx, key, testenv.Increment); err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("Update: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	js := get(t, key)
	n, err := testenv.Counter(js)
	if err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 || n != writers*perWriter {
		t.Errorf("counter = %d with %d failed calls, want exactly %d and 0", n, failed.Load(), writers*perWriter)
	}
	if js.Status.LockToken != writers*perWriter {
		t.Errorf("status.lockToken = %d, want %d (one acquisition per update)", js.Status.LockToken, writers*perWriter)
	}
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: key.Namespace, Name: jobstate.LeaseName(key.Name)}, l); err != nil {
		t.Fatal(err)
	}
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != js.UID {
		t.Errorf("Lease ownerReferences = %+v, want the JobState %s", l.OwnerReferences, js.UID)
	}
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
		t.Errorf("Lease still held by %q after every update returned", *l.Spec.HolderIdentity)
	}
}

// TestLeasePolicyStaleHolderIsFenced: a writer whose lock was taken over
// (it paused past its TTL) cannot overwrite its successor's write: the
// JobState carries the successor's larger token.
func TestLeasePolicyStaleHolderIsFenced(t *testing.T) {
	key := leaseJob(t)
	successor, err := jobstate.New(env.Client, jobstate.Options{Identity: "successor"})
	if err != nil {
		t.Fatal(err)
	}
	// The stale holder took the lock first (token 1), then paused.
	locks, err := lease.New(env.Client, lease.Options{Identity: "stale", TTL: time.Second, RenewInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := locks.Acquire(t.Context(), client.ObjectKey{Namespace: key.Namespace, Name: jobstate.LeaseName(key.Name)})
	if err != nil {
		t.Fatal(err)
	}
	if stale.Token() != 1 {
		t.Fatalf("first token = %d, want 1", stale.Token())
	}
	// Released here only to let the successor in without waiting a TTL;
	// the point is what the stale token can still do afterwards.
	if err := stale.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := successor.Update(t.Context(), key, testenv.Increment); err != nil {
		t.Fatal(err)
	}
	before := get(t, key)
	js := before.DeepCopy()
	err = update.Update(t.Context(), env.Client, js,
		update.Fenced(stale.Token(), jobstate.LockToken, testenv.Increment), update.Options{Status: true})
	var staleErr *update.StaleTokenError
	if !errors.As(err, &staleErr) || staleErr.Token != 1 || staleErr.Stored != 2 {
		t.Fatalf("stale write: err = %v, want *StaleTokenError{Token: 1, Stored: 2}", err)
	}
	if after := get(t, key); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the stale write changed the JobState: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
	}
}

// TestLeasePolicyNeedsAWatchingClient: without a client that can watch, a
// Lease-policy write fails with a clear error and writes nothing.
func TestLeasePolicyNeedsAWatchingClient(t *testing.T) {
	key := leaseJob(t)
	var plain client.Client = struct{ client.Client }{env.Client} // hides Watch
	c, err := jobstate.New(plain, jobstate.Options{Identity: "w"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Update(t.Context(), key, testenv.Increment)
	if err == nil || !containsAll(err.Error(), "lockPolicy Lease", "LeaseClient") {
		t.Fatalf("err = %v, want one naming lockPolicy Lease and Options.LeaseClient", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestLeasePolicyRecoversFromADeletedLease: someone deletes the job's Lease
// (kubectl delete lease); the new Lease's count restarts below the token the
// JobState carries, and the next writer raises its token past it instead of
// being fenced off forever.
func TestLeasePolicyRecoversFromADeletedLease(t *testing.T) {
	key := leaseJob(t)
	c, err := jobstate.New(env.Client, jobstate.Options{Identity: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Update(t.Context(), key, testenv.Increment); err != nil {
			t.Fatal(err)
		}
	}
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: jobstate.LeaseName(key.Name)}}
	if err := env.Client.Delete(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	js, err := c.Update(t.Context(), key, testenv.Increment)
	if err != nil {
		t.Fatalf("Update after the Lease was deleted: %v", err)
	}
	if n, _ := testenv.Counter(js); n != 4 || js.Status.LockToken != 4 {
		t.Errorf("counter %d lockToken %d, want 4 and 4", n, js.Status.LockToken)
	}
}
