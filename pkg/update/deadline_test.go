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

package update_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// markCall is the action of call id: it counts itself and records its id
// in status.data, so the stored object says exactly which calls it holds.
func markCall(id string) update.Action[*jobstatev1alpha1.JobState] {
	return func(js *jobstatev1alpha1.JobState) error {
		if err := increment(js); err != nil {
			return err
		}
		data, err := jobstate.Data(js)
		if err != nil {
			return err
		}
		data[id] = true
		return jobstate.SetData(js, data)
	}
}

// TestShortDeadlinesDoNotFailOtherCallers is issue 9's defect 1: through
// one shared Updater, 8 callers with 10 s contexts and 8 with deadlines of
// 2–30 ms write the same object, 25 calls each. Every long call succeeds;
// a short call succeeds, fails with its own context's error (and is not
// stored), or fails with ErrOutcomeUnknown (either way). The stored object
// holds every long call, every succeeded short call and no definitely
// failed one, each once.
func TestShortDeadlinesDoNotFailOtherCallers(t *testing.T) {
	const callers, perCaller = 8, 25
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true})
	made := testenv.MixedDeadlines(t, callers, perCaller, func(ctx context.Context, id string) error {
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		return u.Update(ctx, js, markCall(id))
	})
	var long, short []testenv.Call
	for _, c := range made {
		if c.Long {
			long = append(long, c)
		} else {
			short = append(short, c)
		}
	}

	live := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, live); err != nil {
		t.Fatal(err)
	}
	data, err := jobstate.Data(live)
	if err != nil {
		t.Fatal(err)
	}
	failedLong := 0
	for _, o := range long {
		if o.Err != nil {
			failedLong++
			t.Errorf("long call %s: %v", o.ID, o.Err)
		} else if data[o.ID] != true {
			t.Errorf("long call %s succeeded but is not stored", o.ID)
		}
	}
	var ok, refused, unknown int
	for _, o := range short {
		switch {
		case o.Err == nil:
			ok++
			if data[o.ID] != true {
				t.Errorf("short call %s succeeded but is not stored", o.ID)
			}
		case errors.Is(o.Err, update.ErrOutcomeUnknown):
			unknown++
			if !errors.Is(o.Err, context.DeadlineExceeded) {
				t.Errorf("short call %s: %v, want its own deadline as the reason", o.ID, o.Err)
			}
		case errors.Is(o.Err, context.DeadlineExceeded):
			refused++
			if data[o.ID] == true {
				t.Errorf("short call %s failed with %v, but it is stored", o.ID, o.Err)
			}
		default:
			t.Errorf("short call %s: unexpected error %v", o.ID, o.Err)
		}
	}
	stored := len(data) - 1 // the counter is the one other key
	if n, _ := data["counter"].(float64); int(n) != stored {
		t.Errorf("counter = %v, but %d calls are recorded: an action was applied twice", n, stored)
	}
	t.Logf("long: %d of %d failed; short: %d ok, %d deadline before the write, %d outcome unknown; %d calls stored",
		failedLong, len(long), ok, refused, unknown, stored)
}

// TestCallerLeavingAWriteInFlightGetsUnknownOutcome: the write carrying two
// callers' actions hangs; the caller whose context is cancelled meanwhile
// returns at once with ErrOutcomeUnknown, while the other waits for the
// write and succeeds. The write was stored, with both actions.
func TestCallerLeavingAWriteInFlightGetsUnknownOutcome(t *testing.T) {
	key := newJobState(t)
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	var writes atomic.Int32
	c := interceptor.NewClient(env.Client, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if writes.Add(1) == 2 { // the batch of the two callers
				held <- struct{}{}
				<-hold
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	u, err := update.New[*jobstatev1alpha1.JobState](c, update.Options{Status: true})
	if err != nil {
		t.Fatal(err)
	}
	obj := func() *jobstatev1alpha1.JobState {
		return &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	// A first call's action waits until the two callers are queued behind
	// it, so that they share the next batch.
	queued := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- u.Update(t.Context(), obj(), func(js *jobstatev1alpha1.JobState) error { <-queued; return markCall("first")(js) })
	}()
	time.Sleep(50 * time.Millisecond)
	shortCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- u.Update(shortCtx, obj(), markCall("short")) }()
	longDone := make(chan error, 1)
	go func() { longDone <- u.Update(t.Context(), obj(), markCall("long")) }()
	time.Sleep(50 * time.Millisecond)
	close(queued)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-held // the two callers' write is in flight
	cancel()
	select {
	case err := <-errs:
		if !errors.Is(err, update.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: %v, want ErrOutcomeUnknown wrapping its context's error", err)
		}
	case <-time.After(5 * time.Second):
		close(hold)
		t.Fatalf("the cancelled caller did not return while its write was held: %v", <-errs)
	}
	select {
	case err := <-longDone:
		t.Fatalf("long caller returned %v while its write was held", err)
	default:
	}
	close(hold)
	if err := <-longDone; err != nil {
		t.Fatalf("long caller: %v", err)
	}
	live := obj()
	if err := env.Client.Get(t.Context(), key, live); err != nil {
		t.Fatal(err)
	}
	data, _ := jobstate.Data(live)
	if data["first"] != true || data["short"] != true || data["long"] != true || data["counter"] != 3.0 {
		t.Errorf("stored data = %v, want the three calls, counted once each", data)
	}
}

// TestTimeoutDuringALosingStreakIsAConflict: an Update whose first write
// conflicts and whose deadline passes while it tries again (here: during
// its second action) fails with a *ConflictError (apierrors.IsConflict)
// that also matches the deadline, and nothing of it is stored.
func TestTimeoutDuringALosingStreakIsAConflict(t *testing.T) {
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true})
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	calls := 0
	err := u.Update(ctx, js, func(js *jobstatev1alpha1.JobState) error {
		if calls++; calls > 1 {
			<-ctx.Done()
		}
		if err := incrementElsewhere(t, key); err != nil {
			return err
		}
		js.Status.Progress = 7
		return nil
	})
	var conflict *update.ConflictError
	if !errors.As(err, &conflict) || conflict.Attempts != 1 || !apierrors.IsConflict(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a *ConflictError after 1 attempt matching context.DeadlineExceeded", err)
	}
	live := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, live); err != nil {
		t.Fatal(err)
	}
	if live.Status.Progress == 7 {
		t.Error("the timed-out Update's change was stored")
	}
}
