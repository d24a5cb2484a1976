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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Event is one committed event of a stream. Once stored it never changes:
// the API server rejects any write that edits or drops it (see
// EventStreamHead and EventSegmentSpec).
type Event struct {
	// position is the event's place in its stream, starting at 0, without gaps.
	// +kubebuilder:validation:Minimum=0
	// +required
	Position int64 `json:"position"`

	// id identifies the event (a UUID). Appending an id the stream already
	// holds is an idempotent retry, not a new event.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	ID string `json:"id"`

	// type names what happened, e.g. Claimed or Deposited.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +required
	Type string `json:"type"`

	// data is the event's payload, a JSON object.
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +required
	Data runtime.RawExtension `json:"data"`

	// metadata is optional JSON about the event (correlation ids, causes).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Metadata *runtime.RawExtension `json:"metadata,omitempty"`

	// time is when the appending client wrote the event (its clock).
	// +required
	Time metav1.MicroTime `json:"time"`
}

// Commit records the resourceVersion of the EventStream write that stored
// the events from position `from` up to the next record's `from` (or up to
// the head's unstamped range). It is what globalPosition is made of.
type Commit struct {
	// from is the position of the first event the write stored.
	// +kubebuilder:validation:Minimum=0
	// +required
	From int64 `json:"from"`

	// revision is the resourceVersion the EventStream got from that write.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +required
	Revision string `json:"revision"`
}

// Unstamped describes the events stored by the latest write to a head: their
// commit revision is the head's own metadata.resourceVersion until the next
// write records it in commits.
type Unstamped struct {
	// from is the position of the first event of the latest write.
	// +kubebuilder:validation:Minimum=0
	// +optional
	From int64 `json:"from,omitempty"`

	// base is the resourceVersion that write was made against. A write whose
	// precondition differs from base is the first write after it, so its
	// precondition is that write's commit revision.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Base string `json:"base,omitempty"`
}

// SealedChain is the sealer's record of the segments it wrote: a SHA-256
// chain over them, kept in the head, where only the sealer may change it
// (config/admission). Each segment's annotations carry its digest and the
// chain value before it; a reader recomputes the chain from there back from
// this record and checks each segment's events against its digest, so a
// segment created, replaced or edited by anyone but the sealer is
// detected, never served.
type SealedChain struct {
	// from is the position of the first event the chain covers: segments
	// below it were sealed before streams were chained, and are read
	// without verification.
	// +kubebuilder:validation:Minimum=0
	// +required
	From int64 `json:"from"`

	// chain is the chain value (hex SHA-256) after the last segment below
	// head.first.
	// +kubebuilder:validation:MinLength=64
	// +kubebuilder:validation:MaxLength=64
	// +required
	Chain string `json:"chain"`
}

// EventStreamHead is the open end of a stream: its version, the newest
// events, and where the sealed ones begin. Appends write it with the
// resourceVersion precondition; nothing else changes it.
// +kubebuilder:validation:XValidation:rule="self.version >= oldSelf.version",message="head.version may not decrease: committed events cannot be removed"
// +kubebuilder:validation:XValidation:rule="self.first >= oldSelf.first",message="head.first may not decrease: sealed events cannot be reopened"
// +kubebuilder:validation:XValidation:rule="self.first <= self.version + 1",message="head.first cannot be beyond head.version + 1"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.sealed) || (has(self.sealed) && self.sealed.from == oldSelf.sealed.from && (self.sealed.chain == oldSelf.sealed.chain || self.first > oldSelf.first))",message="head.sealed changes only when events are sealed (head.first grows), and head.sealed.from never"
// +kubebuilder:validation:XValidation:rule="self.first == oldSelf.first || (has(self.sealed) && (!has(oldSelf.sealed) || self.sealed.chain != oldSelf.sealed.chain))",message="head.first grows only by sealing, which records the new segments in head.sealed"
// +kubebuilder:validation:XValidation:rule="self.first > oldSelf.first || !has(oldSelf.commits) || (has(self.commits) && self.commits.startsWith(oldSelf.commits))",message="head.commits may only grow at its end (sealing trims its front): the commit revisions of stored events cannot change"
// +kubebuilder:validation:XValidation:rule="self.sealedChars >= oldSelf.sealedChars && (self.sealedChars == oldSelf.sealedChars || self.first > oldSelf.first)",message="head.sealedChars may only grow, and only when events are sealed (head.first grows)"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.events) || (self.sealedChars - oldSelf.sealedChars <= size(oldSelf.events) && (has(self.events) ? self.events.startsWith(oldSelf.events.substring(self.sealedChars - oldSelf.sealedChars)) : size(oldSelf.events) == self.sealedChars - oldSelf.sealedChars))",message="committed events are immutable: head.events may only grow at its end, or lose its oldest events by sealing them"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.unstamped) || !has(oldSelf.unstamped.from) || (has(self.unstamped) && has(self.unstamped.from) && self.unstamped.from >= oldSelf.unstamped.from)",message="head.unstamped.from may not decrease: events whose commit revision is recorded cannot be made the latest write's again"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.events) || !has(oldSelf.unstamped) || (has(oldSelf.unstamped.from) ? oldSelf.unstamped.from : 0) > oldSelf.version || (has(self.unstamped) && has(self.unstamped.base) && (!has(oldSelf.unstamped.base) || self.unstamped.base != oldSelf.unstamped.base))",message="the commit revision of this stream's latest append is not recorded yet: a status write waits until pkg/stream records it (stream.Seal); any other write is recorded by config/admission's eventstream-stamp policy, if it is installed. Retry in a second"
type EventStreamHead struct {
	// version is the position of the stream's last event; -1 while the
	// stream has no events.
	// +kubebuilder:default=-1
	// +kubebuilder:validation:Minimum=-1
	// +optional
	Version int64 `json:"version"`

	// first is the position of the first event in events; the events
	// before it are sealed in EventSegments.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	First int64 `json:"first"`

	// events are the stream's newest events, positions first to version,
	// one JSON object per line.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=1048576
	// +kubebuilder:validation:Pattern=`^(\{"position":[0-9]+,"id":"[^"\n]+","type":"[^\n]*,"time":"[^"\n]+"\}\n)*$`
	// +optional
	Events EventLog `json:"events,omitzero"`

	// sealedChars counts the characters sealed away from the front of
	// events since the stream began: what lets the API server check that
	// the events still in the head are unchanged.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	SealedChars int64 `json:"sealedChars"`

	// commits are the commit revisions of the events in events, one record
	// per write, oldest first, one JSON object per line.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=262144
	// +kubebuilder:validation:Pattern=`^(\{"from":[0-9]+,"revision":"[^"\n]+"\}\n)*$`
	// +optional
	Commits CommitLog `json:"commits,omitzero"`

	// unstamped describes the events of the latest write.
	// +optional
	Unstamped Unstamped `json:"unstamped,omitempty"`

	// sealed verifies the segments holding the events before first.
	// +optional
	Sealed *SealedChain `json:"sealed,omitempty"`
}

// RetentionPolicy bounds what a stream keeps. Only whole sealed segments
// are removed; the head's events are always kept. Unset fields keep
// everything.
type RetentionPolicy struct {
	// maxEvents: sealed segments whose events are all older than the newest
	// maxEvents events are deleted.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxEvents *int64 `json:"maxEvents,omitempty"`

	// maxAge: sealed segments whose newest event is older than this are
	// deleted, e.g. "720h". (The rule parses it as Go does: a value the
	// controllers could not decode would stop their informers.)
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="spec.retention.maxAge must be a positive Go duration, e.g. 720h or 90m"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// EventStreamSpec is what the owner of a stream asks for.
type EventStreamSpec struct {
	// retention bounds what the stream keeps. Unset: everything, forever.
	// +optional
	Retention *RetentionPolicy `json:"retention,omitempty"`
}

// Condition types and reasons of an EventStream.
const (
	// ConditionSegmentsComplete is True when every sealed position below
	// head.first (and above what retention removed) is found in a segment.
	ConditionSegmentsComplete = "SegmentsComplete"

	// ReasonSegmentsFound: the segments cover every sealed event.
	ReasonSegmentsFound = "SegmentsFound"
	// ReasonSegmentMissing: a sealed range has no segment; events were lost
	// by deleting a segment or moving head.first by hand.
	ReasonSegmentMissing = "SegmentMissing"

	// ConditionWellFormed is False when text stored in the head
	// (head.events, head.commits) is not what pkg/stream writes: it does
	// not decode, or its events do not line up with head.first to
	// head.version. Such a stream can be neither read nor appended to;
	// the controller leaves it alone (no sealing, no retention).
	ConditionWellFormed = "WellFormed"

	// ReasonDecoded: the head's text decodes and lines up.
	ReasonDecoded = "Decoded"
	// ReasonMalformedText: the message names the field, the line and why.
	ReasonMalformedText = "MalformedText"
)

// EventStreamStatus is observed by the EventStream controller; it lags the
// head by up to a second on a busy stream.
type EventStreamStatus struct {
	// version is the position of the last event; -1 while empty.
	// +optional
	Version int64 `json:"version,omitempty"`

	// events is the number of events stored (after retention).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Events int64 `json:"events,omitempty"`

	// firstPosition is the position of the oldest stored event.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FirstPosition int64 `json:"firstPosition,omitempty"`

	// segments is the number of sealed segments.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Segments int32 `json:"segments,omitempty"`

	// bytes is the approximate stored size of the events' JSON (segments
	// and head).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Bytes int64 `json:"bytes,omitempty"`

	// lastUpdateTime is when the controller last wrote this status.
	// +optional
	LastUpdateTime *metav1.Time `json:"lastUpdateTime,omitempty"`

	// conditions: SegmentsComplete, WellFormed.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// EventStream is an append-only stream of events: the head holds the newest
// events, EventSegments (owned by the stream) the sealed older ones. Write
// it through pkg/stream.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=es,categories=jobstate
// +kubebuilder:printcolumn:name="Stream",type=string,JSONPath=`.metadata.annotations.eventodb\.jobstate\.dev/stream`,description="The EventoDB stream name, for streams written through the gateway"
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.head.version`
// +kubebuilder:printcolumn:name="Events",type=integer,JSONPath=`.status.events`
// +kubebuilder:printcolumn:name="Segments",type=integer,JSONPath=`.status.segments`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 240",message="metadata.name of an EventStream has at most 240 characters (its segments append a 13-character suffix)"
type EventStream struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec EventStreamSpec `json:"spec,omitempty"`
	// head is written by appends (pkg/stream) only.
	// +kubebuilder:default={"version":-1,"first":0,"sealedChars":0}
	// +optional
	Head *EventStreamHead `json:"head,omitempty"`
	// +optional
	Status EventStreamStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// EventStreamList contains a list of EventStream.
type EventStreamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventStream `json:"items"`
}

// EventSegmentSpec holds a sealed, contiguous run of a stream's events. It
// is immutable.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an EventSegment is immutable: its events are committed"
type EventSegmentSpec struct {
	// stream is the name of the EventStream the events belong to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=240
	// +required
	Stream string `json:"stream"`

	// first and last are the positions of the segment's first and last event.
	// +kubebuilder:validation:Minimum=0
	// +optional
	First int64 `json:"first"`
	// +kubebuilder:validation:Minimum=0
	// +required
	Last int64 `json:"last"`

	// events, positions first to last, one JSON object per line.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1048576
	// +kubebuilder:validation:Pattern=`^(\{"position":[0-9]+,"id":"[^"\n]+","type":"[^\n]*,"time":"[^"\n]+"\}\n)*$`
	// +required
	Events EventLog `json:"events"`

	// commits are the commit revisions of these events (see
	// EventStreamHead), one JSON object per line.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=262144
	// +kubebuilder:validation:Pattern=`^(\{"from":[0-9]+,"revision":"[^"\n]+"\}\n)*$`
	// +required
	Commits CommitLog `json:"commits"`
}

// EventSegment is a sealed part of an EventStream, owned by it: deleting the
// stream deletes its segments.
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=jobstate
// +kubebuilder:printcolumn:name="Stream",type=string,JSONPath=`.spec.stream`
// +kubebuilder:printcolumn:name="First",type=integer,JSONPath=`.spec.first`
// +kubebuilder:printcolumn:name="Last",type=integer,JSONPath=`.spec.last`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventSegment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec EventSegmentSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// EventSegmentList contains a list of EventSegment.
type EventSegmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventSegment `json:"items"`
}
