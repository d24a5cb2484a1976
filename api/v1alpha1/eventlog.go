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
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// EventLog is a list of events stored as one string: one JSON object per
// event, each ending with a newline. Why a string: the API server walks every
// item of a list field on every write (conversion, pruning, defaulting,
// validation), which made a head of 30 structured events cost about three
// times a plain object's write; a string costs what its bytes cost. It also
// reads well: `kubectl get es -o yaml` shows one event per line. The CEL
// rules on the types that hold an EventLog protect it as text. (Fields of
// this type carry the markers Schemaless, Type=string and MaxLength.)
//
// Decoding never fails because of the text: a log that is not JSON lines
// of events, each in the exact form json.Marshal gives it (what writers
// re-encode must not change), decodes with Malformed set and no Items. One object written by
// any client must not make a List or a watch of all the others fail (a
// client-go informer cannot sync past an object it cannot decode). Code
// that reads Items checks Malformed first.
type EventLog struct {
	// Items are the events, in order; empty when Malformed is set.
	Items []Event
	// Malformed is set when the stored text does not decode.
	Malformed *MalformedLog
}

// CommitLog is a list of commit records stored like an EventLog.
type CommitLog struct {
	// Items are the records, oldest first; empty when Malformed is set.
	Items []Commit
	// Malformed is set when the stored text does not decode.
	Malformed *MalformedLog
}

// MalformedLog is stored log text that does not decode. The text is kept as
// stored, so that writing the object back (a status write carries the
// whole object) does not change it.
type MalformedLog struct {
	// Text is the log as stored.
	Text string
	// Line is the first line (from 1) that does not decode; 0 when the
	// value is not a string at all.
	Line int
	// Reason says why.
	Reason string
}

func (m *MalformedLog) Error() string {
	if m.Line == 0 {
		return m.Reason
	}
	return fmt.Sprintf("line %d: %s", m.Line, m.Reason)
}

// NewEventLog returns a log of events.
func NewEventLog(events ...Event) EventLog { return EventLog{Items: events} }

// NewCommitLog returns a log of commit records.
func NewCommitLog(commits ...Commit) CommitLog { return CommitLog{Items: commits} }

// IsZero reports whether the log is empty, so that an empty log is omitted.
func (l EventLog) IsZero() bool { return len(l.Items) == 0 && l.Malformed == nil }

// IsZero reports whether the log is empty, so that an empty log is omitted.
func (l CommitLog) IsZero() bool { return len(l.Items) == 0 && l.Malformed == nil }

// MarshalJSON encodes the log as a JSON string of JSON lines.
func (l EventLog) MarshalJSON() ([]byte, error) { return marshalLines(l.Items, l.Malformed) }

// UnmarshalJSON decodes a JSON string of JSON lines; see EventLog.
func (l *EventLog) UnmarshalJSON(b []byte) error {
	l.Items, l.Malformed = unmarshalLines[Event](b)
	return nil
}

// MarshalJSON encodes the log as a JSON string of JSON lines.
func (l CommitLog) MarshalJSON() ([]byte, error) { return marshalLines(l.Items, l.Malformed) }

// UnmarshalJSON decodes a JSON string of JSON lines; see EventLog.
func (l *CommitLog) UnmarshalJSON(b []byte) error {
	l.Items, l.Malformed = unmarshalLines[Commit](b)
	return nil
}

// Text is the log as stored: the string the CEL rules see.
func (l EventLog) Text() (string, error) {
	if l.Malformed != nil {
		return l.Malformed.Text, nil
	}
	return lines(l.Items)
}

// Text is the log as stored.
func (l CommitLog) Text() (string, error) {
	if l.Malformed != nil {
		return l.Malformed.Text, nil
	}
	return lines(l.Items)
}

// Chars is the number of characters (Unicode code points, as CEL's size()
// and substring() count them) of the log as stored.
func (l EventLog) Chars() (int64, error) {
	s, err := l.Text()
	return int64(utf8.RuneCountInString(s)), err
}

func lines[T any](items []T) (string, error) {
	var b strings.Builder
	for i := range items {
		line, err := json.Marshal(&items[i])
		if err != nil {
			return "", err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

func marshalLines[T any](items []T, malformed *MalformedLog) ([]byte, error) {
	if malformed != nil {
		return json.Marshal(malformed.Text)
	}
	s, err := lines(items)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// unmarshalLines decodes b, a JSON string of JSON lines, into items, or
// says why it cannot.
func unmarshalLines[T any](b []byte) ([]T, *MalformedLog) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, &MalformedLog{Text: string(b), Reason: "a log must be a string of JSON lines: " + err.Error()}
	}
	if s == "" {
		return nil, nil
	}
	if !strings.HasSuffix(s, "\n") {
		return nil, &MalformedLog{Text: s, Line: strings.Count(s, "\n") + 1, Reason: "the last line does not end with a newline"}
	}
	var items []T
	for i, line := range bytes.Split([]byte(s[:len(s)-1]), []byte("\n")) {
		var item T
		if err := json.Unmarshal(line, &item); err != nil {
			return nil, &MalformedLog{Text: s, Line: i + 1, Reason: err.Error()}
		}
		// Writers re-encode the items: a line in another form would
		// change, which the CEL rules refuse as an edit of committed text.
		if canonical, err := json.Marshal(&item); err != nil || !bytes.Equal(canonical, line) {
			return nil, &MalformedLog{Text: s, Line: i + 1, Reason: fmt.Sprintf("not in the form pkg/stream writes (it would re-encode as %.200s)", canonical)}
		}
		items = append(items, item)
	}
	return items, nil
}
