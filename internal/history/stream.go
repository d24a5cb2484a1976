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

package history

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// StreamOp names an operation of pkg/stream.
type StreamOp int

const (
	// Append is stream.Client.Append.
	Append StreamOp = iota
	// Read is stream.Client.Read.
	Read
	// Version is stream.Client.Version.
	Version
)

// StreamInput is an operation on one stream.
type StreamInput struct {
	Op StreamOp
	// Stream names the stream; histories are checked stream by stream.
	Stream string
	// IDs are the ids of the events an Append stores, in order.
	IDs []string
	// ExpectedVersion is the Append's AppendOptions.ExpectedVersion.
	ExpectedVersion *int64
	// From and Limit are the Read's.
	From  int64
	Limit int
}

// AppendInput is the input of an Append of events with ids to stream with
// opts.
func AppendInput(name string, ids []string, opts stream.AppendOptions) StreamInput {
	return StreamInput{Op: Append, Stream: name, IDs: ids, ExpectedVersion: opts.ExpectedVersion}
}

// ReadInput is the input of a Read of stream from position from.
func ReadInput(name string, from int64, limit int) StreamInput {
	return StreamInput{Op: Read, Stream: name, From: from, Limit: limit}
}

// VersionInput is the input of a Version of stream.
func VersionInput(name string) StreamInput { return StreamInput{Op: Version, Stream: name} }

// StreamOutput is what a stream operation returned.
type StreamOutput struct {
	Outcome Outcome
	// Append: Positions of the events, the stream's Version after it,
	// and whether the Client reported it a Duplicate.
	Positions []int64
	Version   int64
	Duplicate bool
	// Conflict: the Append was refused with a *stream.VersionConflictError
	// whose actual version is Actual.
	Conflict bool
	Actual   int64
	// DuplicateID: the Append was refused with a *stream.DuplicateIDError.
	DuplicateID bool
	// Contended: the Append was refused because the stream kept changing
	// until its attempts or time ran out (*update.ConflictError).
	Contended bool
	// Read: the ids of the events read; their Positions are in Positions.
	// Version: Version, and Exists (Version's ok).
	IDs    []string
	Exists bool
	// NotFound: Read found a stream without events.
	NotFound bool
	// Err is the operation's error, for the visualization.
	Err string
}

func (o StreamOutput) outcome() Outcome { return o.Outcome }

// AppendOutput is the output of an Append that returned res and err.
func AppendOutput(res stream.AppendResult, err error) StreamOutput {
	out := StreamOutput{Outcome: OutcomeOf(err)}
	if err != nil {
		out.Err = err.Error()
		var conflict *stream.VersionConflictError
		if errors.As(err, &conflict) {
			out.Conflict, out.Actual = true, conflict.Actual
		}
		out.DuplicateID = errors.Is(err, stream.ErrDuplicateID)
		var contended *update.ConflictError
		out.Contended = errors.As(err, &contended)
		return out
	}
	out.Positions, out.Version, out.Duplicate = res.Positions, res.Version, res.Duplicate
	return out
}

// ReadOutput is the output of a Read that returned events and err. A
// Read that failed otherwise than with a missing stream observed nothing:
// its outcome is Unknown, which the model accepts as it is.
func ReadOutput(events []stream.RecordedEvent, err error) StreamOutput {
	if errors.Is(err, stream.ErrStreamNotFound) {
		return StreamOutput{Outcome: Done, NotFound: true}
	}
	if err != nil {
		return StreamOutput{Outcome: Unknown, Err: err.Error()}
	}
	out := StreamOutput{Outcome: Done, IDs: []string{}, Positions: []int64{}}
	for _, e := range events {
		out.IDs = append(out.IDs, e.ID)
		out.Positions = append(out.Positions, e.Position)
	}
	return out
}

// VersionOutput is the output of a Version that returned version, ok and
// err (a failed one observed nothing).
func VersionOutput(version int64, ok bool, err error) StreamOutput {
	if err != nil {
		return StreamOutput{Outcome: Unknown, Err: err.Error()}
	}
	return StreamOutput{Outcome: Done, Version: version, Exists: ok}
}

// StreamModel is an event stream as pkg/stream documents it. Its state is
// the ids of the stream's events, by position.
//
//   - An Append whose ids the stream holds at consecutive positions, in
//     order, is a retry: it returns Duplicate, the original positions and
//     the stream's version, and stores nothing — whatever its expected
//     version (ids are checked first). Ids that are held otherwise are a
//     *DuplicateIDError.
//   - Otherwise an Append with an ExpectedVersion that is not the
//     stream's version is refused with a *VersionConflictError carrying
//     the actual version; any other Append stores its events at the next
//     positions. It may say Duplicate: a Client that re-sent its own
//     write after losing the response finds its events stored (by itself),
//     and reports the stream's version at the re-send, which may be later.
//   - Any Append may be refused otherwise — it gave up on a stream that
//     kept changing (*update.ConflictError), or its events were invalid —
//     and then stored nothing; such a refusal says nothing about the
//     stream.
//   - A Read returns the events from From, at most Limit, with their
//     positions, or NotFound for a stream without events; Version returns
//     the last position, and whether there is one.
//
// An Append whose outcome is unknown does what a successful one would
// have, wherever the checker places it.
func StreamModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionBy(func(in any) string { return in.(StreamInput).Stream }),
		Init:      func() any { return []string(nil) },
		Step: func(state, input, output any) (bool, any) {
			return stepStream(state.([]string), input.(StreamInput), output.(StreamOutput))
		},
		Equal: func(a, b any) bool { return slices.Equal(a.([]string), b.([]string)) },
		Hash: func(state any) uint64 {
			h := fnv.New64a()
			for _, id := range state.([]string) {
				h.Write([]byte(id))
				h.Write([]byte{0})
			}
			return h.Sum64()
		},
		DescribeOperation: describeStreamOp,
		DescribeState: func(state any) string {
			ids := state.([]string)
			short := make([]string, len(ids))
			for i, id := range ids {
				short[i] = shortID(id)
			}
			return fmt.Sprintf("%d events [%s]", len(ids), strings.Join(short, " "))
		},
	}
}

func stepStream(ids []string, in StreamInput, out StreamOutput) (bool, []string) {
	version := int64(len(ids)) - 1
	switch in.Op {
	case Read:
		if out.Outcome != Done {
			return true, ids
		}
		if out.NotFound {
			return len(ids) == 0, ids
		}
		from := min(max(in.From, 0), int64(len(ids)))
		want := ids[from:min(from+int64(in.Limit), int64(len(ids)))]
		return len(ids) > 0 && slices.Equal(out.IDs, want) && slices.Equal(out.Positions, positions(from, len(want))), ids
	case Version:
		return out.Outcome != Done || (out.Exists == (len(ids) > 0) && out.Version == version), ids
	}
	dup, mismatch := retried(ids, in.IDs)
	switch {
	case mismatch:
		return out.Outcome != Done && !out.Conflict, ids
	case dup != nil:
		switch out.Outcome {
		case Done:
			return out.Duplicate && slices.Equal(out.Positions, dup) && out.Version == version, ids
		case Refused:
			return !out.Conflict && !out.DuplicateID, ids
		}
		return true, ids
	case in.ExpectedVersion != nil && *in.ExpectedVersion != version:
		switch out.Outcome {
		case Done:
			return false, ids
		case Refused:
			return !out.DuplicateID && (!out.Conflict || out.Actual == version), ids
		}
		return true, ids
	}
	next := append(slices.Clip(ids), in.IDs...)
	switch out.Outcome {
	case Unknown:
		return true, next
	case Refused:
		return !out.Conflict && !out.DuplicateID, ids
	}
	end := int64(len(next)) - 1
	if out.Duplicate {
		// The Client re-sent its own write and found it stored: the version
		// it reports is the stream's at the re-send, maybe later.
		return slices.Equal(out.Positions, positions(version+1, len(in.IDs))) && out.Version >= end, next
	}
	return slices.Equal(out.Positions, positions(version+1, len(in.IDs))) && out.Version == end, next
}

// retried is pkg/stream's retry rule: if the stream holds one of appended
// at a position that lines up with an earlier identical append, dup holds
// that append's positions; if it holds one that cannot, mismatch.
func retried(ids, appended []string) (dup []int64, mismatch bool) {
	for j, id := range appended {
		p := slices.Index(ids, id)
		if p < 0 {
			continue
		}
		start := p - j
		if start < 0 || start+len(appended) > len(ids) || !slices.Equal(ids[start:start+len(appended)], appended) {
			return nil, true
		}
		return positions(int64(start), len(appended)), false
	}
	return nil, false
}

// positions is from, from+1, ..., n of them.
func positions(from int64, n int) []int64 {
	ps := make([]int64, n)
	for i := range ps {
		ps[i] = from + int64(i)
	}
	return ps
}

func describeStreamOp(input, output any) string {
	in, out := input.(StreamInput), output.(StreamOutput)
	var call string
	switch in.Op {
	case Read:
		call = fmt.Sprintf("read %s from %d limit %d", in.Stream, in.From, in.Limit)
	case Version:
		call = "version " + in.Stream
	default:
		short := make([]string, len(in.IDs))
		for i, id := range in.IDs {
			short[i] = shortID(id)
		}
		call = fmt.Sprintf("append %s [%s]", in.Stream, strings.Join(short, " "))
		if in.ExpectedVersion != nil {
			call += fmt.Sprintf(" expecting %d", *in.ExpectedVersion)
		}
	}
	switch {
	case out.Outcome != Done:
		return fmt.Sprintf("%s: %s (%s)", call, out.Outcome, out.Err)
	case in.Op == Read && out.NotFound:
		return call + " -> not found"
	case in.Op == Read:
		short := make([]string, len(out.IDs))
		for i, id := range out.IDs {
			short[i] = fmt.Sprintf("%d:%s", out.Positions[i], shortID(id))
		}
		return fmt.Sprintf("%s -> [%s]", call, strings.Join(short, " "))
	case in.Op == Version:
		return fmt.Sprintf("%s -> %d (exists %t)", call, out.Version, out.Exists)
	case out.Duplicate:
		return fmt.Sprintf("%s -> duplicate at %v, version %d", call, out.Positions, out.Version)
	}
	return fmt.Sprintf("%s -> at %v, version %d", call, out.Positions, out.Version)
}

// shortID is the end of an event id: enough to tell a test's ids apart in
// the visualization.
func shortID(id string) string {
	if len(id) > 6 {
		return id[len(id)-6:]
	}
	return id
}

// partitionBy partitions a history by key(input), in key order, so that
// the partitions come out in the same order every time (Explain relies on
// it).
func partitionBy(key func(input any) string) func([]porcupine.Operation) [][]porcupine.Operation {
	return func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range ops {
			k := key(op.Input)
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([][]porcupine.Operation, len(keys))
		for i, k := range keys {
			parts[i] = byKey[k]
		}
		return parts
	}
}

// SettleAppends uses evidence of what the operations of unknown outcome
// did: final holds, by stream, the ids of all its events as a last Read
// returned them. An Append of unknown outcome whose ids are not all there
// never stored them (nothing removes events from a stream without
// retention): it is left out, as the checker could place it after
// everything else anyway, and trying it everywhere else costs time that
// grows exponentially with their number. Reads and Versions that failed,
// which observed nothing, are left out too.
func SettleAppends(ops []porcupine.Operation, final map[string][]string) []porcupine.Operation {
	var settled []porcupine.Operation
	for _, op := range ops {
		in, out := op.Input.(StreamInput), op.Output.(StreamOutput)
		if out.Outcome == Unknown && (in.Op != Append || !containsAll(final[in.Stream], in.IDs)) {
			continue
		}
		settled = append(settled, op)
	}
	return settled
}

func containsAll(ids, want []string) bool {
	for _, id := range want {
		if !slices.Contains(ids, id) {
			return false
		}
	}
	return true
}
