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

package faults

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lease"
)

// TestHeldLeaseDoesNotStallOtherJobs: a worker holds the Lease of JobState
// x (lockPolicy Lease) while x waits for a controller write (spec.cancel).
// The manager gives up waiting for it after a moment and comes back, so a
// JobState y created meanwhile is initialized while the Lease stays held;
// once it is released, x is cancelled. (Before, the manager's reconcile
// waited for the Lease with no bound, and y stayed without a phase for as
// long as it was held.)
func TestHeldLeaseDoesNotStallOtherJobs(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ns := env.Namespace(t)
	startManager(t, "manager")
	x := client.ObjectKey{Namespace: ns, Name: "x"}
	createJob(t, x, func(js *jobstatev1alpha1.JobState) { js.Spec.LockPolicy = jobstatev1alpha1.LockPolicyLease })
	waitFor(ctx, t, "x Pending", func(context.Context) (bool, string, error) {
		return getJob(t, x).Status.Phase == jobstatev1alpha1.PhasePending, "", nil
	})
	blocker, err := lease.New(env.Client, lease.Options{Identity: "blocker"})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := blocker.Acquire(ctx, client.ObjectKey{Namespace: ns, Name: jobstate.LeaseName("x")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	js := getJob(t, x)
	js.Spec.Cancel = true
	if err := env.Client.Update(ctx, js); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the manager is now waiting for x's Lease

	y := client.ObjectKey{Namespace: ns, Name: "y"}
	createJob(t, y)
	held, stop := context.WithTimeout(ctx, 15*time.Second)
	defer stop()
	waitFor(held, t, "y Pending while x's Lease is held", func(context.Context) (bool, string, error) {
		return getJob(t, y).Status.Phase == jobstatev1alpha1.PhasePending, string(getJob(t, y).Status.Phase), nil
	})
	if phase := getJob(t, x).Status.Phase; phase != jobstatev1alpha1.PhasePending {
		t.Fatalf("x is %s while a worker holds its Lease, want Pending", phase)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "x Cancelled after the release", func(context.Context) (bool, string, error) {
		return getJob(t, x).Status.Phase == jobstatev1alpha1.PhaseCancelled, string(getJob(t, x).Status.Phase), nil
	})
}
