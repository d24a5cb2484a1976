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

package faults

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// TestAPIServerRestart: the kube-apiserver is stopped and started again
// on the same etcd while three workers update one JobState, two append to
// streams (one of them an event-sourced JobState's) and the manager seals
// and projects. Nobody is restarted or reconnected by the test, and every
// worker gets work acknowledged after the restart. Afterwards every
// acknowledged update is applied exactly once (and no failed one),
// every stream holds each acknowledged event exactly once at gap-free
// positions with contiguous segments, the manager has projected the whole
// lifecycle (nothing rejected), sealed and reported the streams, and
// initializes a JobState created after the restart.
func TestAPIServerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ns := env.Namespace(t)
	logAPIServerOnFailure(t)
	mgr := startManager(t, "manager")

	counter := client.ObjectKey{Namespace: ns, Name: "counter"}
	createJob(t, counter)
	ledger := client.ObjectKey{Namespace: ns, Name: "ledger"}
	createJob(t, ledger, func(js *jobstatev1alpha1.JobState) {
		js.Spec.EventStreamRef = &jobstatev1alpha1.EventStreamReference{Name: "ledger-events"}
	})
	ledgerEvents := lifecycleEvents(1, "restart-worker", 150)
	audit := testEvents(2, 160)

	// Each worker its own identity and clients, as separate pods would be.
	const updaters, quota = 3, 60
	var o outcomes
	progresses := make([]*progress, updaters+2)
	targets := make([]int64, updaters+2) // what each worker must get acknowledged
	errs := make(chan error, len(progresses))
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // on failure too: the workers stop
	for i := range updaters {
		name := fmt.Sprintf("updater-%d", i)
		jobs, err := jobstate.New(env.ClientAs(t, ns, name, "worker_role.yaml"), jobstate.Options{Identity: name})
		if err != nil {
			t.Fatal(err)
		}
		p := &progress{}
		progresses[i], targets[i] = p, quota
		wg.Go(func() { errs <- updateAll(ctx, jobs, counter, name, quota, 40*time.Millisecond, &o, p) })
	}
	for i, w := range []struct {
		name   string
		events []stream.EventData
	}{{"ledger-events", ledgerEvents}, {"audit", audit}} {
		streams, err := stream.New(env.ClientAs(t, ns, "appender-"+w.name, "worker_role.yaml"), stream.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := &progress{}
		progresses[updaters+i], targets[updaters+i] = p, int64(len(w.events))
		key := client.ObjectKey{Namespace: ns, Name: w.name}
		wg.Go(func() { errs <- appendAll(ctx, streams, key, w.events, 10*time.Millisecond, p) })
	}

	// The restart, once every worker is under way.
	if err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(context.Context) (bool, error) {
		for _, p := range progresses {
			if p.done.Load() < 5 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("workers did not start: %v", err)
	}
	stopping := time.Now()
	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Nothing is acknowledged from here until the new process serves:
	// what a worker has done now, it did before the restart.
	atStop := make([]int64, len(progresses))
	for i, p := range progresses {
		atStop[i] = p.done.Load()
	}
	time.Sleep(time.Second)
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver stopped in %s, back and ready %s later", stopped.Sub(stopping).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
	for i, p := range progresses {
		t.Logf("worker %d: %d done at the stop; when the API server was ready %s", i, atStop[i], p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	failures := int64(0)
	for i, p := range progresses {
		failures += p.errors.Load()
		// It carried on after the restart, by itself, to the end.
		if atStop[i] >= targets[i] || p.done.Load() != targets[i] {
			t.Errorf("worker %d: %d of %d done at the stop, %d in the end; want work after the restart and all of it done", i, atStop[i], targets[i], p.done.Load())
		}
	}
	if failures == 0 {
		t.Error("no worker call failed: the restart did not hit the workers")
	}
	if mgr.exited() {
		t.Fatalf("the manager exited: %v", mgr.err)
	}

	// Every acknowledged update once, every failed one never.
	applied, err := o.check(getJob(t, counter))
	if err != nil {
		t.Error(err)
	}
	t.Logf("updates: %d acknowledged, %d failed, %d of unknown outcome (%d of them applied)", len(o.acked), len(o.failed), len(o.unknown), applied)
	if len(o.acked) != updaters*quota {
		t.Errorf("%d updates acknowledged, want %d", len(o.acked), updaters*quota)
	}

	// Every event once, in order; the manager seals and reports the
	// streams as complete.
	for _, w := range []struct {
		name string
		ids  []string
	}{{"ledger-events", idsOf(ledgerEvents)}, {"audit", idsOf(audit)}} {
		key := client.ObjectKey{Namespace: ns, Name: w.name}
		s, err := readStored(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.check(0, w.ids); err != nil {
			t.Errorf("stream %s: %v", w.name, err)
		}
		if len(s.segments) == 0 {
			t.Errorf("stream %s has no segment: the manager did not seal it", w.name)
		}
		waitFor(ctx, t, fmt.Sprintf("the manager to report stream %s", w.name), func(ctx context.Context) (bool, string, error) {
			es := &jobstatev1alpha1.EventStream{}
			if err := env.Client.Get(ctx, key, es); err != nil {
				return false, "", err
			}
			complete := meta.IsStatusConditionTrue(es.Status.Conditions, jobstatev1alpha1.ConditionSegmentsComplete)
			return es.Status.Version == int64(len(w.ids)-1) && complete, fmt.Sprintf("status %+v", es.Status), nil
		})
	}

	// The whole lifecycle projected, each event once.
	waitFor(ctx, t, "the manager to project the ledger", func(ctx context.Context) (bool, string, error) {
		js := getJob(t, ledger)
		return jobstate.ProjectedPosition(js) == int64(len(ledgerEvents)-1), fmt.Sprintf("status %+v", js.Status), nil
	})
	js := getJob(t, ledger)
	if p := js.Status.Projection; js.Status.Phase != jobstatev1alpha1.PhaseSucceeded || js.Status.Attempt != 1 || js.Status.Progress != 100 || p.RejectedCount != 0 {
		t.Errorf("ledger: phase %s, attempt %d, progress %d, %d rejected (%+v); want Succeeded, 1, 100, none", js.Status.Phase, js.Status.Attempt, js.Status.Progress, p.RejectedCount, p.Rejected)
	}

	// And the manager still initializes new JobStates.
	fresh := client.ObjectKey{Namespace: ns, Name: "after-restart"}
	createJob(t, fresh)
	waitFor(ctx, t, "the manager to initialize a new JobState", func(ctx context.Context) (bool, string, error) {
		js := getJob(t, fresh)
		return js.Status.Phase == jobstatev1alpha1.PhasePending, string(js.Status.Phase), nil
	})
}

// logAPIServerOnFailure logs the end of kube-apiserver's output if the
// test fails.
func logAPIServerOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out, err := os.ReadFile(env.APIServerLog())
		if err != nil {
			t.Log(err)
			return
		}
		lines := strings.Split(string(out), "\n")
		t.Logf("kube-apiserver output (last 60 lines):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
	})
}

// waitFor polls cond until it is true, up to 30 seconds (and ctx); on
// timeout the test fails with what cond last described.
func waitFor(ctx context.Context, t *testing.T, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, desc, err := cond(ctx)
		last = desc
		return ok, err
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last: %s", what, err, last)
	}
}
