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

package lifecycle_test

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

const (
	pending   = jobstatev1alpha1.PhasePending
	running   = jobstatev1alpha1.PhaseRunning
	succeeded = jobstatev1alpha1.PhaseSucceeded
	failed    = jobstatev1alpha1.PhaseFailed
	cancelled = jobstatev1alpha1.PhaseCancelled
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// TestAllowed is the whole transition table: every event from every phase.
func TestAllowed(t *testing.T) {
	phases := []jobstatev1alpha1.JobPhase{"", pending, running, succeeded, failed, cancelled}
	legal := map[lifecycle.Transition][]jobstatev1alpha1.JobPhase{
		lifecycle.Initialize:     {""},
		lifecycle.Claim:          {pending},
		lifecycle.Heartbeat:      {running},
		lifecycle.Succeed:        {running},
		lifecycle.Fail:           {running},
		lifecycle.Lose:           {running},
		lifecycle.ExceedDeadline: {pending, running},
		lifecycle.Cancel:         {"", pending, running},
	}
	for ev, from := range legal {
		for _, p := range phases {
			want := false
			for _, f := range from {
				want = want || f == p
			}
			err := lifecycle.Allowed(p, ev)
			if (err == nil) != want {
				t.Errorf("Allowed(%q, %s) = %v, want allowed=%v", p, ev, err, want)
			}
			if err != nil && !errors.Is(err, lifecycle.ErrIllegalTransition) {
				t.Errorf("Allowed(%q, %s) error %v does not match ErrIllegalTransition", p, ev, err)
			}
		}
	}
	// No event leaves a terminal phase.
	for _, p := range []jobstatev1alpha1.JobPhase{succeeded, failed, cancelled} {
		for ev := range legal {
			if lifecycle.Allowed(p, ev) == nil {
				t.Errorf("%s allowed from terminal phase %s", ev, p)
			}
		}
	}
}

func job(phase jobstatev1alpha1.JobPhase, attempt int32, holder string) *jobstatev1alpha1.JobState {
	js := &jobstatev1alpha1.JobState{Spec: jobstatev1alpha1.JobStateSpec{BackoffLimit: ptr.To[int32](2)}} // 3 attempts
	js.Status.Phase, js.Status.Attempt, js.Status.Holder = phase, attempt, holder
	if phase == running {
		t := metav1.NewTime(now.Add(-time.Minute))
		js.Status.StartTime, js.Status.LastHeartbeatTime = &t, &t
	}
	return js
}

// TestSetters drives each status setter from a starting status and checks
// the resulting status, or that it failed with the right error and left the
// status unchanged.
func TestSetters(t *testing.T) {
	fence := lifecycle.Fence{Holder: "w1", Attempt: 2}
	retryAt := metav1.NewTime(now.Add(10 * time.Second)) // RetryBackoff(2)
	for _, tc := range []struct {
		name    string
		js      *jobstatev1alpha1.JobState
		do      func(js *jobstatev1alpha1.JobState) error
		wantErr error
		check   func(t *testing.T, s jobstatev1alpha1.JobStateStatus)
	}{{
		name: "initialize",
		js:   job("", 0, ""),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoInitialize(js, now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == pending && s.Reason == jobstatev1alpha1.ReasonCreated, "Pending/Created, got %s/%s", s.Phase, s.Reason)
			expectCondition(t, s, jobstatev1alpha1.ConditionRunning, metav1.ConditionFalse, jobstatev1alpha1.ReasonCreated)
		},
	}, {
		name: "claim starts the next attempt",
		js:   job(pending, 1, ""),
		do:   func(js *jobstatev1alpha1.JobState) error { _, err := lifecycle.DoClaim(js, "w2", now); return err },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == running && s.Attempt == 2 && s.Holder == "w2", "Running attempt 2 by w2, got %s %d %q", s.Phase, s.Attempt, s.Holder)
			expect(t, s.StartTime.Equal(&metav1.Time{Time: now}) && s.LastHeartbeatTime.Equal(&metav1.Time{Time: now}), "start and heartbeat at now")
			expectCondition(t, s, jobstatev1alpha1.ConditionRunning, metav1.ConditionTrue, jobstatev1alpha1.ReasonClaimed)
		},
	}, {
		name:    "claim of a running job",
		js:      job(running, 1, "w1"),
		do:      func(js *jobstatev1alpha1.JobState) error { _, err := lifecycle.DoClaim(js, "w2", now); return err },
		wantErr: lifecycle.ErrIllegalTransition,
	}, {
		name: "claim during retry backoff",
		js: func() *jobstatev1alpha1.JobState {
			js := job(pending, 1, "")
			js.Status.RetryAfter = &retryAt
			return js
		}(),
		do:      func(js *jobstatev1alpha1.JobState) error { _, err := lifecycle.DoClaim(js, "w2", now); return err },
		wantErr: lifecycle.ErrBackingOff,
	}, {
		name:    "claim needs an identity",
		js:      job(pending, 0, ""),
		do:      func(js *jobstatev1alpha1.JobState) error { _, err := lifecycle.DoClaim(js, "", now); return err },
		wantErr: errors.New("any"),
	}, {
		name: "heartbeat by the holder",
		js:   job(running, 2, "w1"),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoHeartbeat(js, fence, 40, now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Progress == 40 && s.LastHeartbeatTime.Time.Equal(now), "progress 40 at now, got %d at %v", s.Progress, s.LastHeartbeatTime)
		},
	}, {
		name:    "heartbeat of an earlier attempt is fenced",
		js:      job(running, 3, "w1"),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoHeartbeat(js, fence, 40, now) },
		wantErr: lifecycle.ErrFenced,
	}, {
		name:    "heartbeat by another holder is fenced",
		js:      job(running, 2, "w9"),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoHeartbeat(js, fence, 40, now) },
		wantErr: lifecycle.ErrFenced,
	}, {
		name:    "heartbeat after the attempt was lost is fenced",
		js:      job(pending, 2, ""),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoHeartbeat(js, fence, 40, now) },
		wantErr: lifecycle.ErrFenced,
	}, {
		name:    "heartbeat progress out of range",
		js:      job(running, 2, "w1"),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoHeartbeat(js, fence, 101, now) },
		wantErr: errors.New("any"),
	}, {
		name: "succeed",
		js:   job(running, 2, "w1"),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoSucceed(js, fence, "", now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == succeeded && s.Progress == 100 && s.CompletionTime.Time.Equal(now), "Succeeded at 100%% at now, got %s %d", s.Phase, s.Progress)
			expectCondition(t, s, jobstatev1alpha1.ConditionComplete, metav1.ConditionTrue, jobstatev1alpha1.ReasonSucceeded)
			expectCondition(t, s, jobstatev1alpha1.ConditionRunning, metav1.ConditionFalse, jobstatev1alpha1.ReasonSucceeded)
		},
	}, {
		name:    "succeed by a stale attempt is fenced",
		js:      job(running, 3, "w2"),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoSucceed(js, fence, "", now) },
		wantErr: lifecycle.ErrFenced,
	}, {
		name: "fail with retries left goes back to Pending with a backoff",
		js:   job(running, 2, "w1"),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoFail(js, fence, "disk full", now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == pending && s.Holder == "" && s.Attempt == 2, "Pending attempt 2 without holder, got %s %d %q", s.Phase, s.Attempt, s.Holder)
			expect(t, s.RetryAfter != nil && s.RetryAfter.Time.Equal(retryAt.Time), "retryAfter %v, got %v", retryAt, s.RetryAfter)
			expect(t, s.Reason == jobstatev1alpha1.ReasonWorkerFailed, "reason WorkerFailed, got %s", s.Reason)
		},
	}, {
		name: "fail of the last attempt fails the job",
		js:   job(running, 3, "w1"),
		do: func(js *jobstatev1alpha1.JobState) error {
			return lifecycle.DoFail(js, lifecycle.Fence{Holder: "w1", Attempt: 3}, "disk full", now)
		},
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == failed && s.Reason == jobstatev1alpha1.ReasonBackoffLimitExceeded, "Failed/BackoffLimitExceeded, got %s/%s", s.Phase, s.Reason)
			expectCondition(t, s, jobstatev1alpha1.ConditionComplete, metav1.ConditionTrue, jobstatev1alpha1.ReasonBackoffLimitExceeded)
		},
	}, {
		name: "lose the holder",
		js:   job(running, 1, "w1"),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoLose(js, now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == pending && s.Reason == jobstatev1alpha1.ReasonHeartbeatTimeout && s.Holder == "", "Pending/HeartbeatTimeout, got %s/%s", s.Phase, s.Reason)
		},
	}, {
		name:    "lose a pending job",
		js:      job(pending, 1, ""),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoLose(js, now) },
		wantErr: lifecycle.ErrIllegalTransition,
	}, {
		name: "deadline",
		js:   job(running, 1, "w1"),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoExceedDeadline(js, now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == failed && s.Reason == jobstatev1alpha1.ReasonDeadlineExceeded, "Failed/DeadlineExceeded, got %s/%s", s.Phase, s.Reason)
		},
	}, {
		name: "cancel a pending job",
		js:   job(pending, 0, ""),
		do:   func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoCancel(js, "", now) },
		check: func(t *testing.T, s jobstatev1alpha1.JobStateStatus) {
			expect(t, s.Phase == cancelled && s.CompletionTime != nil, "Cancelled with completionTime, got %s", s.Phase)
		},
	}, {
		name:    "cancel a finished job",
		js:      job(succeeded, 1, "w1"),
		do:      func(js *jobstatev1alpha1.JobState) error { return lifecycle.DoCancel(js, "", now) },
		wantErr: lifecycle.ErrIllegalTransition,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.js.DeepCopy()
			err := tc.do(tc.js)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want %v", tc.wantErr)
				}
				if tc.wantErr.Error() != "any" && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v does not match %v", err, tc.wantErr)
				}
				if !equality.Semantic.DeepEqual(before.Status, tc.js.Status) {
					t.Errorf("a failed setter changed the status:\nbefore %+v\nafter  %+v", before.Status, tc.js.Status)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tc.check(t, tc.js.Status)
		})
	}
}

// TestBackoffLimitCountsRetries: spec.backoffLimit is the number of
// retries, as on a Kubernetes Job. Each job is claimed and ended by a
// worker's Fail or a lost holder until it is Failed; it must have made
// exactly backoffLimit+1 attempts, the last one ending with
// BackoffLimitExceeded and every earlier one back in Pending.
func TestBackoffLimitCountsRetries(t *testing.T) {
	fail := func(js *jobstatev1alpha1.JobState, a int32) error {
		return lifecycle.DoFail(js, lifecycle.Fence{Holder: "w1", Attempt: a}, "disk full", now)
	}
	lose := func(js *jobstatev1alpha1.JobState, _ int32) error { return lifecycle.DoLose(js, now) }
	for _, tc := range []struct {
		name         string
		backoffLimit *int32
		wantAttempts int32
	}{
		{"0 fails on the first failure", ptr.To[int32](0), 1},
		{"1 retries once", ptr.To[int32](1), 2},
		{"2", ptr.To[int32](2), 3},
		{"100, the maximum", ptr.To[int32](100), 101},
		{"unset is the default, 2: the 3 attempts it always was", nil, 3},
	} {
		for end, do := range map[string]func(*jobstatev1alpha1.JobState, int32) error{"fail": fail, "lose": lose} {
			t.Run(tc.name+"/"+end, func(t *testing.T) {
				js := &jobstatev1alpha1.JobState{Spec: jobstatev1alpha1.JobStateSpec{BackoffLimit: tc.backoffLimit}}
				if err := lifecycle.DoInitialize(js, now); err != nil {
					t.Fatal(err)
				}
				if got := lifecycle.MaxAttempts(js); got != tc.wantAttempts {
					t.Errorf("MaxAttempts = %d, want %d", got, tc.wantAttempts)
				}
				for js.Status.Phase != failed {
					if js.Status.Attempt > tc.wantAttempts {
						t.Fatalf("still retrying after %d attempts, want Failed after %d", js.Status.Attempt, tc.wantAttempts)
					}
					js.Status.RetryAfter = nil // the backoff is TestSetters'
					a, err := lifecycle.DoClaim(js, "w1", now)
					if err != nil {
						t.Fatalf("claim after attempt %d: %v", js.Status.Attempt, err)
					}
					if err := do(js, a.Attempt); err != nil {
						t.Fatalf("%s attempt %d: %v", end, a.Attempt, err)
					}
					if js.Status.Phase != failed && js.Status.Phase != pending {
						t.Fatalf("after %s of attempt %d: phase %s, want Pending or Failed", end, a.Attempt, js.Status.Phase)
					}
				}
				s := js.Status
				expect(t, s.Attempt == tc.wantAttempts, "Failed after %d attempts, got %d", tc.wantAttempts, s.Attempt)
				expect(t, s.Reason == jobstatev1alpha1.ReasonBackoffLimitExceeded, "reason BackoffLimitExceeded, got %s", s.Reason)
				expectCondition(t, s, jobstatev1alpha1.ConditionComplete, metav1.ConditionTrue, jobstatev1alpha1.ReasonBackoffLimitExceeded)
			})
		}
	}
}

// TestLoweredBackoffLimit: a limit lowered below the retries already made
// fails the job on its next failure instead of retrying it.
func TestLoweredBackoffLimit(t *testing.T) {
	js := job(running, 3, "w1")
	js.Spec.BackoffLimit = ptr.To[int32](0)
	if err := lifecycle.DoFail(js, lifecycle.Fence{Holder: "w1", Attempt: 3}, "disk full", now); err != nil {
		t.Fatal(err)
	}
	s := js.Status
	expect(t, s.Phase == failed && s.Reason == jobstatev1alpha1.ReasonBackoffLimitExceeded, "Failed/BackoffLimitExceeded, got %s/%s", s.Phase, s.Reason)
}

func TestFencedErrorNamesBothAttempts(t *testing.T) {
	js := job(running, 3, "w2")
	err := lifecycle.DoHeartbeat(js, lifecycle.Fence{Holder: "w1", Attempt: 2}, 10, now)
	var fenced *lifecycle.FencedError
	if !errors.As(err, &fenced) {
		t.Fatalf("err = %v, want *FencedError", err)
	}
	want := `attempt 2 held by "w1" is no longer current: the job is Running at attempt 3 held by "w2"`
	if err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
}

func TestRetryBackoff(t *testing.T) {
	for attempt, want := range map[int32]time.Duration{
		1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 6: 160 * time.Second, 7: 5 * time.Minute, 40: 5 * time.Minute,
	} {
		if got := lifecycle.RetryBackoff(attempt); got != want {
			t.Errorf("RetryBackoff(%d) = %s, want %s", attempt, got, want)
		}
	}
}

func expect(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf("want "+format, args...)
	}
}

func expectCondition(t *testing.T, s jobstatev1alpha1.JobStateStatus, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := meta.FindStatusCondition(s.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Errorf("condition %s = %+v, want %s/%s", typ, c, status, reason)
	}
}

// TestDeadlines covers HeartbeatExpiry and ActiveDeadline in every phase
// that has one and the ones that do not.
func TestDeadlines(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	job := func(phase jobstatev1alpha1.JobPhase, started, beat bool) *jobstatev1alpha1.JobState {
		js := &jobstatev1alpha1.JobState{}
		js.Spec.HeartbeatTimeoutSeconds = ptr.To[int32](30)
		js.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
		js.Status.Phase = phase
		if started {
			js.Status.StartTime = &metav1.Time{Time: t0}
		}
		if beat {
			js.Status.LastHeartbeatTime = &metav1.Time{Time: t0.Add(time.Minute)}
		}
		return js
	}
	for _, c := range []struct {
		name               string
		js                 *jobstatev1alpha1.JobState
		heartbeat, active  time.Time
		hasBeat, hasActive bool
	}{
		{"running", job(jobstatev1alpha1.PhaseRunning, true, true), t0.Add(time.Minute + 30*time.Second), t0.Add(10 * time.Minute), true, true},
		{"running, no heartbeat yet", job(jobstatev1alpha1.PhaseRunning, true, false), time.Time{}, t0.Add(10 * time.Minute), false, true},
		{"pending after a failure", job(jobstatev1alpha1.PhasePending, true, true), time.Time{}, t0.Add(10 * time.Minute), false, true},
		{"pending, never started", job(jobstatev1alpha1.PhasePending, false, false), time.Time{}, time.Time{}, false, false},
		{"succeeded", job(jobstatev1alpha1.PhaseSucceeded, true, true), time.Time{}, time.Time{}, false, false},
		{"uninitialized", job("", true, true), time.Time{}, time.Time{}, false, false},
	} {
		hb, okHB := lifecycle.HeartbeatExpiry(c.js)
		ad, okAD := lifecycle.ActiveDeadline(c.js)
		if okHB != c.hasBeat || !hb.Equal(c.heartbeat) || okAD != c.hasActive || !ad.Equal(c.active) {
			t.Errorf("%s: heartbeat %v %v, active %v %v; want %v %v, %v %v", c.name, hb, okHB, ad, okAD, c.heartbeat, c.hasBeat, c.active, c.hasActive)
		}
	}
}
