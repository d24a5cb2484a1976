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
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// never is the return time of an operation whose outcome is unknown.
const never = math.MaxInt64

func op(client int, in any, call int64, out Output, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

type historyCase struct {
	name string
	ops  []porcupine.Operation
	want porcupine.CheckResult
}

func checkCases(t *testing.T, model porcupine.Model, cases []historyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(model, tc.ops, 10*time.Second); got != tc.want {
				_, info := porcupine.CheckOperationsVerbose(model, tc.ops, 10*time.Second)
				t.Errorf("porcupine says %s, want %s\n%s", got, tc.want, Explain(model, tc.ops, info))
			}
		})
	}
}

func TestCounterModel(t *testing.T) {
	inc := func(v int) CounterOutput { return CounterOutput{Outcome: Done, Value: v} }
	unknown := CounterOutput{Outcome: Unknown}
	refusedInc := CounterOutput{Outcome: Refused}
	checkCases(t, CounterModel(), []historyCase{
		{"concurrent increments, then a read", []porcupine.Operation{
			op(0, Increment("a"), 0, inc(2), 10),
			op(1, Increment("b"), 5, inc(1), 15),
			op(2, ReadCounter(), 20, inc(2), 25),
		}, porcupine.Ok},
		{"an unknown increment that was applied", []porcupine.Operation{
			op(0, Increment("c"), 0, unknown, never),
			op(1, ReadCounter(), 10, inc(1), 12),
			op(1, Increment("d"), 13, inc(2), 14),
		}, porcupine.Ok},
		{"an unknown increment that was not applied", []porcupine.Operation{
			op(0, Increment("e"), 0, unknown, never),
			op(1, ReadCounter(), 10, inc(0), 12),
		}, porcupine.Ok},
		{"a lost update: two increments both wrote 1", []porcupine.Operation{
			op(0, Increment("f"), 0, inc(1), 10),
			op(1, Increment("g"), 0, inc(1), 10),
		}, porcupine.Illegal},
		{"an increment applied twice", []porcupine.Operation{
			op(0, Increment("h"), 0, inc(1), 10),
			op(1, ReadCounter(), 20, inc(2), 25),
		}, porcupine.Illegal},
		{"a refused increment that was applied", []porcupine.Operation{
			op(0, Increment("i"), 0, refusedInc, 5),
			op(1, ReadCounter(), 6, inc(1), 7),
		}, porcupine.Illegal},
		{"an unknown increment that wrote what a later one reports", []porcupine.Operation{
			op(0, Increment("x"), 0, CounterOutput{Outcome: Unknown, Value: 1}, never),
			op(1, Increment("y"), 5, inc(1), 10),
		}, porcupine.Illegal},
		{"an unknown increment seen before it was called", []porcupine.Operation{
			op(1, ReadCounter(), 0, inc(1), 5),
			op(0, Increment("j"), 10, unknown, never),
		}, porcupine.Illegal},
	})
}

// TestSettleIncrements: the final log of applied ids drops the unknown
// increments that never took effect and fixes the order of the others.
func TestSettleIncrements(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, Increment("a"), 0, CounterOutput{Outcome: Done, Value: 1}, 10),
		op(1, Increment("b"), 20, CounterOutput{Outcome: Unknown}, never),
		op(2, Increment("c"), 20, CounterOutput{Outcome: Unknown}, never),
		op(2, ReadCounter(), 25, CounterOutput{Outcome: Unknown}, never),
		op(3, ReadCounter(), 30, CounterOutput{Outcome: Done, Value: 2}, 31),
	}
	settled := SettleIncrements(ops, []string{"a", "b"})
	if len(settled) != 3 || settled[1].Output.(CounterOutput).Value != 2 {
		t.Fatalf("settled = %+v, want a, b (value 2) and the read of 2", settled)
	}
	if got := porcupine.CheckOperations(CounterModel(), settled); !got {
		t.Errorf("settled history with the log [a b] is not linearizable")
	}
	// With the log [b a], b wrote 1, which a reports too.
	if porcupine.CheckOperations(CounterModel(), SettleIncrements(ops, []string{"b", "a"})) {
		t.Errorf("settled history with the log [b a] is linearizable")
	}
}

func TestStreamModel(t *testing.T) {
	const s = "s"
	expect := stream.ExpectVersion
	any := stream.AppendOptions{}
	at := func(version int64, ps ...int64) StreamOutput {
		return StreamOutput{Outcome: Done, Positions: ps, Version: version}
	}
	dupAt := func(version int64, ps ...int64) StreamOutput {
		o := at(version, ps...)
		o.Duplicate = true
		return o
	}
	read := func(from int64, ids ...string) StreamOutput {
		return StreamOutput{Outcome: Done, IDs: ids, Positions: positions(from, len(ids))}
	}
	conflict := func(actual int64) StreamOutput {
		return StreamOutput{Outcome: Refused, Conflict: true, Actual: actual}
	}
	unknown := StreamOutput{Outcome: Unknown}
	a, b, c := []string{"a"}, []string{"b"}, []string{"c1", "c2"}
	checkCases(t, StreamModel(), []historyCase{
		{"appends, a retry, a read and a version", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, at(0, 0), 10),
			op(1, AppendInput(s, c, expect(0)), 11, at(2, 1, 2), 20),
			op(0, AppendInput(s, a, expect(stream.NoStream)), 21, dupAt(2, 0), 30),
			op(1, ReadInput(s, 1, 5), 31, read(1, "c1", "c2"), 40),
			op(0, VersionInput(s), 31, StreamOutput{Outcome: Done, Version: 2, Exists: true}, 40),
		}, porcupine.Ok},
		{"a version conflict", []porcupine.Operation{
			op(0, AppendInput(s, a, any), 0, at(0, 0), 10),
			op(1, AppendInput(s, b, expect(stream.NoStream)), 11, conflict(0), 20),
			op(1, ReadInput(s, 0, 5), 21, read(0, "a"), 30),
		}, porcupine.Ok},
		{"a read of a stream without events", []porcupine.Operation{
			op(0, ReadInput(s, 0, 5), 0, StreamOutput{Outcome: Done, NotFound: true}, 10),
			op(0, VersionInput(s), 0, StreamOutput{Outcome: Done, Version: stream.NoStream}, 10),
			op(1, AppendInput(s, a, any), 5, at(0, 0), 15),
		}, porcupine.Ok},
		{"an unknown append, stored, then its retry is a duplicate", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, unknown, never),
			op(1, AppendInput(s, b, any), 5, at(1, 1), 15),
			op(0, AppendInput(s, a, expect(stream.NoStream)), 20, dupAt(1, 0), 30),
		}, porcupine.Ok},
		{"an unknown append, not stored, then its retry conflicts", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, unknown, never),
			op(1, AppendInput(s, b, any), 5, at(0, 0), 15),
			op(0, AppendInput(s, a, expect(stream.NoStream)), 20, conflict(0), 30),
		}, porcupine.Ok},
		{"an append that re-sent its own lost write reports a duplicate", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, dupAt(0, 0), 10),
			op(1, ReadInput(s, 0, 1), 11, read(0, "a"), 20),
		}, porcupine.Ok},
		{"a re-sent append reports the version at the re-send", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, dupAt(1, 0), 30),
			op(1, AppendInput(s, b, any), 5, at(1, 1), 20),
		}, porcupine.Ok},
		{"an append reports a version its events were not stored at", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, at(1, 0), 30),
			op(1, AppendInput(s, b, any), 5, at(1, 1), 20),
		}, porcupine.Illegal},
		{"two appends expecting no stream both stored (no precondition)", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, at(0, 0), 10),
			op(1, AppendInput(s, b, expect(stream.NoStream)), 0, at(1, 1), 10),
		}, porcupine.Illegal},
		{"a retried id stored again", []porcupine.Operation{
			op(0, AppendInput(s, a, any), 0, at(0, 0), 10),
			op(0, AppendInput(s, a, any), 11, at(1, 1), 20),
		}, porcupine.Illegal},
		{"a retry whose original was lost, stored twice", []porcupine.Operation{
			op(0, AppendInput(s, a, any), 0, unknown, never),
			op(0, AppendInput(s, a, any), 5, at(0, 0), 10),
			op(1, ReadInput(s, 0, 5), 20, read(0, "a", "a"), 30),
		}, porcupine.Illegal},
		{"an append that gave up on a busy stream stored nothing", []porcupine.Operation{
			op(0, AppendInput(s, a, any), 0, StreamOutput{Outcome: Refused, Contended: true}, 10),
			op(1, AppendInput(s, b, expect(stream.NoStream)), 11, at(0, 0), 20),
		}, porcupine.Ok},
		{"a retry refused as a version conflict (ids are checked first)", []porcupine.Operation{
			op(0, AppendInput(s, a, any), 0, at(0, 0), 10),
			op(1, AppendInput(s, b, any), 11, at(1, 1), 20),
			op(0, AppendInput(s, a, expect(stream.NoStream)), 21, conflict(1), 30),
		}, porcupine.Illegal},
		{"a version conflict on an append whose expectation held", []porcupine.Operation{
			op(0, AppendInput(s, a, expect(stream.NoStream)), 0, conflict(stream.NoStream), 10),
		}, porcupine.Illegal},
		{"a conflict that names the wrong version", []porcupine.Operation{
			op(0, AppendInput(s, a, any), 0, at(0, 0), 10),
			op(1, AppendInput(s, b, expect(5)), 11, conflict(stream.NoStream), 20),
		}, porcupine.Illegal},
		{"a read that sees an event before its append was called", []porcupine.Operation{
			op(1, ReadInput(s, 0, 5), 0, read(0, "a"), 10),
			op(0, AppendInput(s, a, any), 20, unknown, never),
		}, porcupine.Illegal},
		{"the same ids in another order are refused, not stored", []porcupine.Operation{
			op(0, AppendInput(s, c, any), 0, at(1, 0, 1), 10),
			op(0, AppendInput(s, []string{"c2", "c1"}, any), 11, StreamOutput{Outcome: Refused, DuplicateID: true}, 20),
			op(0, AppendInput(s, []string{"c2", "c1"}, any), 21, at(3, 2, 3), 30),
		}, porcupine.Illegal},
		{"streams are independent", []porcupine.Operation{
			op(0, AppendInput("s1", a, expect(stream.NoStream)), 0, at(0, 0), 10),
			op(1, AppendInput("s2", b, expect(stream.NoStream)), 0, at(0, 0), 10),
		}, porcupine.Ok},
	})
}

// TestSettleAppends: an unknown append whose ids the final stream does
// not hold is dropped, with failed reads; the others stay.
func TestSettleAppends(t *testing.T) {
	unknown := StreamOutput{Outcome: Unknown}
	ops := []porcupine.Operation{
		op(0, AppendInput("s", []string{"a"}, stream.AppendOptions{}), 0, unknown, never),
		op(1, AppendInput("s", []string{"b", "c"}, stream.AppendOptions{}), 0, unknown, never),
		op(2, AppendInput("t", []string{"a"}, stream.AppendOptions{}), 0, unknown, never),
		op(3, ReadInput("s", 0, 1), 0, unknown, never),
		op(3, VersionInput("s"), 0, StreamOutput{Outcome: Done, Version: 0, Exists: true}, 10),
	}
	settled := SettleAppends(ops, map[string][]string{"s": {"a", "b"}, "t": {"a"}})
	if len(settled) != 3 || settled[0].ClientId != 0 || settled[1].ClientId != 2 || settled[2].ClientId != 3 {
		t.Errorf("settled = %+v, want the appends of a to s and t, and the version", settled)
	}
}

func TestLockModel(t *testing.T) {
	const k = "lock"
	in := func(o LockOp, holder int) LockInput { return LockInput{Op: o, Key: k, Holder: holder} }
	token := func(n int64) LockOutput { return LockOutput{Outcome: Done, Token: n} }
	released := LockOutput{Outcome: Done}
	unknown := LockOutput{Outcome: Unknown}
	held := LockOutput{Outcome: Refused, Held: true}
	checkCases(t, LockModel(), []historyCase{
		{"a handoff", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, token(1), 10),
			op(1, in(Acquire, 1), 5, token(2), 30),
			op(0, in(Release, 0), 15, released, 20),
			op(1, in(Release, 1), 35, released, 40),
		}, porcupine.Ok},
		{"TryAcquire refused while held", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, token(1), 10),
			op(1, in(TryAcquire, 1), 11, held, 12),
			op(0, in(Release, 0), 15, released, 20),
		}, porcupine.Ok},
		{"an acquisition whose response was lost holds the lock until its TTL", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, unknown, never),
			op(1, in(TryAcquire, 1), 11, held, 12),
			op(1, in(Acquire, 1), 13, token(2), 20),
		}, porcupine.Ok},
		{"a release whose outcome is unknown", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, token(1), 10),
			op(0, in(Release, 0), 15, unknown, never),
			op(1, in(TryAcquire, 1), 16, held, 17),
			op(1, in(Acquire, 1), 18, token(2), 20),
		}, porcupine.Ok},
		{"two holders at once", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, token(1), 10),
			op(1, in(Acquire, 1), 11, token(2), 20),
			op(0, in(Release, 0), 21, released, 30),
		}, porcupine.Illegal},
		{"a token that does not grow", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, token(3), 10),
			op(0, in(Release, 0), 11, released, 20),
			op(1, in(Acquire, 1), 21, token(3), 30),
		}, porcupine.Illegal},
		{"TryAcquire refused as held after the release", []porcupine.Operation{
			op(0, in(Acquire, 0), 0, token(1), 10),
			op(0, in(Release, 0), 11, released, 20),
			op(1, in(TryAcquire, 1), 21, held, 30),
		}, porcupine.Illegal},
		{"a release by someone who does not hold it", []porcupine.Operation{
			op(1, in(Release, 1), 0, released, 10),
		}, porcupine.Illegal},
	})
}

func TestOutcomeOf(t *testing.T) {
	gr := schema.GroupResource{Group: "state.jobstate.dev", Resource: "jobstates"}
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, Done},
		{context.DeadlineExceeded, Unknown},
		{fmt.Errorf("appending: %w", context.Canceled), Unknown},
		{apierrors.NewTimeoutError("lost", 1), Unknown},
		{apierrors.NewServerTimeout(gr, "update", 1), Unknown},
		{&update.UnknownOutcomeError{Err: errors.New("connection reset")}, Unknown},
		{apierrors.NewInternalError(errors.New("etcd")), Unknown},
		{io.ErrUnexpectedEOF, Unknown},
		// Acquire gave up waiting (no take in flight): the lock was not taken.
		{&lease.TimeoutError{Err: context.DeadlineExceeded}, Refused},
		{&update.UnknownOutcomeError{Kind: "Lease", Err: &lease.TimeoutError{Err: context.DeadlineExceeded}}, Unknown},
		{apierrors.NewConflict(gr, "job", errors.New("changed")), Refused},
		{&update.ConflictError{Attempts: 3, Err: apierrors.NewConflict(gr, "job", errors.New("changed"))}, Refused},
		{fmt.Errorf("appending: %w", &stream.VersionConflictError{Expected: 1, Actual: 2}), Refused},
		{&stream.DuplicateIDError{ID: "x"}, Refused},
		{&lease.HeldError{Holder: "other"}, Refused},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "JobState"}, "job", nil), Refused},
		{apierrors.NewForbidden(gr, "job", errors.New("no")), Refused},
	} {
		if got := OutcomeOf(tc.err); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestRecorder: concurrent calls are all recorded, those with an unknown
// outcome returning at +∞, the others between their call and now.
func TestRecorder(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 100 {
				call := r.Call(c, Increment(fmt.Sprint(c, "-", i)))
				out := IncrementOutput(i, nil)
				if i%10 == 0 {
					out = IncrementOutput(0, context.DeadlineExceeded)
				}
				call.Return(out)
			}
		})
	}
	wg.Wait()
	ops := r.Operations()
	if len(ops) != 800 {
		t.Fatalf("%d operations recorded, want 800", len(ops))
	}
	now := r.Now()
	for _, o := range ops {
		unknown := o.Output.(CounterOutput).Outcome == Unknown
		switch {
		case unknown && o.Return != never:
			t.Errorf("unknown outcome returns at %d, want +∞", o.Return)
		case !unknown && (o.Return < o.Call || o.Return > now):
			t.Errorf("operation called at %d returns at %d (now %d)", o.Call, o.Return, now)
		}
	}
	if got := Tally(ops); got[Unknown] != 80 || got[Done] != 720 {
		t.Errorf("Tally = %v, want 720 done and 80 unknown", got)
	}
}

// TestCheckWritesVisualization: an Illegal history is explained, and its
// visualization written where Check says.
func TestCheckWritesVisualization(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, Increment("k"), 0, CounterOutput{Outcome: Done, Value: 1}, 10),
		op(1, Increment("l"), 0, CounterOutput{Outcome: Done, Value: 1}, 10),
	}
	rec := &recordingTB{TB: t}
	if got := Check(rec, CounterModel(), ops, 10*time.Second); got != porcupine.Illegal {
		t.Fatalf("Check = %s, want Illegal", got)
	}
	logs := strings.Join(rec.logs, "\n")
	if !strings.Contains(logs, "1 of 2 operations linearized") {
		t.Errorf("Check's log does not say how far the linearization got:\n%s", logs)
	}
	const marker = "porcupine's visualization: "
	i := strings.Index(logs, marker)
	if i < 0 {
		t.Fatalf("Check's log names no visualization:\n%s", logs)
	}
	path := strings.SplitN(logs[i+len(marker):], "\n", 2)[0]
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "increment -\\u003e 1") { // JSON in the page
		t.Errorf("the visualization does not describe the operations")
	}
}

// recordingTB keeps what is logged through it.
type recordingTB struct {
	testing.TB
	logs []string
}

func (r *recordingTB) Log(args ...any) { r.logs = append(r.logs, fmt.Sprint(args...)) }

func (r *recordingTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
