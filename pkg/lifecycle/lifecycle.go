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
	"errors"
	"fmt"
	"time"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// Transition names an input of the state machine: what happens to a job
// (the word "event" is kept for stream events and Kubernetes Events).
type Transition string

const (
	// Initialize gives a new JobState its first phase, Pending.
	Initialize Transition = "Initialize"
	// Claim starts a new attempt for a worker: Pending → Running.
	Claim Transition = "Claim"
	// Heartbeat reports liveness and progress of the current attempt.
	Heartbeat Transition = "Heartbeat"
	// Succeed finishes the job: Running → Succeeded.
	Succeed Transition = "Succeed"
	// Fail ends the current attempt: Running → Pending (retry) or Failed.
	Fail Transition = "Fail"
	// Lose ends an attempt whose holder stopped heartbeating, like Fail.
	Lose Transition = "Lose"
	// ExceedDeadline fails a job whose activeDeadlineSeconds passed.
	ExceedDeadline Transition = "ExceedDeadline"
	// Cancel cancels a job that has not finished.
	Cancel Transition = "Cancel"
)

// Retry backoff after a failed or lost attempt: RetryBackoffBase doubled for
// every attempt already made, capped at RetryBackoffCap (the shape of
// Kubernetes Job's pod-failure backoff, shorter because a JobState attempt is
// a worker's claim, not a pod start).
const (
	RetryBackoffBase = 5 * time.Second
	RetryBackoffCap  = 5 * time.Minute
)

// ErrIllegalTransition is matched (errors.Is) by every *TransitionError.
var ErrIllegalTransition = errors.New("illegal JobState transition")

// ErrFenced is matched (errors.Is) by every *FencedError.
var ErrFenced = errors.New("attempt is no longer current")

// ErrBackingOff is matched (errors.Is) by every *BackoffError.
var ErrBackingOff = errors.New("job is backing off before its next attempt")

// TransitionError: Transition is not legal in phase From.
type TransitionError struct {
	From       jobstatev1alpha1.JobPhase
	Transition Transition
}

func (e *TransitionError) Error() string {
	from := string(e.From)
	if from == "" {
		from = "an uninitialized status"
	}
	return fmt.Sprintf("%s is not allowed from phase %s", e.Transition, from)
}

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

// FencedError: a worker presented an attempt that is not the current one
// (a newer attempt exists, or another holder owns it, or it has ended).
type FencedError struct {
	// Presented is the attempt the caller holds.
	Presented Fence
	// Current is the job's current attempt and Phase its phase.
	Current Fence
	Phase   jobstatev1alpha1.JobPhase
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("attempt %d held by %q is no longer current: the job is %s at attempt %d held by %q",
		e.Presented.Attempt, e.Presented.Holder, e.Phase, e.Current.Attempt, e.Current.Holder)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// BackoffError: the job is Pending but may not be claimed before Until.
type BackoffError struct {
	Until time.Time
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("the next attempt may not start before %s", e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrBackingOff) true.
func (e *BackoffError) Is(target error) bool { return target == ErrBackingOff }

// Fence identifies one attempt of one worker: the token a worker presents on
// every write after Claim.
type Fence struct {
	Holder  string
	Attempt int32
}

// allowed is the transition table: the phases each transition may start
// from.
var allowed = map[Transition][]jobstatev1alpha1.JobPhase{
	Initialize:     {""},
	Claim:          {jobstatev1alpha1.PhasePending},
	Heartbeat:      {jobstatev1alpha1.PhaseRunning},
	Succeed:        {jobstatev1alpha1.PhaseRunning},
	Fail:           {jobstatev1alpha1.PhaseRunning},
	Lose:           {jobstatev1alpha1.PhaseRunning},
	ExceedDeadline: {jobstatev1alpha1.PhasePending, jobstatev1alpha1.PhaseRunning},
	Cancel:         {"", jobstatev1alpha1.PhasePending, jobstatev1alpha1.PhaseRunning},
}

// Allowed reports whether t may happen in phase from: nil, or a
// *TransitionError.
func Allowed(from jobstatev1alpha1.JobPhase, t Transition) error {
	for _, p := range allowed[t] {
		if p == from {
			return nil
		}
	}
	return &TransitionError{From: from, Transition: t}
}

// RetryBackoff is how long a job waits in Pending after attempt failed or
// was lost.
func RetryBackoff(attempt int32) time.Duration {
	d := RetryBackoffBase
	for i := int32(1); i < attempt && d < RetryBackoffCap; i++ {
		d *= 2
	}
	return min(d, RetryBackoffCap)
}

// checkFence returns a *FencedError unless f is the current attempt of a
// Running job.
func checkFence(s *jobstatev1alpha1.JobStateStatus, f Fence) error {
	if s.Phase != jobstatev1alpha1.PhaseRunning || s.Holder != f.Holder || s.Attempt != f.Attempt {
		return &FencedError{Presented: f, Current: Fence{Holder: s.Holder, Attempt: s.Attempt}, Phase: s.Phase}
	}
	return nil
}
