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

package update

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// commitBatch commits q's batch under a context that lasts while any of
// its callers waits, and gives each request still waiting its outcome.
func (u *Updater[T]) commitBatch(q *queue[T]) {
	ctx, cancel := batchContext(q.batch)
	defer cancel()
	defer q.losing(0, nil)
	stored, err := u.commitOnce(ctx, q)
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrOutcomeUnknown) {
		// Every caller's context ended, and nothing was written for them
		// since: each gets what it would have got leaving on its own.
		u.settleEach(q, func(r *request[T]) error { return u.leftErr(q, r) })
		return
	}
	if err == nil || len(q.batch) == 1 || !rejected(err) {
		u.settle(q, stored, err)
		return
	}
	// The API server definitely refused the combined write (for example
	// one action made the object invalid): commit each request alone, so
	// only the offender fails. Nothing of the batch was stored, so nothing
	// is applied twice. (A request whose action failed on the combined copy
	// is committed alone too: that decision saw changes never stored.)
	for _, r := range q.batch {
		q.batch = []*request[T]{r}
		stored, err := u.commitOnce(r.ctx, q)
		u.settle(q, stored, err)
	}
}

// rejected reports whether err is the API server's refusal of a write
// that one action of a batch may have caused.
func rejected(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsNotAcceptable(err) || apierrors.IsUnsupportedMediaType(err)
}

// Refused reports whether err is a response of the API server saying that
// it did not perform the write (a 4xx status). Anything else — a timeout, a
// 5xx, a dropped connection, a context that ended in flight — leaves the
// write's outcome unknown.
func Refused(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout
}

// commitOnce is the read-apply-write loop. The steps, and what each protects:
//
//  1. Start from the last state the API server returned (carried); if there
//     is none, read live — never from a cache.
//  2. Apply every action, in arrival order, to a copy; an action that fails
//     is rolled back so its caller's changes never reach the write.
//  3. A failing action or a no-op on a carried copy is not trusted: re-read
//     live and go back to 2. On a live copy, a no-op writes nothing.
//  4. Write with the resourceVersion precondition (create, if missing and
//     allowed). The API server rejects it if anyone wrote since step 1.
//     Requests whose callers left (their context ended) before the write
//     are left out of it.
//  5. On Conflict or a lost create race, forget the state, sleep the next
//     jittered backoff on the Updater's clock and retry from 1, until the
//     attempts (or the context) run out.
//
// It returns what the API server stored (or, after a no-op, the state the
// batch left unchanged) and the batch's error. A write that failed without
// a refusal is an *UnknownOutcomeError, and is not retried.
func (u *Updater[T]) commitOnce(ctx context.Context, q *queue[T]) (stored T, err error) {
	q.losing(0, nil)
	delay := u.backoff.DelayFunc()
	var conflict error // the last one, reported when attempts or time run out
	attempt := 1
	for ; attempt <= u.opts.MaxAttempts; attempt++ {
		if attempt > 1 {
			u.sleep(ctx, delay()) // Step 5's backoff.
		}
		if !q.remaining() {
			return stored, nil // every caller left
		}
		if attempt > 1 {
			u.metrics.Retries.Inc()
		}
		stored, err = u.try(ctx, q)
		if err == nil || !u.retriable(err) {
			break
		}
		conflict = err
		q.losing(attempt, err)
	}
	// A losing streak ended by the attempts or the context is a conflict;
	// attempt is then one past the last write tried.
	if err != nil && conflict != nil && (attempt > u.opts.MaxAttempts || err == ctx.Err()) {
		err = &ConflictError{Kind: u.kind, Key: q.key, Attempts: attempt - 1, Err: conflict}
	}
	return stored, err
}

// try is one attempt, steps 1 to 4. An error that is ctx.Err() itself
// means the context ended before the attempt wrote anything.
func (u *Updater[T]) try(ctx context.Context, q *queue[T]) (T, error) {
	for {
		cur, work, changed, err := u.prepare(ctx, q)
		if err != nil || !changed {
			return cur, err
		}
		n, ok := q.enter()
		if !ok {
			// A caller left after its action was applied: prepare the
			// write again without it.
			if !q.remaining() {
				return cur, nil
			}
			continue
		}
		// Step 4.
		written, err := u.write(ctx, work, q.exists)
		u.observeWrite(n, err)
		if err != nil {
			// Step 5: any failed write leaves the object's state unknown.
			q.known = false
			if u.retriable(err) || Refused(err) {
				q.exit() // nothing was stored: the requests are back in play
				return written, err
			}
			err = &UnknownOutcomeError{Kind: u.kind, Key: q.key, Err: err}
			if ctx.Err() != nil {
				// The write was cut off because every caller's context
				// ended: each learns its own.
				u.settleEach(q, func(r *request[T]) error {
					return &UnknownOutcomeError{Kind: u.kind, Key: q.key, Err: r.ctx.Err()}
				})
				return written, err
			}
		} else {
			q.latest, q.exists = written, true
		}
		// The outcome is known as the requests leave the write, so that no
		// caller leaving now is told that nothing was applied.
		u.settle(q, written, err)
		return written, err
	}
}

// prepare is steps 1 to 3: it returns the state the batch was applied to,
// the result, and whether the result must be written.
func (u *Updater[T]) prepare(ctx context.Context, q *queue[T]) (cur, work T, changed bool, err error) {
	if err := ctx.Err(); err != nil {
		return cur, work, false, err
	}
	// Step 1.
	fresh := !q.known
	if fresh {
		latest, found, err := u.read(ctx, q.key)
		if err != nil {
			return cur, work, false, err
		}
		q.latest, q.known, q.exists = latest, true, found
	}
	cur = q.latest
	// Step 2.
	work, applied, failed := u.apply(q, cur)
	noop := applied == 0 || equality.Semantic.DeepEqual(cur, work)
	// Step 3.
	if !fresh && (failed > 0 || noop) {
		q.known = false
		return u.prepare(ctx, q) // live this time, so once at most
	}
	if noop && !q.exists {
		q.known = false // nothing was created: do not carry the empty object
	}
	return cur, work, !noop, nil
}

// apply runs the batch's actions on a copy of cur, skipping the requests
// whose callers left. It counts the actions applied and those that failed;
// a failed action's changes are rolled back, and its error kept for its
// caller.
func (u *Updater[T]) apply(q *queue[T], cur T) (work T, applied, failed int) {
	work = u.copyOf(cur)
	for _, r := range q.batch {
		var ok bool
		work, ok = u.applyOne(q, r, work, len(q.batch) > 1)
		switch {
		case ok:
			applied++
		case r.result != nil:
			failed++
		}
	}
	return work, applied, failed
}

// applyOne runs r's action on work, unless r's caller has left. It returns
// the object to go on with (work as it was before, if the action failed
// and rollback is set) and whether the action succeeded. An action that
// panics is finished at once with its panic, for its own caller.
func (u *Updater[T]) applyOne(q *queue[T], r *request[T], work T, rollback bool) (out T, ok bool) {
	r.running.Lock()
	defer r.running.Unlock()
	r.result = nil // from an earlier application to a stale copy
	if r.state.Load() == finished {
		return work, false
	}
	before := work
	if rollback {
		before = u.copyOf(work)
	}
	panicked := true
	defer func() {
		if p := recover(); panicked {
			q.mu.Lock()
			if r.state.Load() != finished {
				r.panicked = p
				r.finish(fmt.Errorf("updating %s %s: the update action panicked: %v", u.kind, q.key, p))
			}
			q.mu.Unlock()
			out, ok = before, false
		}
	}()
	err := r.action(work)
	panicked = false
	if err != nil {
		r.result = err
		return before, false
	}
	return work, true
}

// settle gives every request of q's batch still waiting its outcome: err
// for all of them, or its action's own error, or the object as stored.
// An action's own error is no verdict when the write failed: it was decided
// on a copy, with the batch's other changes, never stored.
func (u *Updater[T]) settle(q *queue[T], stored T, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.batch {
		switch {
		case r.state.Load() == finished:
		case err != nil:
			r.finish(err)
		case r.result != nil:
			r.finish(r.result)
		default:
			stored.DeepCopyInto(r.obj)
			r.finish(nil)
		}
	}
}

// settleEach finishes every request of q's batch still waiting with the
// error errOf gives it.
func (u *Updater[T]) settleEach(q *queue[T], errOf func(*request[T]) error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.batch {
		if r.state.Load() != finished {
			r.finish(errOf(r))
		}
	}
}

// observeWrite records a write of n updates and its error: the batch size
// of a stored write, or a conflict; then calls Options.OnWrite.
func (u *Updater[T]) observeWrite(n int, err error) {
	switch {
	case err == nil:
		u.metrics.Batch.Observe(float64(n))
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		u.metrics.Conflicts.Inc()
	}
	if u.opts.OnWrite != nil {
		u.opts.OnWrite(n, err)
	}
}

// sleep waits d on the Updater's clock, or until ctx ends.
func (u *Updater[T]) sleep(ctx context.Context, d time.Duration) {
	t := u.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C():
	}
}

// retriable: a conflict, a lost create race, or (when creating is allowed)
// the object vanishing between read and write.
func (u *Updater[T]) retriable(err error) bool {
	var final *ConflictError
	if errors.As(err, &final) {
		return false
	}
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) ||
		(u.opts.CreateIfMissing && apierrors.IsNotFound(err))
}
