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

package jobstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/utils/ptr"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/text"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// Event types of the stream behind an event-sourced JobState (one with
// spec.eventStreamRef). Workers append them; the controller projects them
// into the JobState's status with the same state machine as direct writes.
// Each event's data is an EventPayload; the fields each type reads are
// listed. The event's time is the transition's time.
const (
	// EventClaimed starts the next attempt: holder. Pending → Running.
	EventClaimed = "Claimed"
	// EventHeartbeat reports the attempt alive: holder, attempt, progress.
	EventHeartbeat = "Heartbeat"
	// EventSucceeded finishes the job: holder, attempt, message.
	EventSucceeded = "Succeeded"
	// EventFailed ends the attempt (retried while spec.backoffLimit
	// allows): holder, attempt, message.
	EventFailed = "Failed"
	// EventCancelled cancels the job: message.
	EventCancelled = "Cancelled"
	// EventDataPatched merges patch into status.data (JSON merge patch).
	EventDataPatched = "DataPatched"
	// EventLost ends an attempt whose holder stopped heartbeating (the
	// controller appends it after spec.heartbeatTimeoutSeconds): holder,
	// attempt. Retried like a failure.
	EventLost = "Lost"
	// EventDeadlineExceeded fails the job (the controller appends it after
	// spec.activeDeadlineSeconds).
	EventDeadlineExceeded = "DeadlineExceeded"
)

// Reasons a projected event is rejected (status.projection.rejected).
const (
	RejectedIllegalTransition = "IllegalTransition"
	RejectedFenced            = "Fenced"
	RejectedBackingOff        = "BackingOff"
	RejectedUnknownType       = "UnknownType"
	RejectedMalformedData     = "MalformedData"
)

// Bounds of what an event may put into status, beyond the CRD's own
// (jobstatev1alpha1.MaxHolderLength and the like).
const (
	// maxEventMessage keeps a quarter of status.message for the text the
	// state machine puts around an event's message ("Attempt 3 failed: ...;
	// attempt 4 may start after ...").
	maxEventMessage = jobstatev1alpha1.MaxMessageLength - 1024
)

// EventPayload is the data of the event types above.
type EventPayload struct {
	Holder   string         `json:"holder,omitempty"`
	Attempt  int32          `json:"attempt,omitempty"`
	Progress int32          `json:"progress,omitempty"`
	Message  string         `json:"message,omitempty"`
	Patch    map[string]any `json:"patch,omitempty"`
}

// NewEvent returns an event of type typ with payload p, to append to a
// JobState's stream.
func NewEvent(typ string, p EventPayload) stream.EventData {
	return stream.EventData{Type: typ, Data: p}
}

// ProjectedPosition is the position of the last event projected into js,
// or stream.NoStream.
func ProjectedPosition(js *jobstatev1alpha1.JobState) int64 {
	if p := js.Status.Projection; p != nil && p.Position != nil {
		return *p.Position
	}
	return stream.NoStream
}

// ErrProjectionGap: the events handed to Project do not continue from the
// position js has projected up to.
var ErrProjectionGap = errors.New("events do not continue from the projected position")

// Project applies events, in order, to js's status: each one that continues
// from status.projection.position is applied (or recorded as rejected when
// it is not a legal transition), and the position advances with it. Events
// at or before the position are skipped, so projecting the same events twice
// changes nothing. The caller writes js with the resourceVersion
// precondition: the state and the position are stored together or not at
// all, which is what makes each event count exactly once.
func Project(js *jobstatev1alpha1.JobState, events []stream.RecordedEvent) error {
	pos := ProjectedPosition(js)
	if js.Status.Phase == "" {
		if err := lifecycle.DoInitialize(js, js.CreationTimestamp.Time); err != nil {
			return err
		}
	}
	for _, e := range events {
		if e.Position <= pos {
			continue
		}
		if e.Position != pos+1 {
			return fmt.Errorf("%w: projected up to %d, next event is at %d", ErrProjectionGap, pos, e.Position)
		}
		if reason, message := apply(js, e); reason != "" {
			reject(js, e, reason, message)
		}
		pos = e.Position
		if js.Status.Projection == nil {
			js.Status.Projection = &jobstatev1alpha1.ProjectionStatus{}
		}
		js.Status.Projection.Position = ptr.To(pos)
	}
	return nil
}

// apply makes the transition e stands for, or says why it cannot.
func apply(js *jobstatev1alpha1.JobState, e stream.RecordedEvent) (reason, message string) {
	var p EventPayload
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return RejectedMalformedData, fmt.Sprintf("data does not decode as an EventPayload: %v", err)
	}
	if len(p.Holder) > jobstatev1alpha1.MaxHolderLength {
		return RejectedMalformedData, fmt.Sprintf("holder has %d characters, status.holder allows %d", len(p.Holder), jobstatev1alpha1.MaxHolderLength)
	}
	p.Message = text.Truncate(p.Message, maxEventMessage, "...")
	fence := lifecycle.Fence{Holder: p.Holder, Attempt: p.Attempt}
	// Whole seconds, as status stores times: the result must not depend on
	// whether the previous event's state was re-read from the API server
	// (a new batch) or not.
	at := e.Time.Truncate(time.Second)
	// Work on a copy: a transition that fails half-way leaves nothing.
	work := js.DeepCopy()
	var err error
	switch e.Type {
	case EventClaimed:
		_, err = lifecycle.DoClaim(work, p.Holder, at)
	case EventHeartbeat:
		err = lifecycle.DoHeartbeat(work, fence, p.Progress, at)
	case EventSucceeded:
		err = lifecycle.DoSucceed(work, fence, p.Message, at)
	case EventFailed:
		err = lifecycle.DoFail(work, fence, p.Message, at)
	case EventCancelled:
		err = lifecycle.DoCancel(work, p.Message, at)
	case EventLost:
		// Fenced like a worker's event: a Lost decided on an attempt that
		// has ended since must not end its successor.
		s := &work.Status
		if s.Phase != jobstatev1alpha1.PhaseRunning || s.Holder != p.Holder || s.Attempt != p.Attempt {
			err = &lifecycle.FencedError{Presented: fence, Current: lifecycle.Fence{Holder: s.Holder, Attempt: s.Attempt}, Phase: s.Phase}
		} else {
			err = lifecycle.DoLose(work, at)
		}
	case EventDeadlineExceeded:
		err = lifecycle.DoExceedDeadline(work, at)
	case EventDataPatched:
		if p.Patch == nil {
			return RejectedMalformedData, "a DataPatched event needs a patch object"
		}
		var tooLarge *DataTooLargeError
		if err = MergeData(work, p.Patch); errors.As(err, &tooLarge) {
			return RejectedMalformedData, fmt.Sprintf("status.data would grow to %d bytes, more than %d", tooLarge.Size, MaxDataBytes)
		}
	default:
		return RejectedUnknownType, fmt.Sprintf("event type %q is not one of Claimed, Heartbeat, Succeeded, Failed, Cancelled, DataPatched, Lost, DeadlineExceeded", e.Type)
	}
	switch {
	case errors.Is(err, lifecycle.ErrIllegalTransition):
		return RejectedIllegalTransition, err.Error()
	case errors.Is(err, lifecycle.ErrFenced):
		return RejectedFenced, err.Error()
	case errors.Is(err, lifecycle.ErrBackingOff):
		return RejectedBackingOff, err.Error()
	case err != nil:
		return RejectedMalformedData, err.Error()
	}
	work.Status.DeepCopyInto(&js.Status)
	return "", ""
}

// reject records e in status.projection.rejected, keeping the newest.
func reject(js *jobstatev1alpha1.JobState, e stream.RecordedEvent, reason, message string) {
	if js.Status.Projection == nil {
		js.Status.Projection = &jobstatev1alpha1.ProjectionStatus{}
	}
	p := js.Status.Projection
	p.Rejected = append(p.Rejected, jobstatev1alpha1.RejectedEvent{
		Position: e.Position,
		Type:     text.Truncate(e.Type, jobstatev1alpha1.MaxRejectedTypeLength, ""),
		Reason:   reason,
		Message:  text.Truncate(message, jobstatev1alpha1.MaxRejectedMessageLength, "..."),
	})
	if len(p.Rejected) > jobstatev1alpha1.MaxRejectedEvents {
		p.Rejected = p.Rejected[len(p.Rejected)-jobstatev1alpha1.MaxRejectedEvents:]
	}
	p.RejectedCount++
}
