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
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(t0.Add(d)); return &t }

// newJob builds a JobState: heartbeat timeout 30s, backoffLimit 1 (two
// attempts), deadline 600s, TTL 60s.
func newJob(mutate func(js *jobstatev1alpha1.JobState)) *jobstatev1alpha1.JobState {
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Generation: 4},
		Spec: jobstatev1alpha1.JobStateSpec{
			BackoffLimit:            ptr.To[int32](1),
			HeartbeatTimeoutSeconds: ptr.To[int32](30),
			ActiveDeadlineSeconds:   ptr.To[int64](600),
			TTLSecondsAfterFinished: ptr.To[int32](60),
		},
	}
	mutate(js)
	return js
}

func running(attempt int32, heartbeat time.Duration) func(js *jobstatev1alpha1.JobState) {
	return func(js *jobstatev1alpha1.JobState) {
		js.Status = jobstatev1alpha1.JobStateStatus{
			Phase: jobstatev1alpha1.PhaseRunning, Attempt: attempt, Holder: "w1",
			StartTime: at(0), LastHeartbeatTime: at(heartbeat),
		}
	}
}

// TestApplyDueTransitions is the table of the reconciler's decisions: the
// starting status and the time, the phase and reason it leaves, the Events
// it records, and when it asks to be called again.
func TestApplyDueTransitions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		js         *jobstatev1alpha1.JobState
		now        time.Duration // since t0
		wantPhase  jobstatev1alpha1.JobPhase
		wantReason string
		wantEvents []string // eventType/reason
		wantNext   time.Duration
	}{{
		name:       "new job is initialized",
		js:         newJob(func(*jobstatev1alpha1.JobState) {}),
		wantPhase:  jobstatev1alpha1.PhasePending,
		wantReason: jobstatev1alpha1.ReasonCreated,
		wantEvents: []string{"Normal/Created"},
	}, {
		name:       "new job with cancel is initialized and cancelled",
		js:         newJob(func(js *jobstatev1alpha1.JobState) { js.Spec.Cancel = true }),
		wantPhase:  jobstatev1alpha1.PhaseCancelled,
		wantReason: jobstatev1alpha1.ReasonCancelled,
		wantEvents: []string{"Normal/Created", "Normal/Cancelled"},
		wantNext:   60 * time.Second, // TTL
	}, {
		name:      "running with a fresh heartbeat: wait for the heartbeat timeout",
		js:        newJob(running(1, 10*time.Second)),
		now:       20 * time.Second,
		wantPhase: jobstatev1alpha1.PhaseRunning,
		wantNext:  20 * time.Second, // heartbeat at 10s + 30s timeout
	}, {
		name:       "holder lost with retries left: back to Pending",
		js:         newJob(running(1, 10*time.Second)),
		now:        40 * time.Second,
		wantPhase:  jobstatev1alpha1.PhasePending,
		wantReason: jobstatev1alpha1.ReasonHeartbeatTimeout,
		wantEvents: []string{"Warning/HeartbeatTimeout"},
		wantNext:   560 * time.Second, // active deadline at 600s
	}, {
		name:       "holder lost on the last attempt: Failed",
		js:         newJob(running(2, 10*time.Second)),
		now:        45 * time.Second,
		wantPhase:  jobstatev1alpha1.PhaseFailed,
		wantReason: jobstatev1alpha1.ReasonBackoffLimitExceeded,
		wantEvents: []string{"Warning/BackoffLimitExceeded"},
		wantNext:   60 * time.Second, // TTL: completed now
	}, {
		name:       "active deadline passed",
		js:         newJob(running(1, 595*time.Second)),
		now:        600 * time.Second,
		wantPhase:  jobstatev1alpha1.PhaseFailed,
		wantReason: jobstatev1alpha1.ReasonDeadlineExceeded,
		wantEvents: []string{"Warning/DeadlineExceeded"},
		wantNext:   60 * time.Second,
	}, {
		name: "cancel while running",
		js: newJob(func(js *jobstatev1alpha1.JobState) {
			running(1, 0)(js)
			js.Spec.Cancel = true
		}),
		now:        5 * time.Second,
		wantPhase:  jobstatev1alpha1.PhaseCancelled,
		wantReason: jobstatev1alpha1.ReasonCancelled,
		wantEvents: []string{"Normal/Cancelled"},
		wantNext:   60 * time.Second,
	}, {
		name: "finished job is left alone until its TTL",
		js: newJob(func(js *jobstatev1alpha1.JobState) {
			js.Status = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Reason: jobstatev1alpha1.ReasonSucceeded, Attempt: 1, CompletionTime: at(0)}
		}),
		now:        30 * time.Second,
		wantPhase:  jobstatev1alpha1.PhaseSucceeded,
		wantReason: jobstatev1alpha1.ReasonSucceeded,
		wantNext:   30 * time.Second,
	}, {
		name: "overdue TTL asks for an immediate requeue",
		js: newJob(func(js *jobstatev1alpha1.JobState) {
			js.Status = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Reason: jobstatev1alpha1.ReasonSucceeded, Attempt: 1, CompletionTime: at(0)}
		}),
		now:        90 * time.Second,
		wantPhase:  jobstatev1alpha1.PhaseSucceeded,
		wantReason: jobstatev1alpha1.ReasonSucceeded,
		wantNext:   time.Millisecond,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.now)
			done := applyDueTransitions(tc.js, now)
			s := tc.js.Status
			if s.Phase != tc.wantPhase || (tc.wantReason != "" && s.Reason != tc.wantReason) {
				t.Errorf("phase/reason = %s/%s, want %s/%s", s.Phase, s.Reason, tc.wantPhase, tc.wantReason)
			}
			var events []string
			for _, d := range done {
				events = append(events, d.eventType+"/"+d.reason)
			}
			if len(events) != len(tc.wantEvents) {
				t.Errorf("events = %v, want %v", events, tc.wantEvents)
			} else {
				for i := range events {
					if events[i] != tc.wantEvents[i] {
						t.Errorf("events = %v, want %v", events, tc.wantEvents)
					}
				}
			}
			if s.ObservedGeneration != tc.js.Generation {
				t.Errorf("observedGeneration = %d, want %d", s.ObservedGeneration, tc.js.Generation)
			}
			if got := nextCheck(tc.js, now); got != tc.wantNext {
				t.Errorf("nextCheck = %s, want %s", got, tc.wantNext)
			}
		})
	}
}

// TestBackoffLimitOfLostHolders: spec.backoffLimit counts retries, as on a
// Kubernetes Job. Each attempt is claimed and its holder then stops
// heartbeating; the reconciler's decision must retry it (Pending,
// HeartbeatTimeout) until backoffLimit retries were made and fail the job
// (BackoffLimitExceeded) when the next attempt is lost: after exactly
// backoffLimit+1 attempts.
func TestBackoffLimitOfLostHolders(t *testing.T) {
	lost, exceeded := "Warning/"+jobstatev1alpha1.ReasonHeartbeatTimeout, "Warning/"+jobstatev1alpha1.ReasonBackoffLimitExceeded
	for _, tc := range []struct {
		name         string
		backoffLimit *int32
		wantEvents   []string // eventType/reason, one per attempt
	}{{
		name:         "0 fails on the first failure",
		backoffLimit: ptr.To[int32](0),
		wantEvents:   []string{exceeded},
	}, {
		name:         "1 retries once: the second failure fails",
		backoffLimit: ptr.To[int32](1),
		wantEvents:   []string{lost, exceeded},
	}, {
		name:       "unset is the default, 2: three attempts",
		wantEvents: []string{lost, lost, exceeded},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJob(func(js *jobstatev1alpha1.JobState) {
				js.Spec.BackoffLimit = tc.backoffLimit
				js.Spec.ActiveDeadlineSeconds = nil
			})
			now := t0
			if done := applyDueTransitions(js, now); len(done) != 1 || done[0].reason != jobstatev1alpha1.ReasonCreated {
				t.Fatalf("initialization made %v, want Created", done)
			}
			var events []string
			for js.Status.Phase != jobstatev1alpha1.PhaseFailed && len(events) <= len(tc.wantEvents) {
				if r := js.Status.RetryAfter; r != nil {
					now = r.Time
				}
				if _, err := lifecycle.DoClaim(js, "w1", now); err != nil {
					t.Fatalf("claim after %d attempts: %v", js.Status.Attempt, err)
				}
				now = now.Add(lifecycle.HeartbeatTimeout(js))
				for _, d := range applyDueTransitions(js, now) {
					events = append(events, d.eventType+"/"+d.reason)
				}
			}
			if strings.Join(events, ",") != strings.Join(tc.wantEvents, ",") {
				t.Errorf("events = %v, want %v", events, tc.wantEvents)
			}
			s := js.Status
			if want := int32(len(tc.wantEvents)); s.Phase != jobstatev1alpha1.PhaseFailed || s.Reason != jobstatev1alpha1.ReasonBackoffLimitExceeded || s.Attempt != want {
				t.Errorf("status %s/%s after %d attempts, want Failed/BackoffLimitExceeded after %d", s.Phase, s.Reason, s.Attempt, want)
			}
			if want := int32(len(tc.wantEvents)); lifecycle.MaxAttempts(js) != want {
				t.Errorf("lifecycle.MaxAttempts = %d, want %d", lifecycle.MaxAttempts(js), want)
			}
		})
	}
}

// TestDueTimer checks that a directly written status and an event-sourced
// one act on the same timer, in the one order dueTimer owns: spec.cancel,
// then the active deadline, then the heartbeat timeout.
func TestDueTimer(t *testing.T) {
	overdue := running(1, 0) // heartbeat timeout at 30s, active deadline at 600s
	for _, tc := range []struct {
		name       string
		js         *jobstatev1alpha1.JobState
		now        time.Duration // since t0
		wantEvent  string        // appended to the stream; "" for none
		wantReason string        // written by applyDueTransitions; "" for no transition
	}{{
		name:       "cancel comes before an overdue deadline and heartbeat",
		js:         newJob(func(js *jobstatev1alpha1.JobState) { overdue(js); js.Spec.Cancel = true }),
		now:        700 * time.Second,
		wantEvent:  "Cancelled",
		wantReason: jobstatev1alpha1.ReasonCancelled,
	}, {
		name:       "the deadline comes before an overdue heartbeat",
		js:         newJob(overdue),
		now:        700 * time.Second,
		wantEvent:  "DeadlineExceeded",
		wantReason: jobstatev1alpha1.ReasonDeadlineExceeded,
	}, {
		name:       "heartbeat timeout",
		js:         newJob(overdue),
		now:        40 * time.Second,
		wantEvent:  "Lost",
		wantReason: jobstatev1alpha1.ReasonHeartbeatTimeout,
	}, {
		name: "nothing due",
		js:   newJob(overdue),
		now:  10 * time.Second,
	}, {
		name: "a finished job has no timer",
		js: newJob(func(js *jobstatev1alpha1.JobState) {
			js.Spec.Cancel = true
			js.Status = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Attempt: 1, StartTime: at(0), CompletionTime: at(0)}
		}),
		now: 700 * time.Second,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.now)
			ev, due := dueEvent(tc.js, now)
			if due != (tc.wantEvent != "") || ev.Type != tc.wantEvent {
				t.Errorf("dueEvent = %q, %t; want %q", ev.Type, due, tc.wantEvent)
			}
			var reasons []string
			for _, d := range applyDueTransitions(tc.js.DeepCopy(), now) {
				reasons = append(reasons, d.reason)
			}
			if got := strings.Join(reasons, ","); got != tc.wantReason {
				t.Errorf("applyDueTransitions made %q, want %q", got, tc.wantReason)
			}
		})
	}
}
