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
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// commit applies the batch's actions and writes the result, retrying on
// conflict. Each request's err is set. It returns the error that failed the
// batch as a whole, if any, and whether a write whose outcome is unknown
// (neither stored nor definitely refused) was uncertain.
func (u *Updater[T]) commit(ctx context.Context, q *queue[T], batch []*request[T]) (uncertain bool, err error) {
	uncertain, err = u.commitOnce(ctx, q, batch)
	if err == nil || len(batch) == 1 || !rejected(err) {
		return uncertain, err
	}
	// The API server definitely refused the combined write (for example
	// one action made the object invalid): commit each request alone, so
	// only the offender fails. Nothing of the batch was stored, so nothing
	// is applied twice. (Every request carries the batch's error, also one
	// whose action failed on the combined copy: that decision saw changes
	// that were never stored.)
	for _, r := range batch {
		if r.err == err {
			r.final = false
			s, err := u.commitOnce(ctx, q, []*request[T]{r})
			r.err, uncertain = err, uncertain || s
		}
	}
	return uncertain, nil
}

// rejected reports whether err is the API server's definite refusal of a
// write — one that stored nothing — as opposed to a timeout or transport
// error whose write may have happened.
func rejected(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsNotAcceptable(err) || apierrors.IsUnsupportedMediaType(err)
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
//  5. On Conflict or a lost create race, forget the state, sleep the next
//     jittered backoff on the Updater's clock and retry from 1, until the
//     attempts (or the context) run out.
//
// It returns whether a write whose outcome is unknown was made, and the
// batch's error, which every request of the batch also carries.
func (u *Updater[T]) commitOnce(ctx context.Context, q *queue[T], batch []*request[T]) (uncertain bool, err error) {
	delay := u.backoff.DelayFunc()
	var stored T
	var conflict error // the last one, reported when attempts or time run out
	attempt := 1
	for ; attempt <= u.opts.MaxAttempts; attempt++ {
		if attempt > 1 {
			u.sleep(ctx, delay()) // Step 5's backoff.
		}
		var unknown bool
		stored, unknown, err = u.try(ctx, q, batch)
		uncertain = uncertain || unknown
		if err == nil || !u.retriable(err) {
			break
		}
		conflict = err
	}
	// A losing streak ended by the attempts or the context is a conflict;
	// attempt is then one past the last write tried.
	if err != nil && conflict != nil && (attempt > u.opts.MaxAttempts || err == ctx.Err()) {
		err = &ConflictError{Kind: u.kind, Key: q.key, Attempts: attempt - 1, Err: conflict}
	}
	settle(batch, stored, err)
	return uncertain, err
}

// try is one attempt, steps 1 to 4. It returns what the API server stored
// (or, after a no-op, the state the batch left unchanged), and whether a
// failed write may have been stored anyway. An error that is ctx.Err()
// itself means the context ended before the attempt wrote anything.
func (u *Updater[T]) try(ctx context.Context, q *queue[T], batch []*request[T]) (stored T, uncertain bool, err error) {
	cur, work, changed, err := u.prepare(ctx, q, batch)
	if err != nil || !changed {
		return cur, false, err
	}
	// Step 4.
	written, err := u.write(ctx, work, q.exists)
	if err != nil {
		// Step 5: any failed write leaves the object's state unknown.
		q.known = false
		return written, !u.retriable(err) && !rejected(err), err
	}
	q.latest, q.exists = written, true
	return written, false, nil
}

// prepare is steps 1 to 3: it returns the state the batch was applied to,
// the result, and whether the result must be written.
func (u *Updater[T]) prepare(ctx context.Context, q *queue[T], batch []*request[T]) (cur, work T, changed bool, err error) {
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
	work, applied := u.apply(cur, batch)
	noop := len(applied) == 0 || equality.Semantic.DeepEqual(cur, work)
	// Step 3.
	if !fresh && (len(applied) < len(batch) || noop) {
		q.known = false
		return u.prepare(ctx, q, batch) // live this time, so once at most
	}
	if noop && !q.exists {
		q.known = false // nothing was created: do not carry the empty object
	}
	return cur, work, !noop, nil
}

// settle records the batch's outcome in every request: the object as
// stored for the requests whose action succeeded, or err for all of them.
// An action's own error is no verdict when the write failed: it was decided
// on a copy, with the batch's other changes, never stored.
func settle[T Object[T]](batch []*request[T], stored T, err error) {
	for _, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case r.err == nil:
			stored.DeepCopyInto(r.obj)
		}
		r.final = true
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

// apply runs the batch's actions on a copy of cur. Requests whose action
// failed get its error, and their changes are rolled back.
func (u *Updater[T]) apply(cur T, batch []*request[T]) (T, []*request[T]) {
	work := u.copyOf(cur)
	var applied []*request[T]
	for _, r := range batch {
		var before T
		if len(batch) > 1 {
			before = u.copyOf(work)
		}
		r.err = nil // from an earlier application to a stale copy
		if err := r.action(work); err != nil {
			r.err = err
			if len(batch) > 1 {
				work = before
			}
			continue
		}
		applied = append(applied, r)
	}
	return work, applied
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
