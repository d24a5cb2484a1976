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

package lifecycle

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/text"
)

// The functions below are the status setters: each checks that its
// transition is legal, then changes js.Status exactly as the transition
// demands (phase, attempt, holder, times, reason, message, conditions). On
// error js is unchanged.

// DoInitialize gives a new JobState its first phase, Pending.
func DoInitialize(js *jobstatev1alpha1.JobState, now time.Time) error {
	if err := Allowed(js.Status.Phase, Initialize); err != nil {
		return err
	}
	s := &js.Status
	setPhase(s, jobstatev1alpha1.PhasePending, jobstatev1alpha1.ReasonCreated, "Waiting for a worker to claim the first attempt")
	setRunning(s, metav1.ConditionFalse, jobstatev1alpha1.ReasonCreated, "No attempt has been claimed", js.Generation, now)
	return nil
}

// DoClaim starts the next attempt for holder and returns its Fence.
func DoClaim(js *jobstatev1alpha1.JobState, holder string, now time.Time) (Fence, error) {
	s := &js.Status
	if err := Allowed(s.Phase, Claim); err != nil {
		return Fence{}, err
	}
	if holder == "" {
		return Fence{}, fmt.Errorf("claim: holder identity must not be empty")
	}
	if s.RetryAfter != nil && now.Before(s.RetryAfter.Time) {
		return Fence{}, &BackoffError{Until: s.RetryAfter.Time}
	}
	t := metav1.NewTime(now)
	s.Attempt++
	s.Holder = holder
	s.Progress = 0
	s.RetryAfter = nil
	s.LastHeartbeatTime = &t
	if s.StartTime == nil {
		s.StartTime = &t
	}
	msg := fmt.Sprintf("Attempt %d claimed by %s", s.Attempt, holder)
	setPhase(s, jobstatev1alpha1.PhaseRunning, jobstatev1alpha1.ReasonClaimed, msg)
	setRunning(s, metav1.ConditionTrue, jobstatev1alpha1.ReasonClaimed, msg, js.Generation, now)
	return Fence{Holder: holder, Attempt: s.Attempt}, nil
}

// DoHeartbeat records that the holder of f is alive at now with progress.
func DoHeartbeat(js *jobstatev1alpha1.JobState, f Fence, progress int32, now time.Time) error {
	s := &js.Status
	if err := checkFence(s, f); err != nil {
		return err
	}
	if progress < 0 || progress > jobstatev1alpha1.MaxProgress {
		return fmt.Errorf("heartbeat: progress %d is out of range 0-%d", progress, jobstatev1alpha1.MaxProgress)
	}
	t := metav1.NewTime(now)
	s.LastHeartbeatTime = &t
	s.Progress = progress
	return nil
}

// DoSucceed finishes the job successfully.
func DoSucceed(js *jobstatev1alpha1.JobState, f Fence, message string, now time.Time) error {
	s := &js.Status
	if err := checkFence(s, f); err != nil {
		return err
	}
	if message == "" {
		message = fmt.Sprintf("Attempt %d succeeded", s.Attempt)
	}
	s.Progress = jobstatev1alpha1.MaxProgress
	finish(js, jobstatev1alpha1.PhaseSucceeded, jobstatev1alpha1.ReasonSucceeded, message, now)
	return nil
}

// DoFail ends the holder's attempt with a failure: back to Pending with a
// retry backoff while retries remain (spec.backoffLimit), else
// Failed/BackoffLimitExceeded.
func DoFail(js *jobstatev1alpha1.JobState, f Fence, message string, now time.Time) error {
	if err := checkFence(&js.Status, f); err != nil {
		return err
	}
	endAttempt(js, jobstatev1alpha1.ReasonWorkerFailed, fmt.Sprintf("Attempt %d failed: %s", f.Attempt, message), now)
	return nil
}

// DoLose ends the current attempt because its holder stopped heartbeating;
// like DoFail, it retries while retries remain. The caller (the reconciler)
// decides that the heartbeat timed out; no fence is needed because the
// holder is, by definition, gone.
func DoLose(js *jobstatev1alpha1.JobState, now time.Time) error {
	s := &js.Status
	if err := Allowed(s.Phase, Lose); err != nil {
		return err
	}
	endAttempt(js, jobstatev1alpha1.ReasonHeartbeatTimeout,
		fmt.Sprintf("Holder %s of attempt %d stopped heartbeating", s.Holder, s.Attempt), now)
	return nil
}

// DoExceedDeadline fails the job because activeDeadlineSeconds passed.
func DoExceedDeadline(js *jobstatev1alpha1.JobState, now time.Time) error {
	if err := Allowed(js.Status.Phase, ExceedDeadline); err != nil {
		return err
	}
	msg := "Job was active longer than its activeDeadlineSeconds"
	if d := js.Spec.ActiveDeadlineSeconds; d != nil {
		msg = fmt.Sprintf("Job was active longer than activeDeadlineSeconds=%d", *d)
	}
	finish(js, jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.ReasonDeadlineExceeded, msg, now)
	return nil
}

// DoCancel cancels a job that has not finished.
func DoCancel(js *jobstatev1alpha1.JobState, message string, now time.Time) error {
	if err := Allowed(js.Status.Phase, Cancel); err != nil {
		return err
	}
	if message == "" {
		message = "Cancelled through spec.cancel"
	}
	finish(js, jobstatev1alpha1.PhaseCancelled, jobstatev1alpha1.ReasonCancelled, message, now)
	return nil
}

// BackoffLimit is spec.backoffLimit with its API default applied: the
// number of retries, as on a Kubernetes Job.
func BackoffLimit(js *jobstatev1alpha1.JobState) int32 {
	if js.Spec.BackoffLimit == nil {
		return jobstatev1alpha1.DefaultBackoffLimit
	}
	return *js.Spec.BackoffLimit
}

// MaxAttempts is how many attempts js may make: the first and
// BackoffLimit retries.
func MaxAttempts(js *jobstatev1alpha1.JobState) int32 {
	return BackoffLimit(js) + 1
}

// HeartbeatTimeout is spec.heartbeatTimeoutSeconds with its API default.
func HeartbeatTimeout(js *jobstatev1alpha1.JobState) time.Duration {
	seconds := jobstatev1alpha1.DefaultHeartbeatTimeoutSeconds
	if js.Spec.HeartbeatTimeoutSeconds != nil {
		seconds = *js.Spec.HeartbeatTimeoutSeconds
	}
	return time.Duration(seconds) * time.Second
}

// HeartbeatExpiry is when the holder of a Running job counts as lost: its
// last heartbeat plus HeartbeatTimeout. ok is false for a job that is not
// Running or has no heartbeat.
func HeartbeatExpiry(js *jobstatev1alpha1.JobState) (at time.Time, ok bool) {
	s := js.Status
	if s.Phase != jobstatev1alpha1.PhaseRunning || s.LastHeartbeatTime == nil {
		return time.Time{}, false
	}
	return s.LastHeartbeatTime.Add(HeartbeatTimeout(js)), true
}

// ActiveDeadline is when an unfinished job has run for
// spec.activeDeadlineSeconds since it started. ok is false without a
// deadline, before the job started, and once it finished.
func ActiveDeadline(js *jobstatev1alpha1.JobState) (at time.Time, ok bool) {
	s := js.Status
	if js.Spec.ActiveDeadlineSeconds == nil || s.StartTime == nil || s.Phase == "" || s.Phase.IsTerminal() {
		return time.Time{}, false
	}
	return s.StartTime.Add(time.Duration(*js.Spec.ActiveDeadlineSeconds) * time.Second), true
}

// endAttempt moves a Running job whose attempt ended unsuccessfully back to
// Pending for a retry after RetryBackoff, or to Failed once no retry is
// left: attempt N has used N-1 retries, so the job fails at attempt
// MaxAttempts (backoffLimit+1; the first with backoffLimit 0), or later
// if the limit was lowered meanwhile.
func endAttempt(js *jobstatev1alpha1.JobState, reason, message string, now time.Time) {
	s := &js.Status
	if s.Attempt >= MaxAttempts(js) {
		finish(js, jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.ReasonBackoffLimitExceeded,
			fmt.Sprintf("%s; no retry left (backoffLimit %d)", message, BackoffLimit(js)), now)
		return
	}
	retry := metav1.NewTime(now.Add(RetryBackoff(s.Attempt)))
	s.Holder = ""
	s.RetryAfter = &retry
	msg := fmt.Sprintf("%s; attempt %d may start after %s", message, s.Attempt+1, retry.UTC().Format(time.RFC3339))
	setPhase(s, jobstatev1alpha1.PhasePending, reason, msg)
	setRunning(s, metav1.ConditionFalse, reason, msg, js.Generation, now)
}

// finish moves the job to a terminal phase.
func finish(js *jobstatev1alpha1.JobState, phase jobstatev1alpha1.JobPhase, reason, message string, now time.Time) {
	message = bounded(message)
	s := &js.Status
	t := metav1.NewTime(now)
	s.CompletionTime = &t
	s.RetryAfter = nil
	setPhase(s, phase, reason, message)
	setRunning(s, metav1.ConditionFalse, reason, message, js.Generation, now)
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: jobstatev1alpha1.ConditionComplete, Status: metav1.ConditionTrue,
		Reason: reason, Message: message, ObservedGeneration: js.Generation, LastTransitionTime: t,
	})
}

func setPhase(s *jobstatev1alpha1.JobStateStatus, phase jobstatev1alpha1.JobPhase, reason, message string) {
	s.Phase, s.Reason, s.Message = phase, reason, bounded(message)
}

func setRunning(s *jobstatev1alpha1.JobStateStatus, status metav1.ConditionStatus, reason, message string, generation int64, now time.Time) {
	message = bounded(message)
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: jobstatev1alpha1.ConditionRunning, Status: status,
		Reason: reason, Message: message, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now),
	})
}

// bounded cuts a message to what status.message holds, so that a worker's
// long message (with the text the transition adds around it) never makes
// the transition's write invalid.
func bounded(message string) string {
	return text.Truncate(message, jobstatev1alpha1.MaxMessageLength, "...")
}
