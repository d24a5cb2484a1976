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

package jobstate_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// pendingJob creates a JobState and initializes it to Pending, as the
// controller would.
func pendingJob(t *testing.T) client.ObjectKey {
	t.Helper()
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "job"}}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	if err := lifecycle.DoInitialize(js, t0); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(js)
}

func newWorker(t *testing.T, id string, clock *clocktesting.FakeClock) *jobstate.Client {
	t.Helper()
	w, err := jobstate.New(env.Client, jobstate.Options{Identity: id, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func get(t *testing.T, key client.ObjectKey) *jobstatev1alpha1.JobState {
	t.Helper()
	js := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, js); err != nil {
		t.Fatal(err)
	}
	return js
}

// TestClaimRace: 8 workers claim one Pending job at once; exactly one wins,
// the others learn the job is no longer Pending.
func TestClaimRace(t *testing.T) {
	key := pendingJob(t)
	clock := clocktesting.NewFakeClock(t0)
	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		w := newWorker(t, "worker-"+string(rune('a'+i)), clock)
		wg.Go(func() { _, errs[i] = w.Claim(t.Context(), key) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, lifecycle.ErrIllegalTransition):
			t.Errorf("losing claim: %v, want ErrIllegalTransition", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d claims succeeded, want exactly 1", won)
	}
	if js := get(t, key); js.Status.Attempt != 1 || js.Status.Phase != jobstatev1alpha1.PhaseRunning {
		t.Errorf("status %s attempt %d, want Running attempt 1", js.Status.Phase, js.Status.Attempt)
	}
}

// TestStaleWorkerIsFenced: worker 1's attempt fails over to worker 2; worker
// 1's late heartbeat, success and failure are all rejected with ErrFenced
// and change nothing.
func TestStaleWorkerIsFenced(t *testing.T) {
	key := pendingJob(t)
	clock := clocktesting.NewFakeClock(t0)
	w1, w2 := newWorker(t, "worker-1", clock), newWorker(t, "worker-2", clock)

	a1, err := w1.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := w1.Fail(t.Context(), a1, "out of memory"); err != nil {
		t.Fatal(err)
	}
	clock.Step(lifecycle.RetryBackoff(1))
	a2, err := w2.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if a2.Attempt != 2 {
		t.Fatalf("second claim got attempt %d, want 2", a2.Attempt)
	}
	if err := w2.Heartbeat(t.Context(), a2, 30, map[string]any{"rows": 300}); err != nil {
		t.Fatal(err)
	}
	before := get(t, key)

	for name, stale := range map[string]func() error{
		"heartbeat": func() error { return w1.Heartbeat(t.Context(), a1, 90, map[string]any{"rows": 900}) },
		"succeed":   func() error { return w1.Succeed(t.Context(), a1, "") },
		"fail":      func() error { return w1.Fail(t.Context(), a1, "late") },
	} {
		err := stale()
		var fenced *lifecycle.FencedError
		if !errors.As(err, &fenced) {
			t.Errorf("stale %s: err = %v, want *lifecycle.FencedError", name, err)
			continue
		}
		if fenced.Presented.Attempt != 1 || fenced.Current.Attempt != 2 || fenced.Current.Holder != "worker-2" {
			t.Errorf("stale %s: %+v, want presented attempt 1, current attempt 2 of worker-2", name, fenced)
		}
	}
	if after := get(t, key); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("fenced writes changed the JobState: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
	}
	if err := w2.Succeed(t.Context(), a2, "imported 1000 rows"); err != nil {
		t.Fatal(err)
	}
	if js := get(t, key); js.Status.Phase != jobstatev1alpha1.PhaseSucceeded || js.Status.Message != "imported 1000 rows" {
		t.Errorf("status %s %q, want Succeeded with the holder's message", js.Status.Phase, js.Status.Message)
	}
}

func TestHeartbeatMergesData(t *testing.T) {
	key := pendingJob(t)
	w := newWorker(t, "worker-1", clocktesting.NewFakeClock(t0))
	a, err := w.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	steps := []map[string]any{
		{"cursor": "page-1", "rows": 100},
		{"rows": 200, "lastError": "timeout"},
		{"lastError": nil},
	}
	for i, data := range steps {
		if err := w.Heartbeat(t.Context(), a, int32(10*(i+1)), data); err != nil {
			t.Fatal(err)
		}
	}
	js := get(t, key)
	data, err := jobstate.Data(js)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 2 || data["cursor"] != "page-1" || data["rows"] != float64(200) {
		t.Errorf("data = %v, want cursor page-1 and rows 200 only", data)
	}
	if js.Status.Progress != 30 {
		t.Errorf("progress = %d, want 30", js.Status.Progress)
	}
}

func TestCancel(t *testing.T) {
	key := pendingJob(t)
	recorder := events.NewFakeRecorder(10)
	w, err := jobstate.New(env.Client, jobstate.Options{Identity: "worker-1", Clock: clocktesting.NewFakeClock(t0), Recorder: recorder})
	if err != nil {
		t.Fatal(err)
	}
	a, err := w.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(t.Context(), key, "superseded by a newer import"); err != nil {
		t.Fatal(err)
	}
	js := get(t, key)
	if !js.Spec.Cancel || js.Status.Phase != jobstatev1alpha1.PhaseCancelled {
		t.Fatalf("spec.cancel %v phase %s, want true and Cancelled", js.Spec.Cancel, js.Status.Phase)
	}
	if err := w.Heartbeat(t.Context(), a, 50, nil); !errors.Is(err, lifecycle.ErrFenced) {
		t.Errorf("heartbeat after cancel: err = %v, want ErrFenced", err)
	}
	// A finished job cannot be cancelled, and the attempt leaves it untouched.
	if err := w.Cancel(t.Context(), key, ""); !errors.Is(err, lifecycle.ErrIllegalTransition) {
		t.Errorf("second cancel: err = %v, want ErrIllegalTransition", err)
	}
	if after := get(t, key); after.ResourceVersion != js.ResourceVersion {
		t.Errorf("refused cancel wrote: resourceVersion %s -> %s", js.ResourceVersion, after.ResourceVersion)
	}
	close(recorder.Events)
	var got []string
	for e := range recorder.Events {
		got = append(got, e)
	}
	want := []string{"Normal Claimed Attempt 1 claimed by worker-1", "Normal Cancelled superseded by a newer import (by worker-1)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNewValidatesIdentity(t *testing.T) {
	if _, err := jobstate.New(env.Client, jobstate.Options{}); err == nil {
		t.Error("New accepted an empty identity")
	}
	long := make([]byte, 254)
	for i := range long {
		long[i] = 'w'
	}
	if _, err := jobstate.New(env.Client, jobstate.Options{Identity: string(long)}); err == nil {
		t.Error("New accepted a 254-character identity")
	}
}
