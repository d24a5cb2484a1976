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

package jobstate_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// recordedAt builds stream events at positions from.., an hour apart.
func recordedAt(from int64, evs ...stream.EventData) []stream.RecordedEvent {
	out := make([]stream.RecordedEvent, len(evs))
	for i, e := range evs {
		data, _ := json.Marshal(e.Data)
		if raw, ok := e.Data.(string); ok {
			data = []byte(raw)
		}
		out[i] = stream.RecordedEvent{Type: e.Type, Data: data, Position: from + int64(i), Time: t0.Add(time.Duration(from+int64(i)) * time.Hour)}
	}
	return out
}

// Project is pure: these cases need no API server.
func TestProject(t *testing.T) {
	claim := jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"})
	beat := jobstate.NewEvent(jobstate.EventHeartbeat, jobstate.EventPayload{Holder: "w1", Attempt: 1, Progress: 30})
	stale := jobstate.NewEvent(jobstate.EventHeartbeat, jobstate.EventPayload{Holder: "w0", Attempt: 1, Progress: 99})
	patch := jobstate.NewEvent(jobstate.EventDataPatched, jobstate.EventPayload{Patch: map[string]any{"cursor": "p-2"}})
	done := jobstate.NewEvent(jobstate.EventSucceeded, jobstate.EventPayload{Holder: "w1", Attempt: 1})
	for _, tc := range []struct {
		name         string
		events       []stream.RecordedEvent
		wantErr      error
		wantPhase    jobstatev1alpha1.JobPhase
		wantPosition int64
		wantRejected []string
	}{
		{"no events initializes", nil, nil, jobstatev1alpha1.PhasePending, stream.NoStream, nil},
		{"claim, heartbeat, patch, succeed", recordedAt(0, claim, beat, patch, done), nil, jobstatev1alpha1.PhaseSucceeded, 3, nil},
		{"a stale holder is rejected, the rest applied", recordedAt(0, claim, stale, beat), nil, jobstatev1alpha1.PhaseRunning, 2, []string{jobstate.RejectedFenced}},
		{"heartbeat before claim", recordedAt(0, beat, claim), nil, jobstatev1alpha1.PhaseRunning, 1, []string{jobstate.RejectedFenced}},
		{"malformed and unknown", recordedAt(0, stream.EventData{Type: jobstate.EventClaimed, Data: `{"holder":1}`}, stream.EventData{Type: "Exploded", Data: map[string]any{}}, claim), nil, jobstatev1alpha1.PhaseRunning, 2, []string{jobstate.RejectedMalformedData, jobstate.RejectedUnknownType}},
		{"a Lost for an ended attempt is fenced", recordedAt(0, claim, jobstate.NewEvent(jobstate.EventLost, jobstate.EventPayload{Holder: "w1", Attempt: 1}), claim, jobstate.NewEvent(jobstate.EventLost, jobstate.EventPayload{Holder: "w1", Attempt: 1})), nil, jobstatev1alpha1.PhaseRunning, 3, []string{jobstate.RejectedFenced}},
		{"a holder too long for status is rejected", recordedAt(0, jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: strings.Repeat("w", 254)}), claim), nil, jobstatev1alpha1.PhaseRunning, 1, []string{jobstate.RejectedMalformedData}},
		{"a gap is an error and applies nothing", recordedAt(1, claim), jobstate.ErrProjectionGap, "", stream.NoStream, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(t0)}}
			err := jobstate.Project(js, tc.events)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return // the caller writes nothing
			}
			if js.Status.Phase != tc.wantPhase || jobstate.ProjectedPosition(js) != tc.wantPosition {
				t.Fatalf("phase %s position %d, want %s %d", js.Status.Phase, jobstate.ProjectedPosition(js), tc.wantPhase, tc.wantPosition)
			}
			var got []string
			if p := js.Status.Projection; p != nil {
				for _, r := range p.Rejected {
					got = append(got, r.Reason)
				}
				if int(p.RejectedCount) != len(tc.wantRejected) {
					t.Errorf("rejectedCount %d, want %d", p.RejectedCount, len(tc.wantRejected))
				}
			}
			if len(got) != len(tc.wantRejected) {
				t.Fatalf("rejected %v, want %v", got, tc.wantRejected)
			}
			for i := range got {
				if got[i] != tc.wantRejected[i] {
					t.Fatalf("rejected %v, want %v", got, tc.wantRejected)
				}
			}
			// Projecting the same events again changes nothing.
			again := js.DeepCopy()
			if err := jobstate.Project(again, tc.events); err != nil || !equality.Semantic.DeepEqual(again.Status, js.Status) {
				t.Fatalf("second projection changed the status: %v", err)
			}
		})
	}
}

// What an event puts into status is cut to the CRD's lengths in characters,
// never in the middle of one: a byte cut would leave invalid UTF-8.
func TestProjectTruncatesMultiByteText(t *testing.T) {
	claim := jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"})
	unknown := stream.EventData{Type: strings.Repeat("語", 200), Data: map[string]any{}} // 600 bytes
	done := jobstate.NewEvent(jobstate.EventSucceeded, jobstate.EventPayload{Holder: "w1", Attempt: 1, Message: strings.Repeat("é", 5000)})
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(t0)}}
	if err := jobstate.Project(js, recordedAt(0, claim, unknown, done)); err != nil {
		t.Fatal(err)
	}
	if js.Status.Phase != jobstatev1alpha1.PhaseSucceeded || len(js.Status.Projection.Rejected) != 1 {
		t.Fatalf("phase %s, rejected %v; want Succeeded and the unknown type rejected", js.Status.Phase, js.Status.Projection.Rejected)
	}
	for _, tc := range []struct {
		field string
		s     string
		max   int
	}{
		{"status.projection.rejected[0].type", js.Status.Projection.Rejected[0].Type, jobstatev1alpha1.MaxRejectedTypeLength},
		{"status.projection.rejected[0].message", js.Status.Projection.Rejected[0].Message, jobstatev1alpha1.MaxRejectedMessageLength},
		{"status.message", js.Status.Message, jobstatev1alpha1.MaxMessageLength},
	} {
		if n := utf8.RuneCountInString(tc.s); !utf8.ValidString(tc.s) || n > tc.max {
			t.Errorf("%s: %d characters (at most %d), valid UTF-8 %t", tc.field, n, tc.max, utf8.ValidString(tc.s))
		}
	}
	if got := js.Status.Projection.Rejected[0].Type; got != strings.Repeat("語", jobstatev1alpha1.MaxRejectedTypeLength) {
		t.Errorf("rejected type %q, want the first %d characters", got, jobstatev1alpha1.MaxRejectedTypeLength)
	}
}
