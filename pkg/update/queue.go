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
	"fmt"
	"slices"

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
	req := &request[T]{ctx: ctx, obj: obj, action: action, wake: make(chan bool, 1)}

	u.mu.Lock()
	q := u.queues[key]
	if q == nil {
		q = &queue[T]{key: key}
		u.queues[key] = q
	}
	q.pending = append(q.pending, req)
	lead := !q.busy
	q.busy = true
	u.mu.Unlock()

	if !lead {
		// Another Update of this object is writing; it will either commit
		// this request with its next batch or hand the lead to this one.
		lead = u.wait(q, req)
	}
	if lead {
		u.lead(q, req)
	}
	return req.err
}

// wait blocks until req is done (false) or must lead (true). A request whose
// context ends while it is still pending leaves the queue with the context's
// error; once a leader has taken it, its fate is that batch's.
func (u *Updater[T]) wait(q *queue[T], req *request[T]) bool {
	select {
	case lead := <-req.wake:
		return lead
	case <-req.ctx.Done():
	}
	u.mu.Lock()
	if !req.taken {
		q.pending = slices.DeleteFunc(q.pending, func(r *request[T]) bool { return r == req })
		u.mu.Unlock()
		req.err = req.ctx.Err()
		return false
	}
	u.mu.Unlock()
	return <-req.wake
}

// queue holds the Updates of one object waiting for the write in flight.
type queue[T Object[T]] struct {
	key     client.ObjectKey
	busy    bool          // a leader is committing; guarded by Updater.mu
	pending []*request[T] // guarded by Updater.mu
	latest  T             // last state the API server returned; leader only
	known   bool          // latest is set; leader only
	exists  bool          // latest exists on the server (else: to create); leader only
}

type request[T Object[T]] struct {
	ctx    context.Context
	obj    T
	action Action[T]
	wake   chan bool // true: lead the next batch; false: done, err is final
	taken  bool      // a leader took it (into a batch or as next leader); guarded by Updater.mu
	final  bool      // err is its outcome (a commit finished for it); leader only
	err    error
}

// lead commits every pending request of q as one batch (self among them),
// then hands the lead to the oldest request that arrived meanwhile, or
// retires the queue. Leading one batch at a time keeps a caller's latency
// bounded by its own batch. The handoff is deferred, so that an action that
// panics fails its batch instead of blocking the object's queue forever.
func (u *Updater[T]) lead(q *queue[T], self *request[T]) {
	u.mu.Lock()
	batch := q.pending
	q.pending = nil
	for _, r := range batch {
		r.taken = true
	}
	u.mu.Unlock()

	var requeue []*request[T]
	defer func() {
		if p := recover(); p != nil {
			for _, r := range batch {
				if !r.final { // a request already committed keeps its outcome
					r.err = fmt.Errorf("updating %s %s: an update action panicked: %v", u.kind, q.key, p)
				}
			}
			u.handoff(q, self, batch, nil)
			panic(p)
		}
		u.handoff(q, self, batch, requeue)
	}()

	ready := stillWanted(batch)
	if len(ready) == 0 {
		return
	}
	if !q.known && self.obj.GetResourceVersion() != "" {
		q.latest, q.known, q.exists = u.copyOf(self.obj), true, true
	}
	if uncertain, err := u.commit(self.ctx, q, ready); err != nil && !uncertain && self.ctx.Err() != nil {
		// The leader's own context ended the batch, and nothing of it was
		// stored; the others did not ask for that. They go back to the head
		// of the queue. (After a write whose outcome is unknown,
		// re-applying could apply an action twice: they share the error.)
		requeue = othersWaiting(ready, self)
	}
}

// stillWanted returns the requests of batch whose context has not ended;
// the others get their context's error (nothing was applied for them).
func stillWanted[T Object[T]](batch []*request[T]) []*request[T] {
	var wanted []*request[T]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		wanted = append(wanted, r)
	}
	return wanted
}

// othersWaiting returns the requests of batch but self whose context has
// not ended, their err cleared to go back to the queue.
func othersWaiting[T Object[T]](batch []*request[T], self *request[T]) []*request[T] {
	var others []*request[T]
	for _, r := range batch {
		if r != self && r.ctx.Err() == nil {
			r.err = nil
			others = append(others, r)
		}
	}
	return others
}

// handoff wakes the finished requests of batch and the next leader.
func (u *Updater[T]) handoff(q *queue[T], self *request[T], batch, requeue []*request[T]) {
	u.mu.Lock()
	for _, r := range requeue {
		r.taken = false
	}
	q.pending = append(slices.Clone(requeue), q.pending...)
	var next *request[T]
	if len(q.pending) > 0 {
		next = q.pending[0]
		next.taken = true
	} else {
		delete(u.queues, q.key)
	}
	u.mu.Unlock()

	for _, r := range batch {
		if r != self && !slices.Contains(requeue, r) {
			r.wake <- false
		}
	}
	if next != nil {
		next.wake <- true
	}
}
