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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Update applies action to the object named by obj's namespace and name and
// writes it with the resourceVersion precondition, retrying on conflict. On
// success obj holds the object as the API server stored it.
//
// If obj carries a resourceVersion (from a Get or an earlier Update), the
// first attempt starts from it without reading; a stale copy costs one
// conflict and a live re-read. A decision made on a carried copy is never
// final unless the write confirms it: if the action fails or changes nothing
// on a carried copy, the object is re-read and the action applied again.
//
// A no-op action (the object unchanged by semantic equality) writes nothing.
//
// Only ctx (and Options.Timeout) bounds the call. When it ends before the
// action reached a write, nothing was applied and the error matches
// ctx.Err() (a *ConflictError that also does, if the Update was waiting out
// a conflict); when it ends while a write carrying the action is in flight,
// the error is an *UnknownOutcomeError wrapping ctx.Err(). Either way the Update returns
// at once, and the other callers whose actions share its group commit carry
// on under their own contexts. An action that panics panics in its own
// caller's goroutine; the others' actions are written without its changes.
func (u *Updater[T]) Update(ctx context.Context, obj T, action Action[T]) error {
	key := client.ObjectKeyFromObject(obj)
	if key.Name == "" {
		return fmt.Errorf("updating %s: the object has no name", u.kind)
	}
	if u.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	req := &request[T]{ctx: ctx, obj: obj, action: action, done: make(chan struct{})}
	q := u.enqueue(key, req)
	select {
	case <-req.done:
	case <-ctx.Done():
		u.leave(q, req)
	}
	u.observe(start, req.err)
	if req.panicked != nil {
		panic(req.panicked)
	}
	return req.err
}

// observe records the duration of an Update that started at start, by its
// outcome err.
func (u *Updater[T]) observe(start time.Time, err error) {
	d := time.Since(start).Seconds()
	var conflict *ConflictError
	switch {
	case err == nil:
		u.metrics.Success.Observe(d)
	case errors.As(err, &conflict):
		u.metrics.Conflict.Observe(d)
	default:
		u.metrics.Error.Observe(d)
	}
}

// The life of a request. Its state changes under its queue's mu; the
// committer may read it without the lock (atomically) before running its
// action.
const (
	pending  int32 = iota // queued, not yet in a batch
	taken                 // in the batch being committed, not in a write
	writing               // in a write whose response has not come back
	finished              // err (or panicked) is its outcome; done is closed
)

type request[T Object[T]] struct {
	ctx    context.Context
	obj    T
	action Action[T]
	done   chan struct{}

	state    atomic.Int32
	err      error // set when finished
	result   error // the action's error in its latest application; committer only
	panicked any   // the action's panic, re-raised in the caller's goroutine
	// running is held while the committer runs action, so that a caller
	// leaving on its context returns only after its action has stopped
	// touching what the caller shares with it.
	running sync.Mutex
}

// queue holds the Updates of one object. While busy, one committer
// goroutine writes its batches one at a time, which keeps a caller's
// latency bounded by its own batch.
type queue[T Object[T]] struct {
	key client.ObjectKey

	mu      sync.Mutex
	busy    bool          // a committer is running; guarded by mu
	pending []*request[T] // guarded by mu
	// The batch's losing streak so far: attempts that conflicted, and the
	// last conflict; guarded by mu.
	attempts int
	conflict error

	// The committer's own.
	batch  []*request[T] // the requests being committed
	latest T             // last state the API server returned
	known  bool          // latest is set
	exists bool          // latest exists on the server (else: to create)
}

// enqueue adds req to its object's queue and starts the queue's committer
// if none is running.
func (u *Updater[T]) enqueue(key client.ObjectKey, req *request[T]) *queue[T] {
	u.mu.Lock()
	defer u.mu.Unlock()
	q := u.queues[key]
	if q == nil {
		q = &queue[T]{key: key}
		u.queues[key] = q
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, req)
	if !q.busy {
		q.busy = true
		go u.run(q)
	}
	return q
}

// leave settles a request whose context ended before its outcome was
// known: a pending request leaves the queue, a request in a batch leaves
// it before its next write (nothing of it was stored), and a request whose
// write is in flight learns that its outcome is unknown.
func (u *Updater[T]) leave(q *queue[T], req *request[T]) {
	q.mu.Lock()
	switch req.state.Load() {
	case pending:
		q.pending = slices.DeleteFunc(q.pending, func(r *request[T]) bool { return r == req })
		req.finish(req.ctx.Err())
	case taken:
		req.finish(u.leftErr(q, req))
	case writing:
		req.finish(&UnknownOutcomeError{Kind: u.kind, Key: q.key, Err: req.ctx.Err()})
	}
	q.mu.Unlock()
	// An action call in progress ends first (the committer holds running
	// while it calls the action, and calls no more once req is finished).
	req.running.Lock()
	//lint:ignore SA2001 the lock is the wait
	req.running.Unlock()
}

// leftErr is the outcome of req, whose context ended while it was in a
// batch but in no write: its context's error, or, if the batch was waiting
// out a conflict, a *ConflictError that also matches the context's error.
// The caller holds the queue's mu.
func (u *Updater[T]) leftErr(q *queue[T], req *request[T]) error {
	if q.conflict == nil {
		return req.ctx.Err()
	}
	return &ConflictError{Kind: u.kind, Key: q.key, Attempts: q.attempts, Err: errors.Join(q.conflict, req.ctx.Err())}
}

// losing records that the batch's attempt n ended in conflict err (n 0:
// the batch is done), for callers leaving meanwhile.
func (q *queue[T]) losing(n int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.attempts, q.conflict = n, err
}

// finish records err as r's outcome and wakes its caller. The caller holds
// the queue's mu.
func (r *request[T]) finish(err error) {
	r.err = err
	r.state.Store(finished)
	close(r.done)
}

// run is a queue's committer: it commits every pending request as one
// batch, then the requests that arrived meanwhile, until none is left.
func (u *Updater[T]) run(q *queue[T]) {
	for u.take(q) {
		u.commitBatch(q)
	}
}

// take makes the pending requests q's batch, or retires q when there are
// none. The first request carrying a resourceVersion gives the committer
// its starting point when it knows none.
func (u *Updater[T]) take(q *queue[T]) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batch, q.pending = q.pending, nil
	if len(q.batch) == 0 {
		q.busy = false
		delete(u.queues, q.key)
		return false
	}
	for _, r := range q.batch {
		r.state.Store(taken)
		if !q.known && r.obj.GetResourceVersion() != "" {
			q.latest, q.known, q.exists = u.copyOf(r.obj), true, true
		}
	}
	return true
}

// batchContext is done when the context of every request of batch is: a
// batch's writes are bounded by the longest deadline among its callers,
// never by the shortest. It carries the first request's values.
func batchContext[T Object[T]](batch []*request[T]) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var live atomic.Int64
	live.Store(int64(len(batch)))
	stops := make([]func() bool, 0, len(batch))
	for _, r := range batch {
		stops = append(stops, context.AfterFunc(r.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// remaining drops from q's batch the requests that have finished (their
// callers left); it reports whether any is left.
func (q *queue[T]) remaining() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batch = slices.DeleteFunc(q.batch, func(r *request[T]) bool { return r.state.Load() == finished })
	return len(q.batch) > 0
}

// enter marks q's batch as written, just before the write, and returns its
// size. It fails if a request of the batch has finished (or its context
// ended) since its action was applied: the write must then be prepared
// again without it.
func (q *queue[T]) enter() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.batch {
		if r.state.Load() == finished {
			return 0, false
		}
		if err := r.ctx.Err(); err != nil {
			r.finish(err) // nothing of it was written
			return 0, false
		}
	}
	for _, r := range q.batch {
		r.state.Store(writing)
	}
	return len(q.batch), true
}

// exit puts the batch's requests back in play after a write the API
// server refused, those whose callers have not left.
func (q *queue[T]) exit() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.batch {
		r.state.CompareAndSwap(writing, taken)
	}
}
