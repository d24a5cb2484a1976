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

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

const (
	// jobWorkers run job cycles side by side, each as its own identity.
	jobWorkers = 3
	// jobBeats heartbeats are made per attempt, each storing
	// status.data.beat = its number.
	jobBeats = 3
	// abandonEvery: every so many cycles, the first attempt is abandoned.
	abandonEvery = 10
	// jobTTL is spec.ttlSecondsAfterFinished: the manager deletes a
	// finished job this long after it finished.
	jobTTL = 2
	// abandonedTimeout is spec.heartbeatTimeoutSeconds of a job whose
	// first attempt is abandoned; jobTimeout that of the others, far above
	// the time between their heartbeats.
	abandonedTimeout, jobTimeout = 1, 30
	// awaitTimeout bounds every wait for the manager.
	awaitTimeout = time.Minute
	// collectGrace is how long after jobTTL the end of the run waits for
	// the manager to delete the finished jobs.
	collectGrace = 30 * time.Second
	// jobLabel marks the cycles' JobStates.
	jobLabel = "soak.jobstate.dev/job"
)

// jobLoad runs job cycles: a fresh JobState, initialized by the manager,
// claimed, heartbeated and succeeded with pkg/jobstate, checked, and then
// deleted by the manager after its TTL. The ledger counts jobs: acked is a
// Succeed acknowledged, stored a job found Succeeded with that attempt and
// its last heartbeat's data.
type jobLoad struct {
	s    *soak
	jobs []*jobstate.Client // one per worker

	mu  sync.Mutex
	row ledgerRow
}

func (l *jobLoad) setup(context.Context) error {
	for g := range jobWorkers {
		jobs, err := jobstate.New(l.s.c, jobstate.Options{Identity: fmt.Sprintf("soak-worker-%d", g)})
		if err != nil {
			return err
		}
		l.jobs = append(l.jobs, jobs)
	}
	return nil
}

func (l *jobLoad) start(wg *sync.WaitGroup) {
	for g, jobs := range l.jobs {
		wg.Go(func() {
			for n := 0; l.s.running(); n++ {
				l.cycle(jobs, fmt.Sprintf("job-%d-%d", g, n), n%abandonEvery == abandonEvery-1)
				l.s.pause()
			}
		})
	}
}

// cycle takes one fresh job from creation to Succeeded and checks what was
// stored. A cycle that cannot finish cancels its job, so that the manager
// still deletes it.
func (l *jobLoad) cycle(jobs *jobstate.Client, name string, abandon bool) {
	key := client.ObjectKey{Namespace: l.s.ns, Name: name}
	a, ok := l.begin(jobs, key, abandon)
	if ok {
		ok = l.finish(jobs, a)
	}
	if !ok {
		_, _ = l.s.call(l.s.ctx, "cancel", callTimeout, func(ctx context.Context) error {
			err := jobs.Cancel(ctx, key, "soak: the cycle could not finish")
			if errors.Is(err, lifecycle.ErrIllegalTransition) || apierrors.IsNotFound(err) {
				return nil // finished already, or never created
			}
			return err
		})
	}
}

// begin creates the job, waits for the manager to initialize it and
// claims it; for an abandoned job, the second attempt.
func (l *jobLoad) begin(jobs *jobstate.Client, key client.ObjectKey, abandon bool) (jobstate.Attempt, bool) {
	timeout := int32(jobTimeout)
	if abandon {
		timeout = abandonedTimeout
	}
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{jobLabel: "true"}},
		Spec: jobstatev1alpha1.JobStateSpec{
			TTLSecondsAfterFinished: ptr.To[int32](jobTTL), HeartbeatTimeoutSeconds: ptr.To(timeout),
		},
	}
	if o, _ := l.s.call(l.s.ctx, "create", callTimeout, func(ctx context.Context) error { return l.s.c.Create(ctx, js) }); o != stored {
		return jobstate.Attempt{}, false
	}
	created := time.Now()
	if _, ok := l.await(key, "init", created, func(js *jobstatev1alpha1.JobState) bool { return js.Status.Phase == jobstatev1alpha1.PhasePending }); !ok {
		return jobstate.Attempt{}, false
	}
	a, ok := l.claim(jobs, key)
	if !ok || !abandon {
		return a, ok
	}
	return l.reclaim(jobs, a)
}

// claim claims the job's next attempt.
func (l *jobLoad) claim(jobs *jobstate.Client, key client.ObjectKey) (jobstate.Attempt, bool) {
	var a jobstate.Attempt
	o, _ := l.s.call(l.s.ctx, "claim", callTimeout, func(ctx context.Context) error {
		var err error
		a, err = jobs.Claim(ctx, key)
		return err
	})
	return a, o == stored
}

// reclaim abandons attempt a: the manager must declare it lost after the
// heartbeat timeout ("lost": from the claim to the job back in Pending);
// then the timeout is raised, the next attempt claimed once the retry
// backoff has passed, and a heartbeat of a must then be fenced — one that
// is stored is phantom.
func (l *jobLoad) reclaim(jobs *jobstate.Client, a jobstate.Attempt) (jobstate.Attempt, bool) {
	js, ok := l.await(a.Key, "lost", time.Now(), func(js *jobstatev1alpha1.JobState) bool {
		return js.Status.Phase == jobstatev1alpha1.PhasePending && js.Status.Attempt == a.Attempt
	})
	if !ok || !l.retime(a.Key) {
		return jobstate.Attempt{}, false
	}
	if r := js.Status.RetryAfter; r != nil {
		// The backoff is stored in whole seconds, rounded down: waiting for
		// it is enough.
		sleepCtx(l.s.ctx, time.Until(r.Time))
	}
	next, ok := l.claim(jobs, a.Key)
	if !ok {
		return jobstate.Attempt{}, false
	}
	o, _ := l.s.call(l.s.ctx, "stale-beat", callTimeout, func(ctx context.Context) error {
		return jobs.Heartbeat(ctx, a, 50, map[string]any{"beat": -1})
	})
	if o == stored {
		l.note(func(r *ledgerRow) {
			r.phantom++
			r.notef("%s: a heartbeat of lost attempt %d was stored after attempt %d was claimed", a.Key.Name, a.Attempt, next.Attempt)
		})
	}
	return next, true
}

// retime gives the job the heartbeat timeout of the others, now that its
// abandoned attempt was declared lost: the next attempt must not be lost
// to a slow heartbeat.
func (l *jobLoad) retime(key client.ObjectKey) bool {
	patch := []byte(fmt.Sprintf(`{"spec":{"heartbeatTimeoutSeconds":%d}}`, jobTimeout))
	o, _ := l.s.call(l.s.ctx, "retime", callTimeout, func(ctx context.Context) error {
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		return l.s.c.Patch(ctx, js, client.RawPatch(types.MergePatchType, patch))
	})
	return o == stored
}

// finish heartbeats attempt a jobBeats times, succeeds it and checks what
// was stored.
func (l *jobLoad) finish(jobs *jobstate.Client, a jobstate.Attempt) bool {
	for beat := 1; beat <= jobBeats; beat++ {
		o, _ := l.s.call(l.s.ctx, "beat", callTimeout, func(ctx context.Context) error {
			return jobs.Heartbeat(ctx, a, int32(100*beat/(jobBeats+1)), map[string]any{"beat": beat})
		})
		if o != stored {
			return false
		}
	}
	o, _ := l.s.call(l.s.ctx, "succeed", callTimeout, func(ctx context.Context) error { return jobs.Succeed(ctx, a, "") })
	l.note(func(r *ledgerRow) {
		switch o {
		case stored:
			r.acked++
		case unknown:
			r.unknown++
		case refused:
			r.refused++
		}
	})
	if o != stored {
		return false
	}
	l.check(a)
	return true
}

// check reads the job as stored after its Succeed was acknowledged.
func (l *jobLoad) check(a jobstate.Attempt) {
	js := &jobstatev1alpha1.JobState{}
	err := l.s.env.Client.Get(l.s.ctx, a.Key, js)
	l.note(func(r *ledgerRow) {
		switch {
		case apierrors.IsNotFound(err):
			r.stored++ // the manager deletes only finished jobs
		case err != nil:
			r.unverified++
		default:
			l.compare(r, a, js)
		}
	})
}

// compare checks a stored job against its acknowledged attempt. Call with
// l.mu held.
func (l *jobLoad) compare(r *ledgerRow, a jobstate.Attempt, js *jobstatev1alpha1.JobState) {
	s := js.Status
	data, _ := jobstate.Data(js)
	beat, _ := data["beat"].(float64)
	switch {
	case s.Attempt > a.Attempt:
		r.duplicated++
		r.notef("%s: attempt %d stored, %d claimed", js.Name, s.Attempt, a.Attempt)
	case s.Phase != jobstatev1alpha1.PhaseSucceeded || s.Attempt != a.Attempt || s.Holder != a.Holder || s.Progress != 100 || int(beat) != jobBeats:
		r.lost++
		r.notef("%s: stored phase %s attempt %d holder %s progress %d beat %v; acknowledged Succeeded, attempt %d by %s, beat %d",
			js.Name, s.Phase, s.Attempt, s.Holder, s.Progress, data["beat"], a.Attempt, a.Holder, jobBeats)
	default:
		r.stored++
	}
}

func (l *jobLoad) note(f func(r *ledgerRow)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.row)
}

// await polls the job until done reports true and records the time since
// from as kind: a latency of the manager's. A job that is gone, or not
// done within awaitTimeout, is an error of kind.
func (l *jobLoad) await(key client.ObjectKey, kind string, from time.Time, done func(*jobstatev1alpha1.JobState) bool) (*jobstatev1alpha1.JobState, bool) {
	js := &jobstatev1alpha1.JobState{}
	err := wait.PollUntilContextTimeout(l.s.ctx, 20*time.Millisecond, awaitTimeout, true, func(ctx context.Context) (bool, error) {
		if err := l.s.c.Get(ctx, key, js); err != nil {
			return false, err
		}
		return done(js), nil
	})
	o, errKind := classify(l.s.ctx, false, err)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		errKind = "manager-too-slow"
	}
	l.s.stats.record(kind, time.Since(from), o, errKind, err)
	return js, err == nil
}

func (l *jobLoad) progress() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.row.summary("jobs", l.row.acked)
}

// verify waits for the manager to delete every finished job (their TTL,
// plus collectGrace) and returns the ledger.
func (l *jobLoad) verify(ctx context.Context) ([]ledgerRow, []check) {
	var left int64
	_ = wait.PollUntilContextTimeout(ctx, time.Second, jobTTL*time.Second+collectGrace, true, func(ctx context.Context) (bool, error) {
		list := &jobstatev1alpha1.JobStateList{}
		if err := l.s.env.Client.List(ctx, list, client.InNamespace(l.s.ns), client.HasLabels{jobLabel}); err != nil {
			return false, nil
		}
		left = int64(len(list.Items))
		return left == 0, nil
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	row := l.row
	row.name = "job"
	return []ledgerRow{row}, []check{{
		name:  fmt.Sprintf("job JobStates the manager did not delete within their TTL + %s after the load", collectGrace),
		value: left, mustBeZero: true,
	}}
}

// sleepCtx sleeps d, less if ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
