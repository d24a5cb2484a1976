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
	"time"

	corev1 "k8s.io/api/core/v1"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// transition is one lifecycle change the reconciler made, for its Event.
type transition struct {
	eventType string // corev1.EventTypeNormal or Warning
	reason    string
	message   string
}

// applyDueTransitions applies every transition due at now to js and
// returns them: the initialization of a new status, then the one timer due
// (dueTimer). It is the whole of the reconciler's decision for a JobState
// whose status is written directly: pure, so a table test drives it without
// a client, and re-run on the live object by the update library after a
// conflict.
func applyDueTransitions(js *jobstatev1alpha1.JobState, now time.Time) []transition {
	var done []transition
	record := func(eventType string) {
		done = append(done, transition{eventType: eventType, reason: js.Status.Reason, message: js.Status.Message})
	}
	if js.Status.Phase == "" && lifecycle.DoInitialize(js, now) == nil {
		record(corev1.EventTypeNormal)
	}
	switch dueTimer(js, now) {
	case timerCancel:
		if lifecycle.DoCancel(js, "", now) == nil {
			record(corev1.EventTypeNormal)
		}
	case timerDeadline:
		if lifecycle.DoExceedDeadline(js, now) == nil {
			record(corev1.EventTypeWarning)
		}
	case timerLost:
		if lifecycle.DoLose(js, now) == nil {
			record(corev1.EventTypeWarning)
		}
	}
	js.Status.ObservedGeneration = js.Generation
	return done
}

// timer is what spec.cancel or the clock calls for on a job that no worker
// finished.
type timer int

const (
	// noTimer: nothing is due.
	noTimer timer = iota
	// timerCancel: spec.cancel is set.
	timerCancel
	// timerDeadline: spec.activeDeadlineSeconds passed since startTime.
	timerDeadline
	// timerLost: the holder of a Running job stopped heartbeating.
	timerLost
)

// dueTimer is the timer due on js at now. It alone owns their order, for
// directly written status (applyDueTransitions) and event-sourced JobStates
// (dueEvent) alike: spec.cancel first, then the active deadline, then the
// heartbeat timeout. At most one is due at a time: cancel and the deadline
// finish the job, and a lost attempt, coming last, cannot have been
// preempted by one of them. An uninitialized or finished job has none.
func dueTimer(js *jobstatev1alpha1.JobState, now time.Time) timer {
	s := js.Status
	switch {
	case s.Phase == "" || s.Phase.IsTerminal():
		return noTimer
	case js.Spec.Cancel:
		return timerCancel
	}
	if deadline, ok := lifecycle.ActiveDeadline(js); ok && !now.Before(deadline) {
		return timerDeadline
	}
	if expiry, ok := lifecycle.HeartbeatExpiry(js); ok && !now.Before(expiry) {
		return timerLost
	}
	return noTimer
}

// nextCheck is how long until the next time-driven transition of js (or its
// TTL deletion) is due; zero if none is scheduled.
func nextCheck(js *jobstatev1alpha1.JobState, now time.Time) time.Duration {
	var next time.Time
	consider := func(t time.Time, ok bool) {
		if ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	consider(lifecycle.ActiveDeadline(js))
	consider(lifecycle.HeartbeatExpiry(js))
	consider(ttlExpiry(js))
	if next.IsZero() {
		return 0
	}
	// RequeueAfter must be positive to schedule anything; round a due or
	// overdue time up to the smallest delay.
	return max(next.Sub(now), time.Millisecond)
}

// ttlExpiry is when a finished job is deleted.
func ttlExpiry(js *jobstatev1alpha1.JobState) (time.Time, bool) {
	s := js.Status
	if js.Spec.TTLSecondsAfterFinished == nil || !s.Phase.IsTerminal() || s.CompletionTime == nil {
		return time.Time{}, false
	}
	return s.CompletionTime.Add(time.Duration(*js.Spec.TTLSecondsAfterFinished) * time.Second), true
}

// dueEvent is the stream event that the timer due on an event-sourced
// JobState at now (dueTimer) calls for, if any. The controller appends it
// instead of writing status; the projection applies it like any other
// event.
func dueEvent(js *jobstatev1alpha1.JobState, now time.Time) (stream.EventData, bool) {
	switch dueTimer(js, now) {
	case timerCancel:
		return jobstate.NewEvent(jobstate.EventCancelled, jobstate.EventPayload{Message: "spec.cancel was set"}), true
	case timerDeadline:
		return jobstate.NewEvent(jobstate.EventDeadlineExceeded, jobstate.EventPayload{}), true
	case timerLost:
		return jobstate.NewEvent(jobstate.EventLost, jobstate.EventPayload{Holder: js.Status.Holder, Attempt: js.Status.Attempt}), true
	}
	return stream.EventData{}, false
}
