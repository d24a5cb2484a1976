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
	"errors"
	"fmt"

	"github.com/jobstate-dev/jobstate/pkg/update"
)

// CodeStreamVersionConflict is the error code of a VersionConflictError, as
// an RPC layer reports it.
const CodeStreamVersionConflict = "STREAM_VERSION_CONFLICT"

// ErrVersionConflict matches every *VersionConflictError with errors.Is.
var ErrVersionConflict = errors.New("stream version conflict")

// ErrStreamNotFound matches every *NotFoundError with errors.Is.
var ErrStreamNotFound = errors.New("stream not found")

// ErrDuplicateID matches every *DuplicateIDError with errors.Is.
var ErrDuplicateID = errors.New("event id already used by a different event")

// ErrTooLarge matches every *TooLargeError with errors.Is.
var ErrTooLarge = errors.New("too large to store")

// ErrInvalidEvent matches every *InvalidEventError with errors.Is.
var ErrInvalidEvent = errors.New("invalid event")

// VersionConflictError: the stream was not at the version the append
// expected. Nothing was stored. Its message names no stream: it is the one
// an RPC layer passes on as is.
type VersionConflictError struct {
	Namespace, Stream string
	// Expected is the version the append required (NoStream for a stream
	// that must not exist yet).
	Expected int64
	// Actual is the stream's version when the append was refused
	// (NoStream if it has no events).
	Actual int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("Expected version %d, stream is at version %d", e.Expected, e.Actual)
}

// Code is CodeStreamVersionConflict.
func (e *VersionConflictError) Code() string { return CodeStreamVersionConflict }

// Is reports whether target is ErrVersionConflict.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// NotFoundError: the stream has no events, and the call required some
// (Read, Version, or an append with StreamExists).
type NotFoundError struct {
	Namespace, Stream string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("stream %s/%s does not exist (it has no events)", e.Namespace, e.Stream)
}

// Is reports whether target is ErrStreamNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrStreamNotFound }

// DuplicateIDError: an event id of the append is already in the stream, but
// the append is not a retry of the one that stored it (the ids do not match
// that append's, in order). Nothing was stored.
type DuplicateIDError struct {
	Namespace, Stream string
	ID                string
	// Position is where the id is stored.
	Position int64
}

func (e *DuplicateIDError) Error() string {
	return fmt.Sprintf("stream %s: event id %s is already stored at position %d by an append with different events", streamName(e.Namespace, e.Stream), e.ID, e.Position)
}

// Is reports whether target is ErrDuplicateID.
func (e *DuplicateIDError) Is(target error) bool { return target == ErrDuplicateID }

// TooLargeError: an event or an append exceeds a storage limit. Nothing was
// stored.
type TooLargeError struct {
	Namespace, Stream string
	// What names the culprit: "event 3 (type Deposited)" or "the append".
	What  string
	Size  int
	Limit int
	// Unit is "bytes" or "events".
	Unit string
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("stream %s: %s is %d %s, the limit is %d", streamName(e.Namespace, e.Stream), e.What, e.Size, e.Unit, e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// InvalidEventError: an event of the append is malformed. Nothing was
// stored.
type InvalidEventError struct {
	Namespace, Stream string
	// Index is the event's index in the append.
	Index  int
	Reason string
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("stream %s: event %d: %s", streamName(e.Namespace, e.Stream), e.Index, e.Reason)
}

// Is reports whether target is ErrInvalidEvent.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

// ErrMalformed matches every *MalformedError with errors.Is.
var ErrMalformed = errors.New("stored stream text is malformed")

// MalformedError: text stored in one of a stream's objects does not decode
// as the events or commit records this package writes (a client outside it
// stored it). The stream cannot be read past it or appended to; nothing was
// written. Other streams are unaffected. Its message names the stream
// without its namespace: it is also the WellFormed condition and the
// Warning Event on the stream itself.
type MalformedError struct {
	Namespace, Stream string
	// Object is the object holding the text: "EventStream <name>" or
	// "EventSegment <name>".
	Object string
	// Field is the field holding it, e.g. head.events or spec.commits.
	Field string
	// Line is the first line (from 1) that does not decode; 0 when the
	// field as a whole is wrong.
	Line   int
	Reason string
}

func (e *MalformedError) Error() string {
	where := e.Field
	if e.Line > 0 {
		where = fmt.Sprintf("%s line %d", e.Field, e.Line)
	}
	return fmt.Sprintf("stream %s is malformed: %s of %s: %s", e.Stream, where, e.Object, e.Reason)
}

// Is reports whether target is ErrMalformed.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

// streamName is how errors name a stream: namespace/name, or the name alone
// in an error built without a namespace.
func streamName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// ErrTampered matches every *TamperedError with errors.Is.
var ErrTampered = errors.New("segment does not match the sealed history")

// TamperedError: a segment does not match the chain the sealer recorded in
// the head (head.sealed): it was created, replaced or edited by someone
// other than the sealer, or head.sealed was written by hand. Read serves no
// event from it, nor from the segments before it.
type TamperedError struct {
	Namespace, Stream string
	Segment           string
	Reason            string
}

func (e *TamperedError) Error() string {
	return fmt.Sprintf("stream %s: segment %s does not match the sealed history (head.sealed): %s; its events are not served", streamName(e.Namespace, e.Stream), e.Segment, e.Reason)
}

// Is reports whether target is ErrTampered.
func (e *TamperedError) Is(target error) bool { return target == ErrTampered }

// ErrOutcomeUnknown matches an Append whose events may or may not have been
// stored: the caller's context ended while the write was in flight. (A lost
// response within the deadline is resolved by Append itself: it writes the
// same event ids again, which the stream recognizes.) Retry with the same
// event ids, or Read to find out. It is update.ErrOutcomeUnknown.
var ErrOutcomeUnknown = update.ErrOutcomeUnknown
