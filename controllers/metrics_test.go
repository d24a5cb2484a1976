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
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// TestCountJob is the table of what one JobState adds to the state
// metrics, seen 100s after t0.
func TestCountJob(t *testing.T) {
	now := t0.Add(100 * time.Second)
	claimedAt := func(d time.Duration) []metav1.Condition {
		return []metav1.Condition{{Type: jobstatev1alpha1.ConditionRunning, Status: metav1.ConditionTrue, LastTransitionTime: *at(d)}}
	}
	for _, tc := range []struct {
		name   string
		status jobstatev1alpha1.JobStateStatus
		want   metrics.State
	}{
		{name: "no phase yet", want: metrics.State{Phases: map[string]int{}}},
		{name: "pending", status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhasePending},
			want: metrics.State{Phases: map[string]int{"Pending": 1}}},
		{name: "running since the claim, heartbeat fresh",
			status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, LastHeartbeatTime: at(90 * time.Second), Conditions: claimedAt(40 * time.Second)},
			want:   metrics.State{Phases: map[string]int{"Running": 1}, LongestRunning: 60 * time.Second}},
		{name: "running, heartbeat exactly at its timeout",
			status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, LastHeartbeatTime: at(70 * time.Second), Conditions: claimedAt(0)},
			want:   metrics.State{Phases: map[string]int{"Running": 1}, LongestRunning: 100 * time.Second, HeartbeatOverdue: 1}},
		{name: "running without the condition: since the heartbeat",
			status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, LastHeartbeatTime: at(80 * time.Second)},
			want:   metrics.State{Phases: map[string]int{"Running": 1}, LongestRunning: 20 * time.Second}},
		{name: "succeeded: a phase, no running time",
			status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, LastHeartbeatTime: at(0), Conditions: claimedAt(0)},
			want:   metrics.State{Phases: map[string]int{"Succeeded": 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := &jobstatev1alpha1.JobState{Spec: jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](30)}, Status: tc.status}
			st := metrics.State{Phases: map[string]int{}}
			countJob(&st, js, now)
			if !maps.Equal(st.Phases, tc.want.Phases) || st.LongestRunning != tc.want.LongestRunning || st.HeartbeatOverdue != tc.want.HeartbeatOverdue {
				t.Errorf("countJob = %+v, want %+v", st, tc.want)
			}
		})
	}
}

// stateSeries is a reading of the state metrics from controller-runtime's
// registry: name{phase="..."} to value.
func stateSeries(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		switch f.GetName() {
		case "jobstate_jobstates", "jobstate_jobstates_longest_running_seconds", "jobstate_jobstates_heartbeat_overdue", "jobstate_projection_lag_events":
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// expectState waits up to 10s (the manager's cache follows the API server
// by a watch) for the state metrics to be want.
func expectState(t *testing.T, step string, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	got := stateSeries(t)
	for !maps.Equal(got, want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got = stateSeries(t)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%s: state metrics\n  %v\nwant\n  %v", step, got, want)
	}
}

// state is the state metrics of pending, running and the rest, with no
// JobState in another phase.
func state(pending, running, longest, overdue, lag float64) map[string]float64 {
	return map[string]float64{
		`jobstate_jobstates{phase="Pending"}`: pending, `jobstate_jobstates{phase="Running"}`: running,
		`jobstate_jobstates{phase="Succeeded"}`: 0, `jobstate_jobstates{phase="Failed"}`: 0, `jobstate_jobstates{phase="Cancelled"}`: 0,
		"jobstate_jobstates_longest_running_seconds": longest, "jobstate_jobstates_heartbeat_overdue": overdue,
		"jobstate_projection_lag_events": lag,
	}
}

// startStateMetrics runs a manager whose cache holds namespace ns only,
// with the state metrics runnable on the harness's clock, until the test
// ends.
func startStateMetrics(t *testing.T, ns string, h *harness) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(&stateMetrics{reader: mgr.GetCache(), clock: h.clock}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestStateMetrics: a manager (its cache on one namespace) reports the
// JobStates by phase, the longest Running attempt and the overdue
// heartbeats on its clock, and the projection lag, as a workload moves
// them: two jobs created and initialized, one claimed, its heartbeat let
// lapse and the attempt ended; a stream of 3 events for an event-sourced
// job, then projected.
func TestStateMetrics(t *testing.T) {
	ctx := t.Context()
	h := newHarness(t, jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](60)})
	ns := h.key.Namespace
	startStateMetrics(t, ns, h)
	expectState(t, "a new JobState, no phase yet", state(0, 0, 0, 0, 0))

	other := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	reconcileKey(t, h.r, client.ObjectKeyFromObject(other))
	h.reconcile()
	expectState(t, "both initialized", state(2, 0, 0, 0, 0))

	if _, err := h.worker.Claim(ctx, h.key); err != nil {
		t.Fatal(err)
	}
	expectState(t, "one claimed", state(1, 1, 0, 0, 0))
	h.clock.Step(90 * time.Second)
	expectState(t, "90s later, past the 60s heartbeat timeout", state(1, 1, 90, 1, 0))
	h.reconcile()
	h.expectPhase(jobstatev1alpha1.PhasePending, jobstatev1alpha1.ReasonHeartbeatTimeout)
	expectState(t, "the lost attempt ended", state(2, 0, 0, 0, 0))

	events, err := stream.New(env.Client, stream.Options{Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	claimed := jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"})
	heartbeat := jobstate.NewEvent(jobstate.EventHeartbeat, jobstate.EventPayload{Attempt: 1, Holder: "w1", Progress: 10})
	if _, err := events.Append(ctx, client.ObjectKey{Namespace: ns, Name: "sourced-events"}, []stream.EventData{claimed, heartbeat, heartbeat}, stream.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	sourced := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sourced"},
		Spec:       jobstatev1alpha1.JobStateSpec{EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "sourced-events"}},
	}
	if err := env.Client.Create(ctx, sourced); err != nil {
		t.Fatal(err)
	}
	expectState(t, "an event-sourced job 3 events behind", state(2, 0, 0, 0, 3))
	reconcileKey(t, h.r, client.ObjectKeyFromObject(sourced))
	expectState(t, "projected, its attempt claimed just now", state(2, 1, 0, 0, 0))
}

func reconcileKey(t *testing.T, r *JobStateReconciler, key client.ObjectKey) {
	t.Helper()
	if _, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatalf("Reconcile %s: %v", key, err)
	}
}

// TestRetentionDeletesAreCounted: every segment retention deletes counts
// in jobstate_stream_segments_deleted_total{reason="retention"}, exactly.
func TestRetentionDeletesAreCounted(t *testing.T) {
	h := newStreamHarness(t)
	h.append(400)
	es := h.sealedStream()
	segs, err := stream.ListSegments(t.Context(), env.Client, es)
	if err != nil {
		t.Fatal(err)
	}
	es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](150)}
	if err := env.Client.Update(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	deleted := metrics.SegmentsDeleted(metrics.SegmentRetention)
	before := testutil.ToFloat64(deleted)
	h.reconcile()
	kept, err := stream.ListSegments(t.Context(), env.Client, h.get())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := testutil.ToFloat64(deleted)-before, float64(len(segs)-len(kept)); got != want || want == 0 {
		t.Errorf("retention deleted %d of %d segments; the counter moved by %g", len(segs)-len(kept), len(segs), got)
	}
}
