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
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

// harness drives the reconciler by hand against the real API server, with a
// fake clock: each reconcile() is one Reconcile call at the clock's time.
type harness struct {
	t        *testing.T
	clock    *clocktesting.FakeClock
	recorder *events.FakeRecorder
	r        *JobStateReconciler
	worker   *jobstate.Client
	key      client.ObjectKey
}

func newHarness(t *testing.T, spec jobstatev1alpha1.JobStateSpec) *harness {
	t.Helper()
	h := &harness{t: t, clock: clocktesting.NewFakeClock(t0), recorder: events.NewFakeRecorder(100)}
	h.r = &JobStateReconciler{Client: env.Client, APIReader: env.Client, LeaseClient: env.Client, Recorder: h.recorder, Clock: h.clock}
	if err := h.r.init(); err != nil {
		t.Fatal(err)
	}
	var err error
	h.worker, err = jobstate.New(env.Client, jobstate.Options{Identity: "worker-1", Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "job"}, Spec: spec}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	h.key = client.ObjectKeyFromObject(js)
	return h
}

func (h *harness) reconcile() ctrl.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(h.t.Context(), ctrl.Request{NamespacedName: h.key})
	if err != nil {
		h.t.Fatalf("Reconcile: %v", err)
	}
	return res
}

func (h *harness) get() *jobstatev1alpha1.JobState {
	h.t.Helper()
	js := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(h.t.Context(), h.key, js); err != nil {
		h.t.Fatal(err)
	}
	return js
}

func (h *harness) expectPhase(phase jobstatev1alpha1.JobPhase, reason string) *jobstatev1alpha1.JobState {
	h.t.Helper()
	js := h.get()
	if js.Status.Phase != phase || js.Status.Reason != reason {
		h.t.Fatalf("status = %s/%s (%s), want %s/%s", js.Status.Phase, js.Status.Reason, js.Status.Message, phase, reason)
	}
	return js
}

func (h *harness) expectEvent(substr string) {
	h.t.Helper()
	select {
	case e := <-h.recorder.Events:
		if !strings.Contains(e, substr) {
			h.t.Errorf("event %q, want one containing %q", e, substr)
		}
	default:
		h.t.Errorf("no event, want one containing %q", substr)
	}
}

func TestReconcilerInitializesAndRetriesALostHolder(t *testing.T) {
	// backoffLimit 1: one retry, two attempts.
	h := newHarness(t, jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](30), BackoffLimit: ptr.To[int32](1)})

	if res := h.reconcile(); res.RequeueAfter != 0 {
		t.Errorf("pending job: RequeueAfter = %s, want none", res.RequeueAfter)
	}
	js := h.expectPhase(jobstatev1alpha1.PhasePending, jobstatev1alpha1.ReasonCreated)
	if js.Status.ObservedGeneration != js.Generation {
		t.Errorf("observedGeneration = %d, want %d", js.Status.ObservedGeneration, js.Generation)
	}
	h.expectEvent("Normal Created")

	a1, err := h.worker.Claim(t.Context(), h.key)
	if err != nil {
		t.Fatal(err)
	}
	if res := h.reconcile(); res.RequeueAfter != 30*time.Second {
		t.Errorf("running job: RequeueAfter = %s, want the 30s heartbeat timeout", res.RequeueAfter)
	}

	h.clock.Step(31 * time.Second)
	h.reconcile()
	js = h.expectPhase(jobstatev1alpha1.PhasePending, jobstatev1alpha1.ReasonHeartbeatTimeout)
	if js.Status.Holder != "" || js.Status.RetryAfter == nil {
		t.Errorf("lost attempt: holder %q retryAfter %v, want no holder and a retry time", js.Status.Holder, js.Status.RetryAfter)
	}
	h.expectEvent("Warning HeartbeatTimeout")

	// The lost worker comes back: fenced.
	if err := h.worker.Heartbeat(t.Context(), a1, 50, nil); !errors.Is(err, lifecycle.ErrFenced) {
		t.Fatalf("stale heartbeat: err = %v, want ErrFenced", err)
	}
	// No claim before the retry backoff passes.
	if _, err := h.worker.Claim(t.Context(), h.key); !errors.Is(err, lifecycle.ErrBackingOff) {
		t.Fatalf("claim during backoff: err = %v, want ErrBackingOff", err)
	}
	h.clock.Step(lifecycle.RetryBackoff(1))
	if _, err := h.worker.Claim(t.Context(), h.key); err != nil {
		t.Fatal(err)
	}

	h.clock.Step(31 * time.Second)
	h.reconcile()
	js = h.expectPhase(jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.ReasonBackoffLimitExceeded)
	if js.Status.Attempt != 2 || js.Status.CompletionTime == nil {
		t.Errorf("attempt %d completionTime %v, want 2 and set", js.Status.Attempt, js.Status.CompletionTime)
	}
	h.expectEvent("Warning BackoffLimitExceeded")
}

// TestBackoffLimitZeroFailsOnTheFirstFailure: with backoffLimit 0 (no
// retries, as on a Kubernetes Job; the API server accepts it) the first
// failure fails the job — a holder the reconciler declares lost, or a
// worker's Fail — with BackoffLimitExceeded and a Warning Event, and no
// second attempt can be claimed.
func TestBackoffLimitZeroFailsOnTheFirstFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(h *harness, a jobstate.Attempt)
	}{{
		name: "holder lost",
		end: func(h *harness, _ jobstate.Attempt) {
			h.clock.Step(31 * time.Second)
			h.reconcile()
		},
	}, {
		name: "worker fails",
		end: func(h *harness, a jobstate.Attempt) {
			worker, err := jobstate.New(env.Client, jobstate.Options{Identity: "worker-1", Clock: h.clock, Recorder: h.recorder})
			if err != nil {
				h.t.Fatal(err)
			}
			if err := worker.Fail(h.t.Context(), a, "disk full"); err != nil {
				h.t.Fatal(err)
			}
			h.reconcile()
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](30), BackoffLimit: ptr.To[int32](0)})
			if got := ptr.Deref(h.get().Spec.BackoffLimit, -1); got != 0 {
				t.Fatalf("stored backoffLimit = %d, want 0", got)
			}
			h.reconcile()
			h.expectEvent("Normal Created")
			a, err := h.worker.Claim(t.Context(), h.key)
			if err != nil {
				t.Fatal(err)
			}
			tc.end(h, a)

			js := h.expectPhase(jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.ReasonBackoffLimitExceeded)
			if js.Status.Attempt != 1 || js.Status.CompletionTime == nil || js.Status.RetryAfter != nil {
				t.Errorf("attempt %d completionTime %v retryAfter %v, want 1, set and unset", js.Status.Attempt, js.Status.CompletionTime, js.Status.RetryAfter)
			}
			h.expectEvent("Warning BackoffLimitExceeded")
			select {
			case e := <-h.recorder.Events:
				t.Errorf("unexpected second event %q", e)
			default:
			}
			h.clock.Step(lifecycle.RetryBackoff(1))
			if _, err := h.worker.Claim(t.Context(), h.key); !errors.Is(err, lifecycle.ErrIllegalTransition) {
				t.Errorf("claim of a Failed job: err = %v, want ErrIllegalTransition", err)
			}
		})
	}
}

func TestReconcilerActiveDeadline(t *testing.T) {
	h := newHarness(t, jobstatev1alpha1.JobStateSpec{ActiveDeadlineSeconds: ptr.To[int64](100), HeartbeatTimeoutSeconds: ptr.To[int32](300)})
	h.reconcile()
	if _, err := h.worker.Claim(t.Context(), h.key); err != nil {
		t.Fatal(err)
	}
	if res := h.reconcile(); res.RequeueAfter != 100*time.Second {
		t.Errorf("RequeueAfter = %s, want the 100s deadline", res.RequeueAfter)
	}
	h.clock.Step(100 * time.Second)
	h.reconcile()
	h.expectPhase(jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.ReasonDeadlineExceeded)
}

func TestReconcilerCancelAndTTL(t *testing.T) {
	h := newHarness(t, jobstatev1alpha1.JobStateSpec{TTLSecondsAfterFinished: ptr.To[int32](60)})
	h.reconcile()
	// A person cancels with kubectl patch.
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"cancel":true}}`))
	if err := env.Client.Patch(t.Context(), h.get(), patch); err != nil {
		t.Fatal(err)
	}
	if res := h.reconcile(); res.RequeueAfter != 60*time.Second {
		t.Errorf("RequeueAfter = %s, want the 60s TTL", res.RequeueAfter)
	}
	h.expectPhase(jobstatev1alpha1.PhaseCancelled, jobstatev1alpha1.ReasonCancelled)

	h.clock.Step(60 * time.Second)
	h.reconcile()
	err := env.Client.Get(t.Context(), h.key, &jobstatev1alpha1.JobState{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("after TTL: Get = %v, want NotFound", err)
	}
	// Reconciling a deleted job is a no-op.
	h.reconcile()
}

// TestReconcilerNeverLosesAWorkersWrite runs the real manager (cache,
// watches, real clock) while a worker heartbeats 100 times, incrementing a
// counter in status.data, and a person edits the spec 20 times, each edit
// making the reconciler write status.observedGeneration. Every heartbeat and
// the last observedGeneration must be in the final status.
func TestReconcilerNeverLosesAWorkersWrite(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	r := &JobStateReconciler{Client: mgr.GetClient()}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	defer wg.Wait()
	defer cancel()

	ns := env.Namespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "busy"}
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "busy"}}
	if err := env.Client.Create(ctx, js); err != nil {
		t.Fatal(err)
	}
	worker, err := jobstate.New(env.Client, jobstate.Options{Identity: "worker-1"})
	if err != nil {
		t.Fatal(err)
	}
	var attempt jobstate.Attempt
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		attempt, err = worker.Claim(ctx, key)
		return err == nil, nil // Pending once the controller initialized it
	}); err != nil {
		t.Fatalf("claim: %v", err)
	}

	const heartbeats, edits = 100, 20
	var writers sync.WaitGroup
	writers.Go(func() {
		for i := range heartbeats {
			err := worker.Heartbeat(ctx, attempt, int32(i%100), nil)
			if err == nil {
				_, err = worker.Update(ctx, key, func(js *jobstatev1alpha1.JobState) error {
					data, err := jobstate.Data(js)
					if err != nil {
						return err
					}
					n, _ := data["heartbeats"].(float64)
					return jobstate.MergeData(js, map[string]any{"heartbeats": n + 1})
				})
			}
			if err != nil {
				t.Errorf("heartbeat %d: %v", i, err)
				return
			}
		}
	})
	writers.Go(func() {
		for i := range edits {
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"activeDeadlineSeconds":`+strconv.Itoa(3600+i)+`}}`))
			if err := env.Client.Patch(ctx, &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "busy"}}, patch); err != nil {
				t.Errorf("edit %d: %v", i, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	writers.Wait()

	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, key, js); err != nil {
			return false, err
		}
		return js.Status.ObservedGeneration == js.Generation, nil
	})
	if err != nil {
		t.Fatalf("reconciler never observed generation %d (at %d): %v", js.Generation, js.Status.ObservedGeneration, err)
	}
	data, err := jobstate.Data(js)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := data["heartbeats"].(float64); got != heartbeats {
		t.Errorf("heartbeats counted = %v, want exactly %d", got, heartbeats)
	}
	if js.Status.Phase != jobstatev1alpha1.PhaseRunning || js.Status.Holder != "worker-1" {
		t.Errorf("status %s held by %q, want Running by worker-1", js.Status.Phase, js.Status.Holder)
	}
}
