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

package history_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/history"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// eventIDs numbers the events of every test, so ids are never reused.
var eventIDs atomic.Int64

// newIDs returns n new event ids, in UUID form as pkg/stream requires.
func newIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", eventIDs.Add(1))
	}
	return ids
}

func eventsWith(ids []string) []stream.EventData {
	events := make([]stream.EventData, len(ids))
	for i, id := range ids {
		events[i] = stream.EventData{ID: id, Type: "Happened"}
	}
	return events
}

// appender appends to streams: a *stream.Client, or a broken variant.
type appender interface {
	Append(ctx context.Context, key client.ObjectKey, events []stream.EventData, opts stream.AppendOptions) (stream.AppendResult, error)
}

func newStreamClient(t *testing.T, c client.Client, opts stream.Options) *stream.Client {
	t.Helper()
	s, err := stream.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// streamRecorder records the stream operations of one test.
type streamRecorder struct {
	*history.Recorder
	// dropEvery makes every dropEvery-th append that succeeds be recorded
	// as if its response had been lost (0: none): the caller then knows
	// no more than that it may have been stored, and retries.
	dropEvery int64

	appends, dropped atomic.Int64
}

// append appends events with ids to key through a as client w, recorded.
func (r *streamRecorder) append(ctx context.Context, w int, a appender, key client.ObjectKey, ids []string, opts stream.AppendOptions) history.StreamOutput {
	call := r.Call(w, history.AppendInput(key.Name, ids, opts))
	out := history.AppendOutput(a.Append(ctx, key, eventsWith(ids), opts))
	if out.Outcome == history.Done && r.dropEvery > 0 && r.appends.Add(1)%r.dropEvery == 0 {
		r.dropped.Add(1)
		out = history.StreamOutput{Outcome: history.Unknown, Err: "the test dropped the response"}
	}
	call.Return(out)
	return out
}

// appendRetrying is append, followed while the outcome is unknown by up
// to 3 retries of the same events and options with a generous deadline,
// as a caller that must know does. It returns the last outcome.
func (r *streamRecorder) appendRetrying(ctx context.Context, w int, a appender, key client.ObjectKey, ids []string, opts stream.AppendOptions) history.StreamOutput {
	out := r.append(ctx, w, a, key, ids, opts)
	for try := 0; out.Outcome == history.Unknown && try < 3; try++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		out = r.append(ctx, w, a, key, ids, opts)
		cancel()
	}
	return out
}

func (r *streamRecorder) read(ctx context.Context, w int, c *stream.Client, key client.ObjectKey, from int64, limit int) history.StreamOutput {
	call := r.Call(w, history.ReadInput(key.Name, from, limit))
	out := history.ReadOutput(c.Read(ctx, key, from, limit))
	call.Return(out)
	return out
}

func (r *streamRecorder) version(ctx context.Context, w int, c *stream.Client, key client.ObjectKey) history.StreamOutput {
	call := r.Call(w, history.VersionInput(key.Name))
	out := history.VersionOutput(c.Version(ctx, key))
	call.Return(out)
	return out
}

// check reads every stream of keys whole, as client w (recorded), settles
// the history with what they hold (history.SettleAppends) and checks it
// against the stream model.
func (r *streamRecorder) check(t *testing.T, w int, keys []client.ObjectKey, want porcupine.CheckResult) {
	t.Helper()
	reader := newStreamClient(t, env.Client, stream.Options{})
	final := map[string][]string{}
	for _, key := range keys {
		out := r.read(t.Context(), w, reader, key, 0, 1<<20)
		if out.Outcome != history.Done {
			t.Fatalf("reading %s: %s", key, out.Err)
		}
		final[key.Name] = out.IDs
	}
	ops := r.Operations()
	t.Logf("recorded %d operations: %v", len(ops), history.Tally(ops))
	if got := history.Check(t, history.StreamModel(), history.SettleAppends(ops, final), checkTimeout); got != want {
		t.Errorf("porcupine: %s, want %s", got, want)
	}
}

// streamKeys names n streams s0, s1, ... in ns.
func streamKeys(ns string, n int) []client.ObjectKey {
	keys := make([]client.ObjectKey, n)
	for i := range keys {
		keys[i] = client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("s%d", i)}
	}
	return keys
}

// TestStreamIsLinearizable: 8 writers × 20 operations on 4 streams, with
// worker credentials — four writers share one stream.Client (group
// commit), the others have one each, as processes would. Appends of 1 or
// 2 events, with the expected version the writer last saw or none; Reads
// from a random position; Versions; and appends of events a writer stored
// before (a retry, which must be a Duplicate at the original positions).
// One call in 8 has a 1-20ms deadline; the client loses the response of
// every 6th write stored, and every 10th write before the API server (at
// most 12 faults); an append whose outcome is unknown is retried with the
// same ids. Stream s0 starts with 60 events appended (recorded) by the
// sealer, which sealed the older ones into a segment, so Reads cross
// it. Each stream stays under 128 events, so the head holds every event
// appended concurrently and idempotency covers all retries. The history
// must be linearizable as a stream (history.StreamModel).
func TestStreamIsLinearizable(t *testing.T) {
	const writers, perWriter, streams, seeded = 8, 20, 4, 60
	ns := env.Namespace(t)
	keys := streamKeys(ns, streams)
	rec := &streamRecorder{Recorder: history.NewRecorder()}

	sealer := newStreamClient(t, env.Client, stream.Options{Sealer: true})
	for range seeded {
		if out := rec.append(t.Context(), writers, sealer, keys[0], newIDs(1), stream.AppendOptions{}); out.Outcome != history.Done {
			t.Fatalf("seeding %s: %s", keys[0], out.Err)
		}
	}
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(t.Context(), keys[0], es); err != nil {
		t.Fatal(err)
	}
	if es.Head == nil || es.Head.First == 0 {
		t.Fatalf("%s was not sealed after %d appends: Reads would not cross a segment", keys[0], seeded)
	}

	f := &faults{loseEvery: 6, dropEvery: 10, max: 12}
	worker := f.client(env.ClientAs(t, ns, "worker", "worker_role.yaml"))
	clients := make([]*stream.Client, writers)
	for w := range clients {
		if w > 0 && w < writers/2 {
			clients[w] = clients[0]
			continue
		}
		clients[w] = newStreamClient(t, worker, stream.Options{})
	}

	var duplicates atomic.Int64
	var mu sync.Mutex
	var unexpected []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 2))
			c := clients[w]
			// What this writer last saw of each stream, and what it stored.
			last := map[string]int64{keys[0].Name: seeded - 1}
			stored := map[string][]history.StreamInput{}
			seen := func(name string) int64 {
				if v, ok := last[name]; ok {
					return v
				}
				return stream.NoStream
			}
			note := func(in history.StreamInput, out history.StreamOutput) {
				switch {
				case out.Outcome == history.Done:
					last[in.Stream] = out.Version
					stored[in.Stream] = append(stored[in.Stream], in)
					if out.Duplicate {
						duplicates.Add(1)
					}
				case out.Conflict:
					last[in.Stream] = out.Actual
				case out.Outcome == history.Refused && !out.Contended:
					mu.Lock()
					unexpected = append(unexpected, out.Err)
					mu.Unlock()
				}
			}
			for i := range perWriter {
				key := keys[(w+i)%streams]
				ctx, cancel := deadline(t.Context(), rnd, 8)
				switch r := rnd.IntN(100); {
				case r < 55:
					opts := stream.AppendOptions{}
					if r < 30 {
						opts = stream.ExpectVersion(seen(key.Name))
					}
					ids := newIDs(1 + rnd.IntN(2))
					note(history.AppendInput(key.Name, ids, opts), rec.appendRetrying(ctx, w, c, key, ids, opts))
				case r < 70:
					_ = rec.read(ctx, w, c, key, rnd.Int64N(max(seen(key.Name), 0)+1), 1+rnd.IntN(8))
				case r < 85 || len(stored[key.Name]) == 0:
					if out := rec.version(ctx, w, c, key); out.Outcome == history.Done && out.Exists {
						last[key.Name] = out.Version
					}
				default:
					again := stored[key.Name][rnd.IntN(len(stored[key.Name]))]
					opts := stream.AppendOptions{ExpectedVersion: again.ExpectedVersion}
					note(again, rec.appendRetrying(ctx, w, c, key, again.IDs, opts))
				}
				cancel()
			}
		})
	}
	wg.Wait()
	t.Logf("faults: %s; %d appends came back Duplicate", f, duplicates.Load())
	if len(unexpected) > 0 {
		t.Errorf("appends refused other than by a version conflict or contention: %q", unexpected)
	}
	if f.lost.Load() == 0 || duplicates.Load() == 0 {
		t.Errorf("no write had its response lost, or no retry came back Duplicate: the history does not exercise them")
	}
	rec.check(t, writers, keys, porcupine.Ok)
}

// checkThenAppend is the broken variant of an append with an expected
// version: it checks the version with a separate read, then appends
// unconditionally. between runs after the check, so that a test can let
// every writer check before any of them appends.
type checkThenAppend struct {
	c       *stream.Client
	between func()
}

func (a checkThenAppend) Append(ctx context.Context, key client.ObjectKey, events []stream.EventData, opts stream.AppendOptions) (stream.AppendResult, error) {
	v, _, err := a.c.Version(ctx, key)
	a.between()
	if err != nil {
		return stream.AppendResult{}, err
	}
	if opts.ExpectedVersion != nil && *opts.ExpectedVersion != v {
		return stream.AppendResult{}, &stream.VersionConflictError{Namespace: key.Namespace, Stream: key.Name, Expected: *opts.ExpectedVersion, Actual: v}
	}
	return a.c.Append(ctx, key, events, stream.AppendOptions{})
}

// TestStreamExpectedVersionRaces: 5 rounds in which 6 writers (a
// stream.Client each) read the stream's Version and append expecting it.
// Through stream.Client exactly one append of a round can win, and the
// history is linearizable; through checkThenAppend, whose writers all
// check before any appends, every append of a round is stored at a
// version it did not expect, and porcupine must say Illegal.
func TestStreamExpectedVersionRaces(t *testing.T) {
	const writers, rounds = 6, 5
	for _, tc := range []struct {
		name   string
		append func(c *stream.Client, between func()) appender
		want   porcupine.CheckResult
	}{
		{name: "stream.Client", append: func(c *stream.Client, _ func()) appender { return c }, want: porcupine.Ok},
		{
			name:   "version checked by a separate read, then appended unconditionally",
			append: func(c *stream.Client, between func()) appender { return checkThenAppend{c: c, between: between} },
			want:   porcupine.Illegal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t)
			key := streamKeys(ns, 1)[0]
			worker := env.ClientAs(t, ns, "worker", "worker_role.yaml")
			clients := make([]*stream.Client, writers)
			for w := range clients {
				clients[w] = newStreamClient(t, worker, stream.Options{})
			}
			rec := &streamRecorder{Recorder: history.NewRecorder()}
			var won atomic.Int64
			for range rounds {
				checked := newBarrier(writers)
				var wg sync.WaitGroup
				for w := range writers {
					a := tc.append(clients[w], checked.arrive)
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
						defer cancel()
						v := rec.version(ctx, w, clients[w], key)
						if out := rec.append(ctx, w, a, key, newIDs(1), stream.ExpectVersion(v.Version)); out.Outcome == history.Done {
							won.Add(1)
						}
					})
				}
				wg.Wait()
			}
			t.Logf("%d of %d appends stored", won.Load(), writers*rounds)
			rec.check(t, writers, []client.ObjectKey{key}, tc.want)
		})
	}
}

// freshIDsOnRetry is the broken variant of a store's idempotency: an
// appender that gives events new ids when they are sent again (as a client
// that makes up ids per attempt does), so a retry whose original was
// stored stores the events a second time.
type freshIDsOnRetry struct {
	c *stream.Client

	mu   sync.Mutex
	sent map[string]bool
}

func (a *freshIDsOnRetry) Append(ctx context.Context, key client.ObjectKey, events []stream.EventData, opts stream.AppendOptions) (stream.AppendResult, error) {
	a.mu.Lock()
	retry := a.sent[events[0].ID]
	for _, e := range events {
		a.sent[e.ID] = true
	}
	a.mu.Unlock()
	if retry {
		events = slices.Clone(events)
		for i, id := range newIDs(len(events)) {
			events[i].ID = id
		}
	}
	return a.c.Append(ctx, key, events, opts)
}

// TestStreamRetriedIDs: 3 writers × 9 appends to one stream (half of them
// expecting the version the writer last saw), through a client that loses
// the response of every 5th write stored (at most 4); the test
// also drops the response of every 3rd append that succeeded, so some
// appends certainly stored have an unknown outcome. Each is retried with
// the same ids until its outcome is known. Through stream.Client the
// retries of stored appends come back Duplicate at the original positions
// and the history is linearizable; through freshIDsOnRetry they store the
// events again, and porcupine must say Illegal.
func TestStreamRetriedIDs(t *testing.T) {
	const writers, perWriter = 3, 9
	for _, tc := range []struct {
		name   string
		append func(c *stream.Client) appender
		want   porcupine.CheckResult
	}{
		{name: "stream.Client", append: func(c *stream.Client) appender { return c }, want: porcupine.Ok},
		{
			name:   "fresh ids on retry",
			append: func(c *stream.Client) appender { return &freshIDsOnRetry{c: c, sent: map[string]bool{}} },
			want:   porcupine.Illegal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t)
			key := streamKeys(ns, 1)[0]
			f := &faults{loseEvery: 5, max: 4}
			worker := f.client(env.ClientAs(t, ns, "worker", "worker_role.yaml"))
			rec := &streamRecorder{Recorder: history.NewRecorder(), dropEvery: 3}
			var wg sync.WaitGroup
			for w := range writers {
				c := newStreamClient(t, worker, stream.Options{})
				a := tc.append(c)
				wg.Go(func() {
					last := stream.NoStream
					for i := range perWriter {
						ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
						opts := stream.AppendOptions{}
						if i%2 == 0 {
							opts = stream.ExpectVersion(last)
						}
						out := rec.appendRetrying(ctx, w, a, key, newIDs(1+i%2), opts)
						switch {
						case out.Outcome == history.Done:
							last = out.Version
						case out.Conflict:
							last = out.Actual
						}
						if i%3 == 2 {
							_ = rec.read(ctx, w, c, key, 0, 100)
						}
						cancel()
					}
				})
			}
			wg.Wait()
			t.Logf("faults: %s; %d responses dropped by the test", f, rec.dropped.Load())
			if rec.dropped.Load() == 0 {
				t.Fatal("no response was dropped: the test shows nothing about retries")
			}
			rec.check(t, writers, []client.ObjectKey{key}, tc.want)
		})
	}
}
