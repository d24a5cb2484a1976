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
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/history"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// newJobState creates a JobState whose status.data.counter the writers
// increment, and a worker's client bound to config/rbac/worker_role.yaml
// in its namespace.
func newJobState(t *testing.T) (client.ObjectKey, client.WithWatch) {
	t.Helper()
	ns := env.Namespace(t)
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "job"}}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(js), env.ClientAs(t, ns, "worker", "worker_role.yaml")
}

// counted is what the writers keep in status.data: the counter, and the
// ids of the increments applied, in order.
type counted struct {
	Counter int      `json:"counter"`
	Applied []string `json:"applied"`
}

func countedOf(js *jobstatev1alpha1.JobState) (counted, error) {
	var c counted
	if js.Status.Data == nil {
		return c, nil
	}
	return c, json.Unmarshal(js.Status.Data.Raw, &c)
}

// incrementAs is the writers' updateAction for the increment id: counter
// += 1, and id appended to applied. It returns the counter it wrote.
func incrementAs(js *jobstatev1alpha1.JobState, id string) (int, error) {
	c, err := countedOf(js)
	if err != nil {
		return 0, err
	}
	c.Counter++
	c.Applied = append(c.Applied, id)
	raw, err := json.Marshal(c)
	js.Status.Data = &runtime.RawExtension{Raw: raw}
	return c.Counter, err
}

// incrementer increments the counter of the JobState key as id and
// returns the value its increment wrote (meaningful only without error).
type incrementer func(ctx context.Context, key client.ObjectKey, id string) (int, error)

// updaterIncrement increments through u. The action runs again on every
// re-read; the value it computed last is the one the stored write holds.
func updaterIncrement(u *update.Updater[*jobstatev1alpha1.JobState]) incrementer {
	return func(ctx context.Context, key client.ObjectKey, id string) (int, error) {
		var value atomic.Int64
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		err := u.Update(ctx, js, func(js *jobstatev1alpha1.JobState) error {
			n, err := incrementAs(js, id)
			value.Store(int64(n))
			return err
		})
		return int(value.Load()), err
	}
}

// readCounter records a live read of the counter (not through any fault)
// and returns what it read.
func readCounter(ctx context.Context, rec *history.Recorder, w int, key client.ObjectKey) (counted, error) {
	call := rec.Call(w, history.ReadCounter())
	js := &jobstatev1alpha1.JobState{}
	err := env.Client.Get(ctx, key, js)
	var c counted
	if err == nil {
		c, err = countedOf(js)
	}
	if err != nil {
		call.Return(history.CounterOutput{Outcome: history.Unknown, Err: err.Error()})
		return c, err
	}
	call.Return(history.CounterOutput{Outcome: history.Done, Value: c.Counter})
	return c, nil
}

// checkCounter checks the history of the JobState key, settled by a final
// read of its applied ids (history.SettleIncrements), against the counter
// model, and that every increment that returned nil is applied exactly
// once. The final read is client reader's.
func checkCounter(t *testing.T, rec *history.Recorder, reader int, key client.ObjectKey, want porcupine.CheckResult) {
	t.Helper()
	final, err := readCounter(t.Context(), rec, reader, key)
	if err != nil {
		t.Fatal(err)
	}
	ops := rec.Operations()
	seen := map[string]int{}
	for _, id := range final.Applied {
		seen[id]++
	}
	var done int
	for _, op := range ops {
		in, out := op.Input.(history.CounterInput), op.Output.(history.CounterOutput)
		if in.Read || out.Outcome != history.Done {
			continue
		}
		done++
		if n := seen[in.ID]; n != 1 && want == porcupine.Ok {
			t.Errorf("increment %s returned %d, and is applied %d times", in.ID, out.Value, n)
		}
	}
	t.Logf("final counter %d, %d ids applied; %d increments returned nil; recorded: %v", final.Counter, len(final.Applied), done, history.Tally(ops))
	if got := history.Check(t, history.CounterModel(), history.SettleIncrements(ops, final.Applied), checkTimeout); got != want {
		t.Errorf("porcupine: %s, want %s", got, want)
	}
}

func newUpdater(t *testing.T, c client.Client) *update.Updater[*jobstatev1alpha1.JobState] {
	t.Helper()
	u, err := update.New[*jobstatev1alpha1.JobState](c, update.Options{Status: true, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUpdaterCounterIsLinearizable: 8 writers × 40 operations on one
// JobState — increments through update.Updater (3 in 4) and live reads —
// one call in 10 with a deadline of 1-20ms, through a client that loses
// the response of every 7th status write the API server stored, and every
// 11th write before it reaches the API server (at most 12 faults). The
// history must be linearizable as a counter: every increment that
// returned nil added exactly 1 and wrote the value it reports, a refused
// one added nothing, one of unknown outcome added 1 or nothing (which, a
// final read of the ids the actions recorded tells); and every increment
// that returned nil is recorded exactly once. Through one shared Updater
// (group commit) and with one Updater per writer (real 409s).
func TestUpdaterCounterIsLinearizable(t *testing.T) {
	const writers, perWriter = 8, 40
	for _, tc := range []struct {
		name   string
		shared bool
	}{
		{name: "shared Updater", shared: true},
		{name: "one Updater per writer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, worker := newJobState(t)
			f := &faults{loseEvery: 7, dropEvery: 11, max: 12}
			c := f.client(worker)
			incs := make([]incrementer, writers)
			for w := range incs {
				if tc.shared && w > 0 {
					incs[w] = incs[0]
					continue
				}
				incs[w] = updaterIncrement(newUpdater(t, c))
			}
			rec := history.NewRecorder()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(w), 1))
					for i := range perWriter {
						ctx, cancel := deadline(t.Context(), rnd, 10)
						if rnd.IntN(4) == 0 {
							_, _ = readCounter(ctx, rec, w, key)
						} else {
							id := fmt.Sprintf("%d-%d", w, i)
							call := rec.Call(w, history.Increment(id))
							call.Return(history.IncrementOutput(incs[w](ctx, key, id)))
						}
						cancel()
					}
				})
			}
			wg.Wait()
			t.Logf("faults: %s", f)
			if f.lost.Load() == 0 || history.Tally(rec.Operations())[history.Unknown] == 0 {
				t.Errorf("no write had its response lost, or no outcome was unknown (%s): the history does not exercise them", f)
			}
			checkCounter(t, rec, writers, key, porcupine.Ok)
		})
	}
}

// naiveIncrement is the broken variant: read, increment, write without
// the resourceVersion precondition (a merge patch: last write wins).
// between is called after the read, so a test can let every writer read
// before any writes.
func naiveIncrement(c client.Client, between func()) incrementer {
	return func(ctx context.Context, key client.ObjectKey, id string) (int, error) {
		js := &jobstatev1alpha1.JobState{}
		err := c.Get(ctx, key, js)
		between()
		if err != nil {
			return 0, err
		}
		base := js.DeepCopy()
		n, err := incrementAs(js, id)
		if err != nil {
			return 0, err
		}
		return n, c.Status().Patch(ctx, js, client.MergeFrom(base))
	}
}

// TestNaiveCounterIsIllegal shows the counter check can fail: 5 rounds in
// which 6 writers all read the counter before any of them writes. Through
// update.Updater (one per writer) the history is linearizable; the naive
// read-increment-write without precondition reports the same value to
// every writer of a round, and porcupine must say Illegal.
func TestNaiveCounterIsIllegal(t *testing.T) {
	const writers, rounds = 6, 5
	for _, tc := range []struct {
		name string
		inc  func(t *testing.T, c client.Client, between func()) incrementer
		want porcupine.CheckResult
	}{
		{
			name: "update.Updater",
			inc: func(t *testing.T, c client.Client, _ func()) incrementer {
				return updaterIncrement(newUpdater(t, c))
			},
			want: porcupine.Ok,
		},
		{
			name: "read, increment, write without precondition",
			inc: func(_ *testing.T, c client.Client, between func()) incrementer {
				return naiveIncrement(c, between)
			},
			want: porcupine.Illegal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, worker := newJobState(t)
			rec := history.NewRecorder()
			for r := range rounds {
				start, read := newBarrier(writers), newBarrier(writers)
				var wg sync.WaitGroup
				for w := range writers {
					inc := tc.inc(t, worker, read.arrive)
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
						defer cancel()
						start.arrive()
						id := fmt.Sprintf("%d-%d", w, r)
						call := rec.Call(w, history.Increment(id))
						call.Return(history.IncrementOutput(inc(ctx, key, id)))
					})
				}
				wg.Wait()
			}
			checkCounter(t, rec, writers, key, tc.want)
		})
	}
}

// barrier lets n goroutines wait until all have arrived, once.
type barrier struct{ wg sync.WaitGroup }

func newBarrier(n int) *barrier {
	b := &barrier{}
	b.wg.Add(n)
	return b
}

func (b *barrier) arrive() {
	b.wg.Done()
	b.wg.Wait()
}
