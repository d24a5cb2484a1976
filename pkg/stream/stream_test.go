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

package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// newClient is a sealer's Client, for every namespace.
func newClient(t *testing.T) *stream.Client {
	t.Helper()
	c, err := stream.New(env.Client, stream.Options{Sealer: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// streamKey names the stream name in namespace ns.
func streamKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func ev(typ string, data any) stream.EventData { return stream.EventData{Type: typ, Data: data} }

// appendN appends n single events to the stream key, one Append each.
func appendN(t *testing.T, c *stream.Client, key client.ObjectKey, n int) []stream.AppendResult {
	t.Helper()
	var out []stream.AppendResult
	for i := range n {
		res, err := c.Append(t.Context(), key, []stream.EventData{ev("Counted", map[string]int{"i": i})}, stream.AppendOptions{})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, res)
	}
	return out
}

func readAll(t *testing.T, c *stream.Client, key client.ObjectKey) []stream.RecordedEvent {
	t.Helper()
	events, err := c.Read(t.Context(), key, 0, 1<<20)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return events
}

// checkContiguous fails unless events are at positions 0..n-1.
func checkContiguous(t *testing.T, events []stream.RecordedEvent, n int) {
	t.Helper()
	if len(events) != n {
		t.Fatalf("read %d events, want %d", len(events), n)
	}
	for i, e := range events {
		if e.Position != int64(i) {
			t.Fatalf("event %d is at position %d", i, e.Position)
		}
	}
}

// The seed's scenario: two writers read version 2 and append expecting it.
func TestTwoWritersSameExpectedVersion(t *testing.T) {
	ns := env.Namespace(t)
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharedClient=%v", shared), func(t *testing.T) {
			a := newClient(t)
			b := a
			if !shared {
				b = newClient(t)
			}
			name := fmt.Sprintf("account-%v", shared)
			appendN(t, a, streamKey(ns, name), 3)
			v, ok, err := b.Version(t.Context(), streamKey(ns, name))
			if err != nil || !ok || v != 2 {
				t.Fatalf("Version = %d, %v, %v; want 2, true, nil", v, ok, err)
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, c := range []*stream.Client{a, b} {
				wg.Go(func() {
					_, errs[i] = c.Append(t.Context(), streamKey(ns, name), []stream.EventData{ev("Deposited", map[string]int{"amount": 100})}, stream.ExpectVersion(v))
				})
			}
			wg.Wait()
			var conflicts int
			for _, err := range errs {
				if err == nil {
					continue
				}
				var vc *stream.VersionConflictError
				if !errors.As(err, &vc) {
					t.Fatalf("error %v is not a *VersionConflictError", err)
				}
				conflicts++
				if vc.Expected != 2 || vc.Actual != 3 || vc.Code() != "STREAM_VERSION_CONFLICT" || !errors.Is(err, stream.ErrVersionConflict) {
					t.Errorf("conflict = %+v code %s", vc, vc.Code())
				}
				if err.Error() != "Expected version 2, stream is at version 3" {
					t.Errorf("message = %q", err.Error())
				}
			}
			if conflicts != 1 {
				t.Fatalf("%d of 2 appends conflicted, want exactly 1: %v", conflicts, errs)
			}
			checkContiguous(t, readAll(t, a, streamKey(ns, name)), 4)
		})
	}
}

// 16 writers x 100 unconditional appends: positions 0..1599, no gap, no
// duplicate, each writer's returned positions show its own events.
func TestConcurrentAppends(t *testing.T) {
	ns := env.Namespace(t)
	const writers, each = 16, 100
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("sharedClient=%v", shared), func(t *testing.T) {
			name := fmt.Sprintf("busy-%v", shared)
			sharedClient := newClient(t)
			type appended struct {
				id  string
				res stream.AppendResult
			}
			got := make([][]appended, writers)
			var wg sync.WaitGroup
			for w := range writers {
				c := sharedClient
				if !shared {
					c = newClient(t)
				}
				wg.Go(func() {
					for i := range each {
						id := uuid.NewString()
						res, err := c.Append(t.Context(), streamKey(ns, name), []stream.EventData{{ID: id, Type: "Counted", Data: map[string]int{"writer": w, "i": i}}}, stream.AppendOptions{})
						if err != nil {
							t.Errorf("writer %d append %d: %v", w, i, err)
							return
						}
						got[w] = append(got[w], appended{id, res})
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			events := readAll(t, sharedClient, streamKey(ns, name))
			checkContiguous(t, events, writers*each)
			seen := map[string]bool{}
			for _, e := range events {
				if seen[e.ID] {
					t.Fatalf("id %s stored twice", e.ID)
				}
				seen[e.ID] = true
			}
			for w := range writers {
				last := int64(-1)
				for _, a := range got[w] {
					p := a.res.Positions[0]
					if events[p].ID != a.id {
						t.Fatalf("writer %d: Append returned position %d for %s, Read shows %s there", w, p, a.id, events[p].ID)
					}
					if a.res.GlobalPositions[0] != events[p].GlobalPosition {
						t.Fatalf("position %d: Append returned global position %s, Read shows %s", p, a.res.GlobalPositions[0], events[p].GlobalPosition)
					}
					if p <= last {
						t.Fatalf("writer %d: positions not increasing: %d after %d", w, p, last)
					}
					last = p
				}
			}
			checkGlobalOrder(t, events)
		})
	}
}

// checkGlobalOrder: within a stream, global positions increase with
// positions.
func checkGlobalOrder(t *testing.T, events []stream.RecordedEvent) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if events[i-1].GlobalPosition.Compare(events[i].GlobalPosition) >= 0 {
			t.Fatalf("global position of %d (%s) is not before that of %d (%s)", i-1, events[i-1].GlobalPosition, i, events[i].GlobalPosition)
		}
	}
}

func TestExpectations(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()

	// "stream exists" on a missing stream fails and creates nothing.
	_, err := c.Append(ctx, streamKey(ns, "missing"), []stream.EventData{ev("A", nil)}, stream.AppendOptions{StreamExists: true})
	if !errors.Is(err, stream.ErrStreamNotFound) {
		t.Fatalf("StreamExists on a missing stream: %v, want ErrStreamNotFound", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "missing"}, &jobstatev1alpha1.EventStream{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed append created the stream: %v", err)
	}
	// N on a missing stream: conflict with actual -1.
	_, err = c.Append(ctx, streamKey(ns, "missing"), []stream.EventData{ev("A", nil)}, stream.ExpectVersion(0))
	var vc *stream.VersionConflictError
	if !errors.As(err, &vc) || vc.Expected != 0 || vc.Actual != -1 {
		t.Fatalf("expected 0 on a missing stream: %v", err)
	}
	if _, ok, err := c.Version(ctx, streamKey(ns, "missing")); ok || err != nil {
		t.Fatalf("Version of a missing stream: ok %v err %v", ok, err)
	}
	if _, err := c.Read(ctx, streamKey(ns, "missing"), 0, 10); !errors.Is(err, stream.ErrStreamNotFound) {
		t.Fatalf("Read of a missing stream: %v", err)
	}

	// -1 creates, then fails on the existing stream.
	res, err := c.Append(ctx, streamKey(ns, "s"), []stream.EventData{ev("A", nil), ev("B", nil)}, stream.ExpectVersion(stream.NoStream))
	if err != nil || res.Version != 1 || len(res.Positions) != 2 || res.Positions[0] != 0 || res.Positions[1] != 1 {
		t.Fatalf("-1 on a new stream: %+v, %v", res, err)
	}
	_, err = c.Append(ctx, streamKey(ns, "s"), []stream.EventData{ev("C", nil)}, stream.ExpectVersion(stream.NoStream))
	if !errors.As(err, &vc) || vc.Expected != -1 || vc.Actual != 1 || err.Error() != "Expected version -1, stream is at version 1" {
		t.Fatalf("-1 on an existing stream: %v", err)
	}
	if _, err := c.Append(ctx, streamKey(ns, "s"), []stream.EventData{ev("C", nil)}, stream.AppendOptions{StreamExists: true, ExpectedVersion: ptr.To[int64](1)}); err != nil {
		t.Fatalf("StreamExists and expected 1: %v", err)
	}
	checkContiguous(t, readAll(t, c, streamKey(ns, "s")), 3)

	// An EventStream created empty (kubectl apply with a retention policy)
	// has no version until its first event.
	empty := &jobstatev1alpha1.EventStream{}
	empty.Namespace, empty.Name = ns, "empty"
	if err := env.Client.Create(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if empty.Head == nil || empty.Head.Version != -1 {
		t.Fatalf("a created EventStream has head.version %+v, want the default -1", empty.Head)
	}
	if _, err := c.Append(ctx, streamKey(ns, "empty"), []stream.EventData{ev("A", nil)}, stream.AppendOptions{StreamExists: true}); !errors.Is(err, stream.ErrStreamNotFound) {
		t.Fatalf("StreamExists on an empty stream: %v", err)
	}
	if res, err := c.Append(ctx, streamKey(ns, "empty"), []stream.EventData{ev("A", nil)}, stream.ExpectVersion(stream.NoStream)); err != nil || res.Version != 0 {
		t.Fatalf("-1 on an empty stream: %+v %v", res, err)
	}
}

func TestIdempotentRetry(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	appendN(t, c, streamKey(ns, "s"), 2)
	batch := []stream.EventData{
		{ID: uuid.NewString(), Type: "Deposited", Data: map[string]int{"amount": 1}},
		{ID: uuid.NewString(), Type: "Deposited", Data: map[string]int{"amount": 2}},
	}
	first, err := c.Append(ctx, streamKey(ns, "s"), batch, stream.ExpectVersion(1))
	if err != nil || first.Duplicate {
		t.Fatalf("first append: %+v %v", first, err)
	}
	// The client timed out and retries with the same expected version:
	// the stream is at 3 now, but the retry is recognised first.
	again, err := c.Append(ctx, streamKey(ns, "s"), batch, stream.ExpectVersion(1))
	if err != nil || !again.Duplicate || again.Positions[0] != 2 || again.Positions[1] != 3 || again.Version != 3 {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if again.GlobalPositions[0] != first.GlobalPositions[0] || again.GlobalPositions[1] != first.GlobalPositions[1] {
		t.Fatalf("retry global positions %v, first %v", again.GlobalPositions, first.GlobalPositions)
	}
	// A different client (another process) retrying.
	other := newClient(t)
	if r, err := other.Append(ctx, streamKey(ns, "s"), batch, stream.AppendOptions{}); err != nil || !r.Duplicate {
		t.Fatalf("retry from another client: %+v %v", r, err)
	}
	checkContiguous(t, readAll(t, c, streamKey(ns, "s")), 4)

	// Reusing one id with other events is refused, nothing stored.
	_, err = c.Append(ctx, streamKey(ns, "s"), []stream.EventData{ev("New", nil), batch[1]}, stream.AppendOptions{})
	var dup *stream.DuplicateIDError
	if !errors.As(err, &dup) || dup.ID != batch[1].ID || dup.Position != 3 {
		t.Fatalf("reused id: %v", err)
	}
	_, err = c.Append(ctx, streamKey(ns, "s"), []stream.EventData{batch[1], batch[0]}, stream.AppendOptions{})
	if !errors.Is(err, stream.ErrDuplicateID) {
		t.Fatalf("retry with ids out of order: %v", err)
	}
	// An id stored at position 2 as the 4th event of an append: it cannot
	// be a retry (it would start at position -1).
	_, err = c.Append(ctx, streamKey(ns, "s"), []stream.EventData{ev("X", nil), ev("Y", nil), ev("Z", nil), batch[0]}, stream.AppendOptions{})
	if !errors.Is(err, stream.ErrDuplicateID) {
		t.Fatalf("a stored id late in a new append: %v", err)
	}
	if v, _, _ := c.Version(ctx, streamKey(ns, "s")); v != 3 {
		t.Fatalf("version %d after refused appends, want 3", v)
	}
}

func TestBadInput(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	appendN(t, c, streamKey(ns, "s"), 1)
	big := strings.Repeat("x", stream.MaxEventBytes)
	many := make([]stream.EventData, stream.MaxAppendEvents+1)
	for i := range many {
		many[i] = ev("A", nil)
	}
	heavy := make([]stream.EventData, 5)
	for i := range heavy {
		heavy[i] = ev("A", map[string]string{"blob": strings.Repeat("y", 60<<10)})
	}
	for _, tc := range []struct {
		name   string
		events []stream.EventData
		want   error
		text   string
	}{
		{"oversized event", []stream.EventData{ev("A", nil), ev("Huge", map[string]string{"blob": big})}, stream.ErrTooLarge, "event 1 (type Huge) is"},
		{"too many events", many, stream.ErrTooLarge, "the append is 101 events, the limit is 100"},
		{"oversized append", heavy, stream.ErrTooLarge, "the append is"},
		{"array data", []stream.EventData{ev("A", []int{1})}, stream.ErrInvalidEvent, "event 0: data: must be a JSON object"},
		{"bad id", []stream.EventData{{ID: "retry-1", Type: "A"}}, stream.ErrInvalidEvent, `id "retry-1" is not a UUID`},
		{"no type", []stream.EventData{{}}, stream.ErrInvalidEvent, "type must have 1 to 128 characters"},
		{"type not UTF-8", []stream.EventData{{Type: "Dep\xffosit"}}, stream.ErrInvalidEvent, "is not valid UTF-8"},
		{"no events", nil, stream.ErrInvalidEvent, "at least one event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Append(ctx, streamKey(ns, "s"), tc.events, stream.AppendOptions{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
	if v, _, _ := c.Version(ctx, streamKey(ns, "s")); v != 0 {
		t.Fatalf("version %d after refused appends, want 0", v)
	}
}

// Appends seal older events into segments; reads cross them; a
// multi-event append that triggers a seal is stored whole.
func TestSegments(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	const singles = 150
	appendN(t, c, streamKey(ns, "s"), singles)
	batch := make([]stream.EventData, 100)
	for i := range batch {
		batch[i] = ev("Batched", map[string]int{"i": i})
	}
	res, err := c.Append(ctx, streamKey(ns, "s"), batch, stream.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range res.Positions {
		if p != int64(singles+i) {
			t.Fatalf("batch event %d at position %d", i, p)
		}
	}
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "s"}, es); err != nil {
		t.Fatal(err)
	}
	if es.Head.First == 0 || res.Positions[0] < es.Head.First {
		t.Fatalf("head.first = %d: the append did not seal before adding its %d events", es.Head.First, len(batch))
	}
	appendN(t, c, streamKey(ns, "s"), 1000)
	total := singles + len(batch) + 1000
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "s"}, es); err != nil {
		t.Fatal(err)
	}
	if n := len(es.Head.Events.Items); n > 48 {
		t.Fatalf("the head holds %d events, want at most 48", n)
	}
	segs, err := stream.ListSegments(ctx, env.Client, es)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 5 {
		t.Fatalf("%d segments for %d events, want several", len(segs), total)
	}
	for _, s := range segs {
		seg := &jobstatev1alpha1.EventSegment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: s.Name}, seg); err != nil {
			t.Fatal(err)
		}
		owner := seg.OwnerReferences
		if len(owner) != 1 || owner[0].UID != es.UID || !*owner[0].Controller || !*owner[0].BlockOwnerDeletion {
			t.Fatalf("segment %s owner references %+v", s.Name, owner)
		}
	}
	// A fresh client (empty segment cache) reads everything, in order.
	fresh := newClient(t)
	events := readAll(t, fresh, streamKey(ns, "s"))
	checkContiguous(t, events, total)
	checkGlobalOrder(t, events)
	for i, e := range events[singles : singles+len(batch)] {
		if e.Type != "Batched" || string(e.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("batch event %d read back as %s %s", i, e.Type, e.Data)
		}
	}
	// Reads from the middle, crossing segment boundaries, in pages.
	for from := int64(0); from < int64(total); from += 97 {
		page, err := fresh.Read(ctx, streamKey(ns, "s"), from, 97)
		if err != nil {
			t.Fatal(err)
		}
		want := min(97, total-int(from))
		if len(page) != want || page[0].Position != from || page[len(page)-1].Position != from+int64(want)-1 {
			t.Fatalf("Read(%d, 97) = %d events from %d", from, len(page), page[0].Position)
		}
		for i, e := range page {
			if want := events[from+int64(i)]; e.ID != want.ID || e.GlobalPosition != want.GlobalPosition {
				t.Fatalf("Read(%d, 97)[%d] = %s %s, full read has %s %s", from, i, e.ID, e.GlobalPosition, want.ID, want.GlobalPosition)
			}
		}
	}
}

// Appends made one after another, across streams, get increasing global
// positions, and an event's global position does not change when later
// writes stamp or seal it.
func TestGlobalPositionIsCommitOrder(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	streams := []string{"a", "b", "c"}
	type stored struct {
		stream   string
		position int64
		global   stream.GlobalPosition
	}
	var order []stored
	for i := range 600 {
		name := streams[i%len(streams)]
		if i%7 == 0 {
			name = streams[0] // uneven, so writes to one stream follow each other too
		}
		res, err := c.Append(ctx, streamKey(ns, name), []stream.EventData{ev("A", nil), ev("B", nil)}, stream.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range res.Positions {
			order = append(order, stored{name, p, res.GlobalPositions[j]})
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i-1].global.Compare(order[i].global) >= 0 {
			t.Fatalf("append %d (%s@%d) has global position %s, not after %s of the append before it", i, order[i].stream, order[i].position, order[i].global, order[i-1].global)
		}
	}
	read := map[string][]stream.RecordedEvent{}
	for _, name := range streams {
		read[name] = readAll(t, c, streamKey(ns, name))
	}
	for _, s := range order {
		if got := read[s.stream][s.position].GlobalPosition; got != s.global {
			t.Fatalf("%s@%d: Append returned global position %s, Read now shows %s", s.stream, s.position, s.global, got)
		}
	}
}

// Edits of committed events are refused by the API server, whoever sends
// them (here a merge patch, as kubectl patch sends).
func TestCommittedEventsAreImmutable(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	appendN(t, c, streamKey(ns, "s"), 300)
	key := client.ObjectKey{Namespace: ns, Name: "s"}
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(ctx, key, es); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, c, streamKey(ns, "s"))
	segs, err := stream.ListSegments(ctx, env.Client, es)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	// The head's events as stored (one JSON line each), edited.
	edited := func(edit func(events []jobstatev1alpha1.Event) []jobstatev1alpha1.Event) string {
		text, err := jobstatev1alpha1.NewEventLog(edit(slices.Clone(es.Head.Events.Items))...).Text()
		if err != nil {
			t.Fatal(err)
		}
		patch, _ := json.Marshal(map[string]any{"head": map[string]any{"events": text}})
		return string(patch)
	}
	forged := edited(func(events []jobstatev1alpha1.Event) []jobstatev1alpha1.Event {
		events[0].Data.Raw = []byte(`{"i":-1}`)
		return events
	})
	dropped := edited(func(events []jobstatev1alpha1.Event) []jobstatev1alpha1.Event { return events[1:] })
	for _, tc := range []struct {
		name, obj, patch, want string
	}{
		{"edit an event's data", "s", forged, "committed events are immutable"},
		{"drop the oldest event without sealing it", "s", dropped, "committed events are immutable"},
		{"drop the newest event", "s", fmt.Sprintf(`{"head":{"version":%d}}`, es.Head.Version-1), "head.version may not decrease"},
		{"reopen sealed events", "s", `{"head":{"first":0}}`, "head.first may not decrease"},
		{"hide events by counting them as sealed", "s", fmt.Sprintf(`{"head":{"sealedChars":%d}}`, es.Head.SealedChars+10), "head.sealedChars may only grow"},
		{"edit a segment", segs[0].Name, `{"spec":{"events":"{\"position\":0,\"id\":\"00000000-0000-0000-0000-000000000000\",\"type\":\"Forged\",\"data\":{},\"time\":\"2026-01-01T00:00:00.000000Z\"}\n"}}`, "EventSegment is immutable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var obj client.Object = &jobstatev1alpha1.EventStream{}
			if tc.obj != "s" {
				obj = &jobstatev1alpha1.EventSegment{}
			}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: tc.obj}, obj); err != nil {
				t.Fatal(err)
			}
			err := env.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(tc.patch)))
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("patch: %v, want Invalid with %q", err, tc.want)
			}
		})
	}
	after := readAll(t, c, streamKey(ns, "s"))
	if len(after) != len(before) {
		t.Fatalf("%d events after the refused edits, %d before", len(after), len(before))
	}
	for i := range before {
		if string(before[i].Data) != string(after[i].Data) || before[i].GlobalPosition != after[i].GlobalPosition {
			t.Fatalf("event %d changed: %s -> %s", i, before[i].Data, after[i].Data)
		}
	}
}

// A retry arriving after sealing cut its append in two is recognised by the
// ids still in the head.
func TestRetryOfAPartlySealedAppend(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	appendN(t, c, streamKey(ns, "s"), 30)
	batch := make([]stream.EventData, 20)
	for i := range batch {
		batch[i] = stream.EventData{ID: uuid.NewString(), Type: "Batched", Data: map[string]int{"i": i}}
	}
	first, err := c.Append(ctx, streamKey(ns, "s"), batch, stream.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es := &jobstatev1alpha1.EventStream{}
	for range 48 {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "s"}, es); err != nil {
			t.Fatal(err)
		}
		if es.Head.First > first.Positions[0] {
			break
		}
		appendN(t, c, streamKey(ns, "s"), 1)
	}
	if es.Head.First <= first.Positions[0] || es.Head.First > first.Positions[19] {
		t.Fatalf("setup: head.first %d does not cut the append at %d..%d", es.Head.First, first.Positions[0], first.Positions[19])
	}
	again, err := newClient(t).Append(ctx, streamKey(ns, "s"), batch, stream.AppendOptions{})
	if err != nil || !again.Duplicate {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if !slices.Equal(again.Positions, first.Positions) || !slices.Equal(again.GlobalPositions, first.GlobalPositions) {
		t.Fatalf("retry positions %v %v, first %v %v", again.Positions, again.GlobalPositions, first.Positions, first.GlobalPositions)
	}
}

// A foreign write right after an append — a label, as kubectl label sends
// it — is accepted: the API server records the append's commit revision on
// its behalf (config/admission/eventstream_stamp.yaml), and the global
// positions are unchanged. A status write is still refused until Seal
// records it (the API server keeps a status write from changing the head).
func TestForeignWritesRecordTheCommitRevision(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	appendN(t, c, streamKey(ns, "s"), 3)
	before := readAll(t, c, streamKey(ns, "s"))
	es := &jobstatev1alpha1.EventStream{}
	es.Namespace, es.Name = ns, "s"
	status := client.RawPatch(types.MergePatchType, []byte(`{"status":{"events":3}}`))
	if err := env.Client.Status().Patch(ctx, es, status); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "is not recorded yet") {
		t.Fatalf("a status write on a stream with an unrecorded append: %v", err)
	}
	label := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"billing"}}}`))
	if err := env.Client.Patch(ctx, es, label); err != nil {
		t.Fatalf("labelling a stream with an unrecorded append: %v", err)
	}
	if stream.Unstamped(es) || es.Head.Commits.Items[len(es.Head.Commits.Items)-1].From != 2 {
		t.Fatalf("after the label: unstamped %+v, commits %+v; want the last append (position 2) recorded", es.Head.Unstamped, es.Head.Commits.Items)
	}
	after := readAll(t, c, streamKey(ns, "s"))
	for i, e := range before {
		if after[i].GlobalPosition != e.GlobalPosition {
			t.Fatalf("event %d: global position %s, then %s", i, e.GlobalPosition, after[i].GlobalPosition)
		}
	}
	if err := env.Client.Status().Patch(ctx, es, status); err != nil {
		t.Fatalf("a status write once the label recorded the revision: %v", err)
	}
	appendN(t, c, streamKey(ns, "s"), 1) // pkg/stream carries on from the stamped head
	checkContiguous(t, readAll(t, c, streamKey(ns, "s")), 4)
}

// Events whose JSON the encoding escapes (HTML characters, non-ASCII text,
// metadata, spaces in the given data) survive being decoded and written
// back by later appends and seals: the API server compares the stored text.
func TestEventTextRoundTrips(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t)
	ctx := t.Context()
	odd := stream.EventData{
		Type:     "Déposé<&>",
		Data:     json.RawMessage(`{ "note" : "a <b> & c", "name": "Zoë 🚀" }`),
		Metadata: map[string]string{"cause": "<script>"},
	}
	for range 3 {
		if _, err := c.Append(ctx, streamKey(ns, "s"), []stream.EventData{odd}, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		appendN(t, c, streamKey(ns, "s"), 40) // past a seal
	}
	events := readAll(t, newClient(t), streamKey(ns, "s"))
	checkContiguous(t, events, 123)
	for _, p := range []int{0, 41, 82} {
		e := events[p]
		var data map[string]string
		if err := json.Unmarshal(e.Data, &data); err != nil || e.Type != odd.Type || data["note"] != "a <b> & c" || data["name"] != "Zoë 🚀" {
			t.Fatalf("event %d read back as %s %s (%v)", p, e.Type, e.Data, err)
		}
	}
}

// One Client serves every namespace: streams of one name in two namespaces
// are two streams, whose group commits, carried heads and cached segments
// (with the same names) do not mix.
func TestOneClientForEveryNamespace(t *testing.T) {
	ctx := t.Context()
	namespaces := []string{env.Namespace(t), env.Namespace(t)}
	c := newClient(t)
	const writers, each = 4, 25 // 100 events per stream: sealed twice
	var mu sync.Mutex
	ids := map[string]map[string]bool{}
	var wg sync.WaitGroup
	for _, ns := range namespaces {
		ids[ns] = map[string]bool{}
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := uuid.NewString()
					if _, err := c.Append(ctx, streamKey(ns, "s"), []stream.EventData{{ID: id, Type: "Counted", Data: map[string]int{"w": w, "i": i}}}, stream.AppendOptions{}); err != nil {
						t.Errorf("%s writer %d append %d: %v", ns, w, i, err)
						return
					}
					mu.Lock()
					ids[ns][id] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A fresh Client reads both, twice: the second time from its cache.
	fresh := newClient(t)
	for range 2 {
		for _, ns := range namespaces {
			events := readAll(t, fresh, streamKey(ns, "s"))
			checkContiguous(t, events, writers*each)
			for _, e := range events {
				if !ids[ns][e.ID] {
					t.Fatalf("%s/s position %d holds %s, not appended there", ns, e.Position, e.ID)
				}
			}
		}
	}
	// Alternating appends to the two streams each start from the head this
	// Client carries for that stream: one write each, no read.
	var gets, writes atomic.Int64
	counted := interceptor.NewClient(env.Client, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes.Add(1)
			return c.Update(ctx, obj, opts...)
		},
	})
	worker, err := stream.New(counted, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		appendN(t, worker, streamKey(ns, "t"), 1)
	}
	gets.Store(0)
	writes.Store(0)
	for i := range 10 {
		key := streamKey(namespaces[i%2], "t")
		if _, err := worker.Append(ctx, key, []stream.EventData{ev("Counted", nil)}, stream.ExpectVersion(int64(i/2))); err != nil {
			t.Fatalf("append %d to %s: %v", i, key, err)
		}
	}
	if gets.Load() != 0 || writes.Load() != 10 {
		t.Fatalf("10 alternating appends made %d reads and %d writes, want 0 and 10", gets.Load(), writes.Load())
	}
}

// A stream is named by a namespace and a name: a key without either is
// refused before any request.
func TestKeyNeedsNamespaceAndName(t *testing.T) {
	c := newClient(t)
	ctx := t.Context()
	for _, key := range []client.ObjectKey{{Name: "s"}, {Namespace: env.Namespace(t)}} {
		_, appendErr := c.Append(ctx, key, []stream.EventData{ev("A", nil)}, stream.AppendOptions{})
		_, readErr := c.Read(ctx, key, 0, 1)
		_, _, versionErr := c.Version(ctx, key)
		_, _, sealErr := c.Seal(ctx, key)
		for call, err := range map[string]error{"Append": appendErr, "Read": readErr, "Version": versionErr, "Seal": sealErr} {
			if err == nil || !strings.Contains(err.Error(), "a namespace and a name") {
				t.Errorf("%s(%q): %v, want refused", call, key, err)
			}
		}
	}
}
