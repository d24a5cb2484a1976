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
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// streamMetrics is a reading of the stream metrics.
type streamMetrics struct {
	appends, events, conflicts, seals, created, replaced float64
}

func readStreamMetrics() streamMetrics {
	return streamMetrics{
		appends:   testutil.ToFloat64(metrics.StreamAppends),
		events:    testutil.ToFloat64(metrics.StreamAppendedEvents),
		conflicts: testutil.ToFloat64(metrics.StreamAppendConflicts),
		seals:     testutil.ToFloat64(metrics.StreamSeals),
		created:   testutil.ToFloat64(metrics.StreamSegmentsCreated),
		replaced:  testutil.ToFloat64(metrics.SegmentsDeleted(metrics.SegmentReplaced)),
	}
}

func (m streamMetrics) since(before streamMetrics) streamMetrics {
	return streamMetrics{
		appends: m.appends - before.appends, events: m.events - before.events, conflicts: m.conflicts - before.conflicts,
		seals: m.seals - before.seals, created: m.created - before.created, replaced: m.replaced - before.replaced,
	}
}

// TestAppendMetrics: 8 writers (8 Clients, as 8 processes) append 2 events
// each to a new stream, all expecting it not to exist. Exactly one Append
// stores its 2 events; the 7 others are STREAM_VERSION_CONFLICTs. The
// winner's retry with the same ids stores nothing and counts nothing.
func TestAppendMetrics(t *testing.T) {
	key := streamKey(env.Namespace(t), "account")
	const writers = 8
	before := readStreamMetrics()
	batches := make([][]stream.EventData, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		c, err := stream.New(env.Client, stream.Options{})
		if err != nil {
			t.Fatal(err)
		}
		batches[w] = []stream.EventData{
			{ID: uuid.NewString(), Type: "Opened"}, {ID: uuid.NewString(), Type: "Deposited", Data: map[string]int{"amount": w}},
		}
		wg.Go(func() { _, errs[w] = c.Append(t.Context(), key, batches[w], stream.ExpectVersion(stream.NoStream)) })
	}
	wg.Wait()
	winner := -1
	for w, err := range errs {
		switch {
		case err == nil:
			winner = w
		case !errors.Is(err, stream.ErrVersionConflict):
			t.Fatalf("writer %d: %v, want a version conflict", w, err)
		}
	}
	got := readStreamMetrics().since(before)
	if want := (streamMetrics{appends: 1, events: 2, conflicts: writers - 1}); got != want {
		t.Errorf("stream metrics moved by %+v, want %+v", got, want)
	}
	if winner < 0 {
		t.Fatal("no writer's Append succeeded")
	}
	res, err := newClient(t).Append(t.Context(), key, batches[winner], stream.AppendOptions{})
	if err != nil || !res.Duplicate {
		t.Fatalf("retry: %+v, %v; want a duplicate", res, err)
	}
	if m := readStreamMetrics().since(before); m != got {
		t.Errorf("the retry moved the stream metrics to %+v, want them left at %+v", m, got)
	}
}

// TestSealMetrics: a worker (no sealer) fills a head past its sealing
// size, which seals nothing; the sealer's Seal then seals it, in one head
// write; the sealer's own appends seal as they go. Every segment listed
// was counted as created, by a seal.
func TestSealMetrics(t *testing.T) {
	ctx := t.Context()
	key := streamKey(env.Namespace(t), "ledger")
	worker, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := readStreamMetrics()
	appendN(t, worker, key, 60)
	if got := readStreamMetrics().since(before); got != (streamMetrics{appends: 60, events: 60}) {
		t.Fatalf("after 60 appends by a worker: moved by %+v, want 60 appends of 60 events and no seal", got)
	}
	sealer := newClient(t)
	es, wrote, err := sealer.Seal(ctx, key)
	if err != nil || !wrote {
		t.Fatalf("Seal: wrote %v, %v", wrote, err)
	}
	segs, err := stream.ListSegments(ctx, env.Client, es)
	if err != nil {
		t.Fatal(err)
	}
	if got := readStreamMetrics().since(before); got.seals != 1 || got.created != float64(len(segs)) || len(segs) == 0 {
		t.Fatalf("after Seal: moved by %+v with %d segments; want 1 seal, every segment created", got, len(segs))
	}
	appendN(t, sealer, key, 200)
	es, _, err = sealer.Seal(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if segs, err = stream.ListSegments(ctx, env.Client, es); err != nil {
		t.Fatal(err)
	}
	got := readStreamMetrics().since(before)
	if got.seals < 2 || got.seals > got.created || got.created != float64(len(segs)) || got.appends != 260 || got.events != 260 {
		t.Errorf("after 200 appends by the sealer: moved by %+v with %d segments; want more seals, each creating segments, every segment counted", got, len(segs))
	}
}

// TestReplacedSegmentMetrics: a segment no seal wrote, where the next seal
// puts its own, is replaced: counted as deleted with reason replaced, and
// its replacement as created.
func TestReplacedSegmentMetrics(t *testing.T) {
	f := newTamperFixture(t, env.Namespace(t), "pre-created")
	if err := env.Client.Create(t.Context(), forgedSegment(f.stream(), 32, 63, nil)); err != nil {
		t.Fatal(err)
	}
	before := readStreamMetrics()
	f.append(40) // seals 32..
	f.intact()
	if got := readStreamMetrics().since(before); got.replaced != 1 || got.created < 1 || got.seals < 1 {
		t.Errorf("moved by %+v, want exactly 1 segment replaced, and a seal creating segments", got)
	}
}
