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

package controllers

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// statusHook calls after once each status write of the client returned.
type statusHook struct {
	client.Client
	after func(obj client.Object)
}

func (c statusHook) Status() client.SubResourceWriter {
	return hookedWriter{c.Client.Status(), c.after}
}

type hookedWriter struct {
	client.SubResourceWriter
	after func(obj client.Object)
}

func (w hookedWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	err := w.SubResourceWriter.Update(ctx, obj, opts...)
	if err == nil {
		w.after(obj)
	}
	return err
}

// startManager runs the JobState reconciler (projection batch of batch
// events) in a manager; after is called after each status write it makes.
// It returns a stop function that waits for the manager to stop.
func startManager(t *testing.T, batch int, after func(client.Object)) (stop func()) {
	t.Helper()
	return runManager(t, func(mgr ctrl.Manager) error {
		r := &JobStateReconciler{Client: statusHook{mgr.GetClient(), after}, ProjectionBatch: batch}
		return r.SetupWithManager(mgr)
	})
}

// runManager starts a manager with the reconcilers setup adds, as the
// sealer identity (env.Config). It returns a stop function that waits for
// the manager to stop.
func runManager(t *testing.T, setup func(ctrl.Manager) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup(mgr); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return func() { cancel(); wg.Wait() }
}

// TestProjectionExactlyOnceAcrossRestart: a manager is killed right after
// its third projection write; a second one finishes. Every event is applied
// exactly once, in order: the attempt count, the rejected events and the
// data show any event applied twice or skipped.
func TestProjectionExactlyOnceAcrossRestart(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	clock := clocktesting.NewFakeClock(t0)
	events, err := stream.New(env.Client, stream.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	reportEvents := client.ObjectKey{Namespace: ns, Name: "report-events"}
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: jobstatev1alpha1.JobStateSpec{
			BackoffLimit:   ptr.To[int32](10),
			EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "report-events"},
		},
	}
	if err := env.Client.Create(ctx, js); err != nil {
		t.Fatal(err)
	}
	// Four failed attempts, then a successful one, with illegal events in
	// between. Event times step an hour apart, past every retry backoff.
	type step struct {
		typ string
		p   jobstate.EventPayload
	}
	var steps []step
	for a := int32(1); a <= 4; a++ {
		w := "worker-" + string(rune('0'+a))
		steps = append(steps,
			step{jobstate.EventClaimed, jobstate.EventPayload{Holder: w}},
			step{jobstate.EventHeartbeat, jobstate.EventPayload{Holder: w, Attempt: a, Progress: 10 * a}},
			step{jobstate.EventDataPatched, jobstate.EventPayload{Patch: map[string]any{"attempt" + string(rune('0'+a)): true}}},
			step{jobstate.EventFailed, jobstate.EventPayload{Holder: w, Attempt: a, Message: "disk full"}},
		)
	}
	steps = append(steps,
		step{jobstate.EventHeartbeat, jobstate.EventPayload{Holder: "worker-1", Attempt: 1}}, // 16: fenced (not running)
		step{jobstate.EventClaimed, jobstate.EventPayload{Holder: "worker-5"}},
		step{jobstate.EventClaimed, jobstate.EventPayload{Holder: "worker-6"}}, // 18: illegal, already running
		step{"Exploded", jobstate.EventPayload{}},                              // 19: unknown type
		step{jobstate.EventHeartbeat, jobstate.EventPayload{Holder: "worker-5", Attempt: 5, Progress: 90}},
		step{jobstate.EventSucceeded, jobstate.EventPayload{Holder: "worker-5", Attempt: 5, Message: "done"}},
	)
	for _, s := range steps {
		clock.Step(time.Hour)
		if _, err := events.Append(ctx, reportEvents, []stream.EventData{jobstate.NewEvent(s.typ, s.p)}, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	last := int64(len(steps) - 1)

	// The first manager projects two events per write and dies right after
	// its third write is stored.
	var writes atomic.Int32
	var stop1 func()
	killed := make(chan struct{})
	stop1 = startManager(t, 2, func(obj client.Object) {
		if _, ok := obj.(*jobstatev1alpha1.JobState); ok && writes.Add(1) == 3 {
			close(killed)
		}
	})
	<-killed
	stop1()
	key := client.ObjectKeyFromObject(js)
	if err := env.Client.Get(ctx, key, js); err != nil {
		t.Fatal(err)
	}
	mid := jobstate.ProjectedPosition(js)
	if mid < 0 || mid >= last {
		t.Fatalf("after the first manager: projected up to %d, want part of 0..%d", mid, last)
	}
	t.Logf("first manager stopped after projecting up to position %d of %d", mid, last)

	stop2 := startManager(t, 2, func(client.Object) {})
	defer stop2()
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, key, js); err != nil {
			return false, err
		}
		return jobstate.ProjectedPosition(js) == last, nil
	}); err != nil {
		t.Fatalf("projection stopped at %d of %d: %v", jobstate.ProjectedPosition(js), last, err)
	}
	s := js.Status
	if s.Phase != jobstatev1alpha1.PhaseSucceeded || s.Attempt != 5 || s.Holder != "worker-5" || s.Progress != 100 {
		t.Errorf("status: phase %s attempt %d holder %s progress %d; want Succeeded, 5, worker-5, 100", s.Phase, s.Attempt, s.Holder, s.Progress)
	}
	p := s.Projection
	if p.RejectedCount != 3 || len(p.Rejected) != 3 {
		t.Fatalf("rejected %d events: %+v; want exactly 3", p.RejectedCount, p.Rejected)
	}
	for i, want := range []struct {
		position int64
		reason   string
	}{{16, jobstate.RejectedFenced}, {18, jobstate.RejectedIllegalTransition}, {19, jobstate.RejectedUnknownType}} {
		if got := p.Rejected[i]; got.Position != want.position || got.Reason != want.reason {
			t.Errorf("rejected[%d] = %+v, want position %d reason %s", i, got, want.position, want.reason)
		}
	}
	data, err := jobstate.Data(js)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 4 {
		t.Errorf("data = %v, want the 4 patches", data)
	}
}

// Timers act on an event-sourced JobState through its stream: the
// controller appends Lost after the heartbeat timeout and Cancelled for
// spec.cancel, and the projection applies them.
func TestEventSourcedTimers(t *testing.T) {
	ctx := t.Context()
	clock := clocktesting.NewFakeClock(t0)
	r := &JobStateReconciler{Client: env.Client, APIReader: env.Client, LeaseClient: env.Client, Recorder: events.NewFakeRecorder(100), Clock: clock}
	if err := r.init(); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	worker, err := stream.New(env.Client, stream.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	syncEvents := client.ObjectKey{Namespace: ns, Name: "sync-events"}
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sync"},
		Spec: jobstatev1alpha1.JobStateSpec{
			HeartbeatTimeoutSeconds: ptr.To[int32](30),
			EventStreamRef:          &jobstatev1alpha1.EventStreamReference{Name: "sync-events"},
		},
	}
	if err := env.Client.Create(ctx, js); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(js)
	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if err := env.Client.Get(ctx, key, js); err != nil {
			t.Fatal(err)
		}
		return res
	}
	reconcile()
	if js.Status.Phase != jobstatev1alpha1.PhasePending {
		t.Fatalf("phase %s before any event, want Pending", js.Status.Phase)
	}
	if _, err := worker.Append(ctx, syncEvents, []stream.EventData{jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"})}, stream.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if res := reconcile(); js.Status.Phase != jobstatev1alpha1.PhaseRunning || res.RequeueAfter != 30*time.Second {
		t.Fatalf("after Claimed: phase %s, RequeueAfter %v; want Running, 30s", js.Status.Phase, res.RequeueAfter)
	}
	clock.Step(31 * time.Second)
	reconcile() // appends Lost
	reconcile() // projects it
	if js.Status.Phase != jobstatev1alpha1.PhasePending || js.Status.Reason != jobstatev1alpha1.ReasonHeartbeatTimeout || js.Status.Attempt != 1 {
		t.Fatalf("after the heartbeat timeout: %s %s attempt %d", js.Status.Phase, js.Status.Reason, js.Status.Attempt)
	}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"cancel":true}}`))
	if err := env.Client.Patch(ctx, js, patch); err != nil {
		t.Fatal(err)
	}
	reconcile()
	reconcile()
	if js.Status.Phase != jobstatev1alpha1.PhaseCancelled {
		t.Fatalf("after spec.cancel: phase %s", js.Status.Phase)
	}
	recorded, err := worker.Read(ctx, syncEvents, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range recorded {
		types = append(types, e.Type)
	}
	if want := []string{"Claimed", "Lost", "Cancelled"}; !slices.Equal(types, want) {
		t.Fatalf("stream holds %v, want %v", types, want)
	}
	if p := js.Status.Projection; p.RejectedCount != 0 || *p.Position != 2 {
		t.Fatalf("projection %+v", p)
	}
}
