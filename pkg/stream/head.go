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

package stream

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// Storage limits. The head stays small so that an append costs the same on
// a stream of 100 events and of millions (a write's cost grows with the
// object); etcd refuses requests over 1.5 MiB.
const (
	// MaxEventBytes bounds one event: id, type, data and metadata JSON.
	MaxEventBytes = 64 << 10
	// MaxAppendBytes bounds the events of one Append.
	MaxAppendBytes = 256 << 10
	// MaxAppendEvents bounds the number of events of one Append.
	MaxAppendEvents = 100

	// sealEvents and sealBytes: when the head would exceed either, its
	// older committed events are sealed into a segment first.
	sealEvents = 48
	sealBytes  = 128 << 10
	// keepEvents and keepBytes: sealing leaves at most this many of the
	// newest events in the head, and at least keepEvents unless they
	// exceed keepBytes. The head's events are the window in which a
	// retried event id is recognised.
	keepEvents = 16
	keepBytes  = 32 << 10
	// maxHeadEvents and maxHeadBytes: what the head may hold at all
	// (head.events has maxLength 1 Mi characters in the CRD).
	maxHeadEvents = 128
	maxHeadBytes  = jobstatev1alpha1.MaxEventLogLength / 4 * 3
	// eventOverhead approximates the JSON around an event's fields.
	eventOverhead = 96
)

// eventBytes is the approximate stored size of e.
func eventBytes(e *jobstatev1alpha1.Event) int {
	n := eventOverhead + len(e.ID) + len(e.Type) + len(e.Data.Raw)
	if e.Metadata != nil {
		n += len(e.Metadata.Raw)
	}
	return n
}

// HeadBytes is the approximate stored size of the events in a head.
func HeadBytes(h *jobstatev1alpha1.EventStreamHead) int64 {
	if h == nil {
		return 0
	}
	return int64(eventsBytes(h.Events.Items))
}

func eventsBytes(events []jobstatev1alpha1.Event) int {
	n := 0
	for i := range events {
		n += eventBytes(&events[i])
	}
	return n
}

// stamp records the commit revision of the head's latest write, if the
// write about to be made against revision rv is the first one after it.
//
// Invariant (what makes globalPosition exact): in every stored state of a
// head, the events of unstamped were stored by the very write that produced
// that state, so their commit revision is the object's resourceVersion. Every
// write made by this package against that state therefore records that
// resourceVersion (its precondition) in commits before adding anything.
// Several appends group-committed into one write share one stamp: only the
// first application in a write sees unstamped.base differ from rv.
func stamp(h *jobstatev1alpha1.EventStreamHead, rv string) {
	base := rv
	if base == "" {
		// A stream being created: there is no revision to write against.
		base = creating
	}
	if h.Unstamped.Base == base {
		return // an earlier append of this same write already stamped
	}
	if rv != "" && h.Unstamped.From <= h.Version && h.Unstamped.From >= h.First {
		h.Commits.Items = append(h.Commits.Items, jobstatev1alpha1.Commit{From: h.Unstamped.From, Revision: rv})
	}
	h.Unstamped = jobstatev1alpha1.Unstamped{From: h.Version + 1, Base: base}
}

// creating is Unstamped.Base for a write that creates the stream (there is
// no revision to write against).
const creating = "0"

// committedEnd is the position after the last event whose commit revision
// is recorded in commits (after stamp, every event of the head but those of
// the write in progress).
func committedEnd(h *jobstatev1alpha1.EventStreamHead) int64 {
	return h.Unstamped.From
}

// overSealSize reports whether the head holds more than a seal waits for.
func overSealSize(h *jobstatev1alpha1.EventStreamHead) bool {
	return len(h.Events.Items) > sealEvents || eventsBytes(h.Events.Items) > sealBytes
}

// sealPlan says which of the head's events to move into a segment before
// adding n events of b bytes: positions [h.First, end). end == h.First means
// nothing needs sealing.
func sealPlan(h *jobstatev1alpha1.EventStreamHead, n, b int) int64 {
	events := h.Events.Items
	if len(events)+n <= sealEvents && eventsBytes(events)+b <= sealBytes {
		return h.First
	}
	// Keep the newest events (at most keepEvents, within keepBytes), but
	// never seal what is not yet stamped.
	keep, kept := 0, 0
	for i := len(events) - 1; i >= 0 && keep < keepEvents; i-- {
		size := eventBytes(&events[i])
		if kept+size > keepBytes {
			break
		}
		keep, kept = keep+1, kept+size
	}
	end := h.First + int64(len(events)-keep)
	if ce := committedEnd(h); end > ce {
		end = ce
	}
	return max(end, h.First)
}

// commitsFor returns the commit records covering positions [from, to) from
// commits (sorted by From), with the first one starting at from.
func commitsFor(commits []jobstatev1alpha1.Commit, from, to int64) []jobstatev1alpha1.Commit {
	var out []jobstatev1alpha1.Commit
	for i, c := range commits {
		end := to
		if i+1 < len(commits) {
			end = commits[i+1].From
		}
		if end <= from || c.From >= to {
			continue
		}
		// From stays where the write began (possibly before this
		// segment): an event's index counts from there.
		out = append(out, c)
	}
	return out
}

// trim drops the head's events below first, with the commit records that
// cover only them, and counts the characters they took in head.sealedChars
// (the API server checks the rest of head.events against it).
func trim(h *jobstatev1alpha1.EventStreamHead, first int64) error {
	if first <= h.First {
		return nil
	}
	chars, err := jobstatev1alpha1.NewEventLog(h.Events.Items[:first-h.First]...).Chars()
	if err != nil {
		return err
	}
	h.SealedChars += chars
	h.Events.Items = append([]jobstatev1alpha1.Event(nil), h.Events.Items[first-h.First:]...)
	if len(h.Events.Items) == 0 {
		h.Events.Items = nil
	}
	var commits []jobstatev1alpha1.Commit
	for i, c := range h.Commits.Items {
		if i+1 < len(h.Commits.Items) && h.Commits.Items[i+1].From <= first {
			continue
		}
		commits = append(commits, c)
	}
	// The record that straddles first keeps its From: an event's index
	// counts from where its write began.
	h.Commits.Items = commits
	h.First = first
	return nil
}

// find returns the position of the event with id in the head, or -1.
func find(h *jobstatev1alpha1.EventStreamHead, id string) int64 {
	for i := len(h.Events.Items) - 1; i >= 0; i-- {
		if h.Events.Items[i].ID == id {
			return h.Events.Items[i].Position
		}
	}
	return -1
}

// duplicate checks the append's ids against the head. It returns the
// positions of an earlier identical append (a retry), nil for new events,
// or a *DuplicateIDError. A retry whose first events were sealed since is
// recognised by the ids still in the head; the caller checks the sealed
// ones against their segment.
func duplicate(key client.ObjectKey, h *jobstatev1alpha1.EventStreamHead, events []jobstatev1alpha1.Event) ([]int64, error) {
	start, found := int64(-1), -1
	for j, e := range events {
		if p := find(h, e.ID); p >= 0 {
			start, found = p-int64(j), j
			break
		}
	}
	if found < 0 {
		return nil, nil
	}
	refused := &DuplicateIDError{Namespace: key.Namespace, Stream: key.Name, ID: events[found].ID, Position: start + int64(found)}
	if start < 0 {
		return nil, refused // the ids cannot line up with any earlier append
	}
	positions := make([]int64, len(events))
	for i, e := range events {
		p := start + int64(i)
		positions[i] = p
		if p < h.First {
			continue // sealed: the caller checks it
		}
		if p > h.Version || h.Events.Items[p-h.First].ID != e.ID {
			return nil, refused
		}
	}
	return positions, nil
}

// checkHead verifies what the code indexes by: the head's events are
// exactly the positions first to version, in order. (The CRD cannot check
// inside the events' text; a hand-edited head could break it.)
func checkHead(key client.ObjectKey, h *jobstatev1alpha1.EventStreamHead) error {
	object := "EventStream " + key.Name
	if err := checkLogs(key, object, "head", h.Events, h.Commits); err != nil {
		return err
	}
	if want := h.Version - h.First + 1; int64(len(h.Events.Items)) != want || want < 0 {
		return &MalformedError{Namespace: key.Namespace, Stream: key.Name, Object: object, Field: "head.events",
			Reason: fmt.Sprintf("it holds %d events for positions %d to %d (head.first to head.version)", len(h.Events.Items), h.First, h.Version)}
	}
	for i := range h.Events.Items {
		if p := h.First + int64(i); h.Events.Items[i].Position != p {
			return &MalformedError{Namespace: key.Namespace, Stream: key.Name, Object: object, Field: "head.events", Line: i + 1,
				Reason: fmt.Sprintf("the event has position %d, want %d", h.Events.Items[i].Position, p)}
		}
	}
	if reason := checkCommits(h); reason != "" {
		return &MalformedError{Namespace: key.Namespace, Stream: key.Name, Object: object, Field: "head.commits", Reason: reason}
	}
	return nil
}

// checkCommits says what is wrong with the head's commit records, if
// anything: they must be in position order, each for events before the
// unstamped ones, and cover every stamped event of the head.
func checkCommits(h *jobstatev1alpha1.EventStreamHead) string {
	if h.Unstamped.From < h.First && h.Unstamped.From <= h.Version {
		// Sealing records the latest write first: its events are never
		// sealed unrecorded, and no later stamp would record them.
		return fmt.Sprintf("unstamped.from (%d) is before the head's first event (%d)", h.Unstamped.From, h.First)
	}
	commits := h.Commits.Items
	for i, c := range commits {
		switch {
		case c.Revision == "":
			return fmt.Sprintf("record %d has no revision", i+1)
		case i > 0 && c.From <= commits[i-1].From:
			return fmt.Sprintf("record %d (from %d) is not after the one before it (from %d)", i+1, c.From, commits[i-1].From)
		case c.From >= h.Unstamped.From && h.Unstamped.From <= h.Version:
			return fmt.Sprintf("record %d (from %d) is for events of the latest write, which start at %d", i+1, c.From, h.Unstamped.From)
		}
	}
	stamped := min(h.Version+1, h.Unstamped.From) > h.First
	if stamped && (len(commits) == 0 || commits[0].From > h.First) {
		return fmt.Sprintf("no record covers the event at position %d", h.First)
	}
	return ""
}

// checkLogs returns a *MalformedError if the text of events or commits,
// fields of object under prefix, did not decode.
func checkLogs(key client.ObjectKey, object, prefix string, events jobstatev1alpha1.EventLog, commits jobstatev1alpha1.CommitLog) error {
	for _, log := range []struct {
		field     string
		malformed *jobstatev1alpha1.MalformedLog
	}{{"events", events.Malformed}, {"commits", commits.Malformed}} {
		if m := log.malformed; m != nil {
			return &MalformedError{Namespace: key.Namespace, Stream: key.Name, Object: object, Field: prefix + "." + log.field, Line: m.Line, Reason: m.Reason}
		}
	}
	return nil
}

// CheckStored returns a *MalformedError if text stored in es's head does
// not decode, or its events do not line up with its positions. (A
// segment's text is checked when it is read.)
func CheckStored(es *jobstatev1alpha1.EventStream) error {
	if es.Head == nil {
		return nil
	}
	return checkHead(client.ObjectKeyFromObject(es), es.Head)
}

// revisionOf returns the commit revision of the event at position p in the
// head, whose object has resourceVersion rv.
func revisionOf(h *jobstatev1alpha1.EventStreamHead, rv string, p int64) (GlobalPosition, error) {
	if p >= h.Unstamped.From {
		return GlobalPosition{Revision: rv, Index: p - h.Unstamped.From}, nil
	}
	return positionIn(h.Commits.Items, p)
}

// positionIn finds p's commit record in commits.
func positionIn(commits []jobstatev1alpha1.Commit, p int64) (GlobalPosition, error) {
	for i := len(commits) - 1; i >= 0; i-- {
		if commits[i].From <= p {
			return GlobalPosition{Revision: commits[i].Revision, Index: p - commits[i].From}, nil
		}
	}
	return GlobalPosition{}, fmt.Errorf("no commit record for position %d", p)
}
