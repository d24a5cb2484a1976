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
type EventLog []Event

// CommitLog is a list of commit records stored like an EventLog.
type CommitLog []Commit

// MarshalJSON encodes the log as a JSON string of JSON lines.
func (l EventLog) MarshalJSON() ([]byte, error) { return marshalLines(l) }

// UnmarshalJSON decodes a JSON string of JSON lines.
func (l *EventLog) UnmarshalJSON(b []byte) error { return unmarshalLines(b, (*[]Event)(l)) }

// MarshalJSON encodes the log as a JSON string of JSON lines.
func (l CommitLog) MarshalJSON() ([]byte, error) { return marshalLines(l) }

// UnmarshalJSON decodes a JSON string of JSON lines.
func (l *CommitLog) UnmarshalJSON(b []byte) error { return unmarshalLines(b, (*[]Commit)(l)) }

// Text is the log as stored: the string the CEL rules see.
func (l EventLog) Text() (string, error) { return lines(l) }

// Chars is the number of characters (Unicode code points, as CEL's size()
// and substring() count them) of the log as stored.
func (l EventLog) Chars() (int64, error) {
	s, err := lines(l)
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

func marshalLines[T any](items []T) ([]byte, error) {
	s, err := lines(items)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

func unmarshalLines[T any](b []byte, into *[]T) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a log must be a string of JSON lines: %w", err)
	}
	var items []T
	for i, line := range bytes.Split([]byte(s), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var item T
		if err := json.Unmarshal(line, &item); err != nil {
			return fmt.Errorf("line %d of the log: %w", i+1, err)
		}
		items = append(items, item)
	}
	*into = items
	return nil
}
