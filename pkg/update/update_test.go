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
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	writers   = 16
	perWriter = 100
)

// increment is the updateAction of the concurrency tests.
var increment = testenv.Increment

func counter(t *testing.T, key client.ObjectKey) int {
	t.Helper()
	js := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, js); err != nil {
		t.Fatal(err)
	}
	n, err := testenv.Counter(js)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// incrementElsewhere is another writer's increment, made directly: called
// from inside an action, it makes that action's write conflict.
func incrementElsewhere(t *testing.T, key client.ObjectKey) error {
	other := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, other); err != nil {
		return err
	}
	if err := increment(other); err != nil {
		return err
	}
	return env.Client.Status().Update(t.Context(), other)
}

func newJobState(t *testing.T) client.ObjectKey {
	t.Helper()
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "job"}}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(js)
}

func newUpdater(t *testing.T, opts update.Options) *update.Updater[*jobstatev1alpha1.JobState] {
	t.Helper()
	u, err := update.New[*jobstatev1alpha1.JobState](env.Client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// runWriters runs writers × perWriter calls of write and returns how many
// failed, with the first error.
func runWriters(write func(w int) error) (int64, error) {
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range perWriter {
				if err := write(w); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	return failed.Load(), firstErr
}

// TestConcurrentIncrementsAreNotLost is invariant 1: 16 writers × 100
// increments through Update on one JobState leave exactly 1600, and no call
// fails — both through one shared Updater (group commit) and with one
// Updater per writer, as 16 processes would (every race is a real 409).
func TestConcurrentIncrementsAreNotLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shared bool
	}{
		{name: "one Updater per writer", shared: false},
		{name: "shared Updater", shared: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newJobState(t)
			updaters := make([]*update.Updater[*jobstatev1alpha1.JobState], writers)
			for w := range updaters {
				if tc.shared && w > 0 {
					updaters[w] = updaters[0]
					continue
				}
				// 16 independent writers on one object take turns: give
				// each Update time to win one.
				updaters[w] = newUpdater(t, update.Options{Status: true, Timeout: time.Minute})
			}
			objs := make([]*jobstatev1alpha1.JobState, writers)
			for w := range objs {
				objs[w] = &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			}

			failed, err := runWriters(func(w int) error {
				// Carry the object between calls, as a worker would.
				return updaters[w].Update(t.Context(), objs[w], increment)
			})

			if failed != 0 {
				t.Errorf("%d of %d Updates failed; first: %v", failed, writers*perWriter, err)
			}
			if got, want := counter(t, key), writers*perWriter; got != want {
				t.Errorf("counter = %d, want exactly %d (%d updates lost)", got, want, want-got)
			}
		})
	}
}

// TestNaiveIncrementsLoseUpdates is the broken variant of the test above, in
// the same setup: read, increment, write *without* the resourceVersion
// precondition. It must lose updates — proof that the counter check can
// fail.
func TestNaiveIncrementsLoseUpdates(t *testing.T) {
	key := newJobState(t)
	failed, err := runWriters(func(int) error {
		js := &jobstatev1alpha1.JobState{}
		if err := env.Client.Get(t.Context(), key, js); err != nil {
			return err
		}
		base := js.DeepCopy()
		if err := increment(js); err != nil {
			return err
		}
		// A merge patch without the optimistic lock: last write wins.
		return env.Client.Status().Patch(t.Context(), js, client.MergeFrom(base))
	})
	if failed != 0 {
		t.Fatalf("%d naive writes failed; first: %v", failed, err)
	}
	got := counter(t, key)
	if got >= writers*perWriter {
		t.Fatalf("counter = %d: the naive variant lost no update, so the concurrency test proves nothing", got)
	}
	t.Logf("naive variant: counter = %d of %d, %d updates lost", got, writers*perWriter, writers*perWriter-got)
}

func TestNoOpWritesNothing(t *testing.T) {
	key := newJobState(t)
	js := &jobstatev1alpha1.JobState{}
	js.Namespace, js.Name = key.Namespace, key.Name
	u := newUpdater(t, update.Options{Status: true})
	if err := u.Update(t.Context(), js, increment); err != nil {
		t.Fatal(err)
	}
	rv := js.ResourceVersion
	calls := 0
	if err := u.Update(t.Context(), js, func(*jobstatev1alpha1.JobState) error { calls++; return nil }); err != nil {
		t.Fatal(err)
	}
	live := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, live); err != nil {
		t.Fatal(err)
	}
	if live.ResourceVersion != rv {
		t.Errorf("no-op Update wrote: resourceVersion %s -> %s", rv, live.ResourceVersion)
	}
	// A no-op on a carried copy is confirmed on a live read: two calls.
	if calls != 2 {
		t.Errorf("action called %d times, want 2 (carried copy, then live)", calls)
	}
}

func TestActionErrorIsReturnedUnchangedAndNothingWritten(t *testing.T) {
	key := newJobState(t)
	live := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, live); err != nil {
		t.Fatal(err)
	}
	errRefused := errors.New("refused by the action")
	js := &jobstatev1alpha1.JobState{}
	js.Namespace, js.Name = key.Namespace, key.Name
	err := newUpdater(t, update.Options{Status: true}).Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error {
		js.Status.Progress = 50
		return errRefused
	})
	if err != errRefused {
		t.Fatalf("err = %v, want the action's own error value", err)
	}
	after := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != live.ResourceVersion || after.Status.Progress != 0 {
		t.Errorf("a failed action wrote: rv %s -> %s, progress %d", live.ResourceVersion, after.ResourceVersion, after.Status.Progress)
	}
}

// TestExhaustedRetriesReturnConflictError: an action that makes every write
// conflict (another writer changes the object each time) runs out of
// attempts with a *ConflictError that apierrors.IsConflict recognizes.
func TestExhaustedRetriesReturnConflictError(t *testing.T) {
	key := newJobState(t)
	js := &jobstatev1alpha1.JobState{}
	js.Namespace, js.Name = key.Namespace, key.Name
	u := newUpdater(t, update.Options{Status: true, MaxAttempts: 3})
	calls := 0
	err := u.Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error {
		calls++
		if err := incrementElsewhere(t, key); err != nil {
			return err
		}
		js.Status.Progress = 7
		return nil
	})
	var conflict *update.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want *update.ConflictError", err)
	}
	if !apierrors.IsConflict(err) {
		t.Errorf("apierrors.IsConflict(%v) = false", err)
	}
	if conflict.Attempts != 3 || conflict.Key != key || conflict.Kind != "JobState" {
		t.Errorf("ConflictError = %+v, want 3 attempts on JobState %s", conflict, key)
	}
	if calls != 3 {
		t.Errorf("action called %d times, want 3", calls)
	}
	if got := counter(t, key); got != 3 {
		t.Errorf("counter = %d, want the other writer's 3 increments", got)
	}
}

// TestCreateIfMissingUnderCreateRace: 8 writers, each with its own Updater,
// increment a JobState that does not exist yet. Exactly one create wins; the
// others hit AlreadyExists, re-read and apply their increment to the winner's
// object.
func TestCreateIfMissingUnderCreateRace(t *testing.T) {
	ns := env.Namespace(t)
	const racers = 8
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	start := make(chan struct{})
	for range racers {
		u := newUpdater(t, update.Options{Status: true, CreateIfMissing: true})
		wg.Go(func() {
			<-start
			js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "created"}}
			errs <- u.Update(t.Context(), js, increment)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	if got := counter(t, client.ObjectKey{Namespace: ns, Name: "created"}); got != racers {
		t.Errorf("counter = %d, want %d", got, racers)
	}
}

// TestCreateIfMissingMainResource: without Status the action's whole object
// is created (a ConfigMap, any client.Object works).
func TestCreateIfMissingMainResource(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "cm"}}
	for i := range 3 {
		err := update.Update(t.Context(), env.Client, cm, func(cm *corev1.ConfigMap) error {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			n, _ := strconv.Atoi(cm.Data["n"])
			cm.Data["n"] = strconv.Itoa(n + 1)
			return nil
		}, update.Options{CreateIfMissing: true})
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if cm.Data["n"] != "3" {
		t.Errorf("data.n = %q, want 3", cm.Data["n"])
	}
}

func TestMissingObjectIsNotFound(t *testing.T) {
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "absent"}}
	err := newUpdater(t, update.Options{Status: true}).Update(t.Context(), js, increment)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("err = %v, want NotFound", err)
	}
}

// TestStaleCarriedObjectIsReReadLive: an object carried from an earlier
// read whose resourceVersion is outdated conflicts once, is re-read and the
// action lands on the current state.
func TestStaleCarriedObjectIsReReadLive(t *testing.T) {
	key := newJobState(t)
	stale := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, stale); err != nil {
		t.Fatal(err)
	}
	for range 2 { // someone else increments twice
		if err := update.Update(t.Context(), env.Client, &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}, increment, update.Options{Status: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := newUpdater(t, update.Options{Status: true}).Update(t.Context(), stale, increment); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, key); got != 3 {
		t.Errorf("counter = %d, want 3", got)
	}
}

// TestInvalidActionInABatchFailsOnlyItsCaller: the API server rejects a
// write that one action made invalid (progress 150); through a shared
// Updater the other callers' increments still land.
func TestInvalidActionInABatchFailsOnlyItsCaller(t *testing.T) {
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true})
	const callers = 12
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			errs[i] = u.Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error {
				if i == 5 {
					js.Status.Progress = 150
					return nil
				}
				return increment(js)
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 5 && !apierrors.IsInvalid(err) {
			t.Errorf("invalid caller: err = %v, want Invalid", err)
		}
		if i != 5 && err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if got := counter(t, key); got != callers-1 {
		t.Errorf("counter = %d, want %d", got, callers-1)
	}
}

// TestActionErrorFromARefusedBatchIsNotFinal: an action that fails only
// because of an earlier action of its batch (one the API server then
// refused) must not fail its caller: nothing it saw was ever stored.
func TestActionErrorFromARefusedBatchIsNotFinal(t *testing.T) {
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true})
	const callers = 12
	var wg sync.WaitGroup
	errs := make([]error, callers)
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			errs[i] = u.Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error {
				if i%4 == 1 {
					js.Status.Progress = 150 // the API server refuses this
					return nil
				}
				if js.Status.Progress == 150 {
					return errors.New("saw a change that was never stored")
				}
				return increment(js)
			})
		})
	}
	close(start)
	wg.Wait()
	invalid := 0
	for i, err := range errs {
		switch {
		case i%4 == 1 && apierrors.IsInvalid(err):
			invalid++
		case i%4 == 1:
			t.Errorf("invalid caller %d: err = %v, want Invalid", i, err)
		case err != nil:
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if got, want := counter(t, key), callers-invalid; got != want {
		t.Errorf("counter = %d, want %d", got, want)
	}
}

func TestTimeoutBoundsTheUpdate(t *testing.T) {
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true, Timeout: 50 * time.Millisecond})
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	err := u.Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error {
		time.Sleep(60 * time.Millisecond)
		return increment(js)
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if got := counter(t, key); got != 0 {
		t.Errorf("counter = %d after a timed-out Update, want 0", got)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts update.Options
	}{
		{"negative attempts", update.Options{MaxAttempts: -1}},
		{"negative timeout", update.Options{Timeout: -time.Second}},
		{"backoff cap below duration", update.Options{Backoff: wait.Backoff{Duration: time.Second, Factor: 2, Cap: time.Millisecond}}},
		{"negative backoff cap", update.Options{Backoff: wait.Backoff{Duration: time.Second, Cap: -time.Second}}},
		{"negative backoff steps", update.Options{Backoff: wait.Backoff{Duration: time.Second, Factor: 2, Steps: -1}}},
		{"shrinking backoff", update.Options{Backoff: wait.Backoff{Duration: time.Second, Factor: 0.5, Steps: 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := update.New[*jobstatev1alpha1.JobState](env.Client, tc.opts); err == nil {
				t.Errorf("New(%+v) accepted invalid options", tc.opts)
			}
		})
	}
}

// TestActionFailingOnAStaleCopyIsAppliedLive: an action that refuses the
// carried (stale) state but accepts the live one succeeds — a carried copy
// never decides a failure.
func TestActionFailingOnAStaleCopyIsAppliedLive(t *testing.T) {
	key := newJobState(t)
	setProgress := func(p int32) {
		t.Helper()
		js := &jobstatev1alpha1.JobState{}
		if err := env.Client.Get(t.Context(), key, js); err != nil {
			t.Fatal(err)
		}
		js.Status.Progress = p
		if err := env.Client.Status().Update(t.Context(), js); err != nil {
			t.Fatal(err)
		}
	}
	setProgress(50)
	stale := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, stale); err != nil {
		t.Fatal(err)
	}
	setProgress(0) // the live object now allows the action
	errBusy := errors.New("progress must be 0")
	err := newUpdater(t, update.Options{Status: true}).Update(t.Context(), stale, func(js *jobstatev1alpha1.JobState) error {
		if js.Status.Progress != 0 {
			return errBusy
		}
		js.Status.Progress = 10
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v, want success on the live object", err)
	}
	if stale.Status.Progress != 10 {
		t.Errorf("progress = %d, want 10", stale.Status.Progress)
	}
}

// TestUncertainBatchWriteIsNotReapplied: when a combined write fails in a
// way that may have stored it (a server timeout after the write), the
// batch's actions are not applied again one by one — that could apply them
// twice. The interceptor stores the second write and then reports a timeout.
func TestUncertainBatchWriteIsNotReapplied(t *testing.T) {
	key := newJobState(t)
	var writes atomic.Int32
	c := interceptor.NewClient(env.Client, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if err := c.SubResource(sub).Update(ctx, obj, opts...); err != nil {
				return err
			}
			if writes.Add(1) == 2 {
				return apierrors.NewTimeoutError("stored, but the response was lost", 1)
			}
			return nil
		},
	})
	u, err := update.New[*jobstatev1alpha1.JobState](c, update.Options{Status: true})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	errs := make([]error, 4)
	var wg sync.WaitGroup
	obj := func() *jobstatev1alpha1.JobState {
		return &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	wg.Go(func() { // the leader of the first batch waits for the others to queue
		errs[0] = u.Update(t.Context(), obj(), func(js *jobstatev1alpha1.JobState) error {
			<-release
			return increment(js)
		})
	})
	time.Sleep(100 * time.Millisecond)
	for i := 1; i < 4; i++ {
		wg.Go(func() { errs[i] = u.Update(t.Context(), obj(), increment) })
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if errs[0] != nil {
		t.Errorf("first batch: %v", errs[0])
	}
	for i := 1; i < 4; i++ {
		if !apierrors.IsTimeout(errs[i]) {
			t.Errorf("request %d: err = %v, want the batch's timeout", i, errs[i])
		}
	}
	if got := counter(t, key); got != 4 {
		t.Errorf("counter = %d, want 4: each action applied exactly once", got)
	}
}

// TestPanickingActionDoesNotBlockTheObject: an action that panics fails,
// and later Updates of the same object still go through.
func TestPanickingActionDoesNotBlockTheObject(t *testing.T) {
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true})
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		_ = u.Update(t.Context(), js, func(*jobstatev1alpha1.JobState) error { panic("boom") })
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := u.Update(ctx, js, increment); err != nil {
		t.Fatalf("Update after a panic: %v", err)
	}
}

// TestCancelledWaiterLeavesTheQueue: an Update waiting behind a slow write
// returns its context's error without waiting for that write, and its action
// is never applied.
func TestCancelledWaiterLeavesTheQueue(t *testing.T) {
	key := newJobState(t)
	u := newUpdater(t, update.Options{Status: true})
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		if err := u.Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error { <-release; return increment(js) }); err != nil {
			t.Errorf("slow Update: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	start := time.Now()
	err := u.Update(ctx, js, func(js *jobstatev1alpha1.JobState) error { js.Status.Progress = 99; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("waiting Update: err = %v after %s, want DeadlineExceeded promptly", err, time.Since(start))
	}
	close(release)
	wg.Wait()
	live := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, live); err != nil {
		t.Fatal(err)
	}
	if live.Status.Progress == 99 {
		t.Error("the cancelled Update's action was applied")
	}
}

// TestMaxAttemptsJustPastTheGrowthPhase: MaxAttempts one past
// Backoff.Steps still ends in a *ConflictError counting every attempt.
func TestMaxAttemptsJustPastTheGrowthPhase(t *testing.T) {
	key := newJobState(t)
	b := update.DefaultBackoff
	b.Steps = 3
	u := newUpdater(t, update.Options{Status: true, Backoff: b, MaxAttempts: 4})
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	err := u.Update(t.Context(), js, func(js *jobstatev1alpha1.JobState) error {
		if err := incrementElsewhere(t, key); err != nil {
			return err
		}
		return increment(js)
	})
	var conflict *update.ConflictError
	if !errors.As(err, &conflict) || conflict.Attempts != 4 {
		t.Fatalf("err = %v, want *ConflictError after 4 attempts", err)
	}
}

// TestCreateIfMissingNoOpThenUpdate: a no-op on a missing object creates
// nothing, and a later Update through the same Updater still creates it.
func TestCreateIfMissingNoOpThenUpdate(t *testing.T) {
	ns := env.Namespace(t)
	u := newUpdater(t, update.Options{Status: true, CreateIfMissing: true})
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"}}
	if err := u.Update(t.Context(), js, func(*jobstatev1alpha1.JobState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(js), &jobstatev1alpha1.JobState{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after a no-op: Get = %v, want NotFound", err)
	}
	js = &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"}}
	if err := u.Update(t.Context(), js, increment); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, client.ObjectKeyFromObject(js)); got != 1 {
		t.Errorf("counter = %d, want 1", got)
	}
}

// TestCreateWithRefusedStatusLeavesNothing: the object is created, its
// status is refused (progress 150): the Update fails and the created object
// is taken back.
func TestCreateWithRefusedStatusLeavesNothing(t *testing.T) {
	ns := env.Namespace(t)
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "refused"}}
	err := update.Update(t.Context(), env.Client, js, func(js *jobstatev1alpha1.JobState) error {
		js.Status.Progress = 150
		return nil
	}, update.Options{Status: true, CreateIfMissing: true})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("err = %v, want Invalid", err)
	}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(js), &jobstatev1alpha1.JobState{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a refused status: Get = %v, want NotFound", err)
	}
}

// TestOnWriteCountsEveryWrite: OnWrite sees every write with the updates it
// carried. Through a shared Updater the stored writes carry exactly the
// 1600 increments, in fewer writes (group commit).
func TestOnWriteCountsEveryWrite(t *testing.T) {
	key := newJobState(t)
	var mu sync.Mutex
	var writes, carried, failedWrites int
	u := newUpdater(t, update.Options{Status: true, Timeout: time.Minute, OnWrite: func(n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failedWrites++
			return
		}
		writes++
		carried += n
	}})
	failed, err := runWriters(func(int) error {
		obj := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		return u.Update(t.Context(), obj, increment)
	})
	if failed != 0 {
		t.Fatalf("%d Updates failed; first: %v", failed, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if carried != writers*perWriter || writes >= carried || counter(t, key) != carried {
		t.Fatalf("OnWrite saw %d stored writes carrying %d updates (%d failed writes); counter %d; want %d updates in fewer writes",
			writes, carried, failedWrites, counter(t, key), writers*perWriter)
	}
	t.Logf("%d updates in %d writes (%d refused)", carried, writes, failedWrites)
}
