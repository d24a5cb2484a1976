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
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Object is a Kubernetes object type whose generated DeepCopyInto copies
// into its own type, as every kubebuilder and client-go type's does.
type Object[T any] interface {
	client.Object
	DeepCopyInto(T)
}

// Action is an updateAction: it changes obj in memory. It is called again on
// a fresh copy after every conflict, so it must depend only on obj (and its
// closure's inputs, not on state it changed in an earlier call). If it
// returns an error, nothing is written for this Update and the error is
// returned unchanged.
type Action[T any] func(obj T) error

// DefaultBackoff is the backoff between attempts when Options.Backoff is
// unset: 2ms growing by 1.5 for 10 steps (to about 80ms), fully jittered.
// Attempts beyond Steps continue at the last step's duration (see
// Options.MaxAttempts).
//
// Why these numbers: a conflicting write costs one round trip (a few ms on
// a local API server), so the first retry should come after about one round
// trip, not after client-go retry.DefaultRetry's 10ms or DefaultBackoff's
// factor 5 (seconds after a few steps: measured 5 updates/s with 8 writers).
// Jitter 1.0 (each sleep in [d, 2d)) spreads writers that collided at the
// same moment so they do not collide again in lockstep. Growth stops near
// 80ms, the time a dozen contending writers need to take their turns, so a
// writer that keeps losing waits in line rather than ever longer.
var DefaultBackoff = wait.Backoff{Duration: 2 * time.Millisecond, Factor: 1.5, Jitter: 1.0, Steps: 10}

// DefaultMaxAttempts bounds the writes of one Update when neither
// Options.MaxAttempts nor Options.Timeout is set: about 3s of sleeping with
// DefaultBackoff.
const DefaultMaxAttempts = 32

// Options configure an Updater. The zero value is valid: writes go to the
// main resource, a missing object is an error, DefaultBackoff applies.
type Options struct {
	// Status writes through the status subresource. The API server then
	// ignores changes the action makes outside .status.
	Status bool

	// CreateIfMissing creates the object when it does not exist: the action
	// is applied to an empty object carrying the requested name and namespace,
	// which is then created (and, with Status, its status written through the
	// subresource). A create that loses a race to another writer
	// (AlreadyExists) is retried like a conflict: the winner's object is read
	// and the action applied to it.
	CreateIfMissing bool

	// Backoff between attempts after a conflict: it grows for Backoff.Steps
	// attempts, then stays at its last duration (jittered) for the attempts
	// that remain. Zero: DefaultBackoff. Cap must be unset: a wait.Backoff
	// that reaches its Cap sets Steps to 0, which would end the retries early
	// — the plateau above is how growth is bounded instead.
	Backoff wait.Backoff

	// MaxAttempts bounds the writes tried for one Update. Zero: unlimited
	// when Timeout is set, else DefaultMaxAttempts.
	MaxAttempts int

	// Timeout bounds one Update call, retries included. Zero: only the
	// caller's context bounds it.
	Timeout time.Duration

	// LiveReader is where objects are read and re-read after a conflict. It
	// must read from the API server, never from an informer cache (a cache
	// may be behind, which turns every retry into another conflict): with a
	// controller-runtime manager, pass mgr.GetAPIReader(). Default: the
	// client given to New.
	LiveReader client.Reader
}

// ConflictError is returned when an Update ran out of attempts (or time)
// because the object kept changing under it. apierrors.IsConflict reports
// true for it.
type ConflictError struct {
	// Kind and Key name the object.
	Kind string
	Key  client.ObjectKey
	// Attempts is the number of writes tried.
	Attempts int
	// Err is the last conflict from the API server.
	Err error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("updating %s %s: gave up after %d attempts, the object kept changing: %v", e.Kind, e.Key, e.Attempts, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// Status makes the error an apierrors.APIStatus with reason Conflict, so
// apierrors.IsConflict(err) is true.
func (e *ConflictError) Status() metav1.Status {
	return metav1.Status{
		Status: metav1.StatusFailure, Code: 409, Reason: metav1.StatusReasonConflict, Message: e.Error(),
	}
}

// Updater applies updateActions to objects of type T. It is safe for
// concurrent use; share one per process and type so concurrent Updates of the
// same object are group-committed.
type Updater[T Object[T]] struct {
	c      client.Client
	live   client.Reader
	opts   Options
	kind   string
	newObj func() T
	// plateau is the sleep once Backoff.Steps attempts have been made.
	plateau time.Duration

	mu     sync.Mutex
	queues map[client.ObjectKey]*queue[T]
}

// New validates opts and returns an Updater writing through c.
func New[T Object[T]](c client.Client, opts Options) (*Updater[T], error) {
	if c == nil {
		return nil, errors.New("update: client must not be nil")
	}
	if opts.Backoff == (wait.Backoff{}) {
		opts.Backoff = DefaultBackoff
	}
	switch {
	case opts.Backoff.Cap != 0:
		return nil, errors.New("update: Options.Backoff.Cap must be unset: a wait.Backoff that reaches its Cap sets Steps to 0 and ends the retries early")
	case opts.Backoff.Duration <= 0 || opts.Backoff.Factor < 0 || opts.Backoff.Jitter < 0:
		return nil, fmt.Errorf("update: Options.Backoff needs a positive Duration and no negative field, got %+v", opts.Backoff)
	case opts.MaxAttempts < 0:
		return nil, fmt.Errorf("update: Options.MaxAttempts must be >= 0, got %d", opts.MaxAttempts)
	case opts.Timeout < 0:
		return nil, fmt.Errorf("update: Options.Timeout must be >= 0, got %s", opts.Timeout)
	}
	if opts.Backoff.Steps < 1 {
		opts.Backoff.Steps = 1
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
		if opts.Timeout > 0 {
			opts.MaxAttempts = math.MaxInt32
		}
	}
	if opts.LiveReader == nil {
		opts.LiveReader = c
	}
	typ := reflect.TypeFor[T]()
	if typ.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("update: type %s must be a pointer to a struct", typ)
	}
	u := &Updater[T]{
		c: c, live: opts.LiveReader, opts: opts, kind: typ.Elem().Name(),
		newObj: func() T { return reflect.New(typ.Elem()).Interface().(T) },
		queues: map[client.ObjectKey]*queue[T]{},
	}
	// The plateau continues the growth where it stops, without jitter
	// (jitter is applied to each sleep, not baked into the plateau).
	u.plateau = opts.Backoff.Duration
	if opts.Backoff.Factor > 1 {
		u.plateau = time.Duration(float64(u.plateau) * math.Pow(opts.Backoff.Factor, float64(opts.Backoff.Steps-1)))
	}
	if gvk, err := apiutil.GVKForObject(u.newObj(), c.Scheme()); err == nil {
		u.kind = gvk.Kind
	}
	return u, nil
}

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

	var ready []*request[T]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // cancelled while waiting: nothing was applied
			continue
		}
		ready = append(ready, r)
	}
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
		for _, r := range ready {
			if r != self && r.ctx.Err() == nil {
				r.err = nil
				requeue = append(requeue, r)
			}
		}
	}
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
//  5. On Conflict or a lost create race, forget the state and retry from 1
//     after a jittered backoff, until the attempts run out.
func (u *Updater[T]) commitOnce(ctx context.Context, q *queue[T], batch []*request[T]) (bool, error) {
	attempts := 0
	uncertain := false
	var result T
	var lastConflict error
	try := func() error {
		attempts++
		fresh := false
		for {
			if err := ctx.Err(); err != nil {
				if lastConflict != nil {
					// The deadline ended a losing streak: report the conflict.
					return &ConflictError{Kind: u.kind, Key: q.key, Attempts: attempts - 1, Err: lastConflict}
				}
				return err
			}
			// Step 1.
			if !q.known {
				cur, found, err := u.read(ctx, q.key)
				if err != nil {
					return err
				}
				q.latest, q.known, q.exists, fresh = cur, true, found, true
			}
			cur := q.latest
			// Step 2.
			work, applied := u.apply(cur, batch)
			// Step 3.
			if !fresh && (len(applied) < len(batch) || equality.Semantic.DeepEqual(cur, work)) {
				q.known = false
				continue
			}
			if len(applied) == 0 || equality.Semantic.DeepEqual(cur, work) {
				if !q.exists {
					q.known = false // nothing was created: do not carry the empty object
				}
				result = cur
				return nil
			}
			// Step 4.
			written, err := u.write(ctx, work, q.exists)
			if err != nil && !u.retriable(err) && !rejected(err) {
				uncertain = true // the write may have been stored
			}
			if err != nil {
				// Step 5: any failed write leaves the object's state unknown.
				q.known = false
				if u.retriable(err) {
					lastConflict = err
				}
				return err
			}
			q.latest, q.exists, result = written, true, written
			return nil
		}
	}
	// Step 5's backoff: grow for Backoff.Steps attempts, then plateau.
	growth := u.opts.Backoff
	growth.Steps = min(growth.Steps, u.opts.MaxAttempts)
	err := retry.OnError(growth, u.retriable, try)
	if err != nil && u.retriable(err) && attempts < u.opts.MaxAttempts {
		select {
		case <-ctx.Done():
		case <-time.After(wait.Jitter(u.plateau, u.opts.Backoff.Jitter)):
		}
		plateau := wait.Backoff{Duration: u.plateau, Factor: 1, Jitter: u.opts.Backoff.Jitter, Steps: u.opts.MaxAttempts - attempts}
		err = retry.OnError(plateau, u.retriable, try)
	}
	if err != nil {
		if u.retriable(err) {
			err = &ConflictError{Kind: u.kind, Key: q.key, Attempts: attempts, Err: err}
		}
		for _, r := range batch {
			// An action's own error is no verdict either: it was decided
			// on a copy, with the batch's other changes, never stored.
			r.err = err
			r.final = true
		}
		return uncertain, err
	}
	for _, r := range batch {
		if r.err == nil {
			result.DeepCopyInto(r.obj)
		}
		r.final = true
	}
	return uncertain, nil
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

// read gets the object live. A missing object is an empty one carrying the
// key when CreateIfMissing is set, else an error.
func (u *Updater[T]) read(ctx context.Context, key client.ObjectKey) (T, bool, error) {
	obj := u.newObj()
	err := u.live.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && u.opts.CreateIfMissing {
		obj = u.newObj()
		obj.SetNamespace(key.Namespace)
		obj.SetName(key.Name)
		return obj, false, nil
	}
	if err != nil {
		return obj, false, fmt.Errorf("reading %s %s: %w", u.kind, key, err)
	}
	return obj, true, nil
}

// write stores work with its resourceVersion as the precondition, or creates
// it. It returns what the API server stored.
func (u *Updater[T]) write(ctx context.Context, work T, exists bool) (T, error) {
	if exists {
		if work.GetResourceVersion() == "" {
			// An Update without resourceVersion would be unconditional.
			return work, fmt.Errorf("updating %s %s: no resourceVersion to use as precondition", u.kind, client.ObjectKeyFromObject(work))
		}
		if u.opts.Status {
			return work, u.c.Status().Update(ctx, work)
		}
		return work, u.c.Update(ctx, work)
	}
	var status map[string]any
	if u.opts.Status {
		// The API server drops .status on create; keep it to write after.
		desired, err := runtime.DefaultUnstructuredConverter.ToUnstructured(work)
		if err != nil {
			return work, fmt.Errorf("creating %s %s: %w", u.kind, client.ObjectKeyFromObject(work), err)
		}
		status, _ = desired["status"].(map[string]any)
	}
	if err := u.c.Create(ctx, work); err != nil {
		return work, err
	}
	if status == nil {
		return work, nil
	}
	created, err := runtime.DefaultUnstructuredConverter.ToUnstructured(work)
	if err != nil {
		return work, err
	}
	created["status"] = status
	withStatus := u.newObj()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(created, withStatus); err != nil {
		return work, err
	}
	err = u.c.Status().Update(ctx, withStatus)
	if err != nil && !u.retriable(err) {
		// The status was refused: take the created object back (only
		// this very object, by UID), so a failed Update leaves nothing.
		uid := work.GetUID()
		_ = u.c.Delete(ctx, work, client.Preconditions{UID: &uid})
		return withStatus, fmt.Errorf("creating %s %s: writing its status: %w", u.kind, client.ObjectKeyFromObject(work), err)
	}
	// A conflict means someone wrote the new object first: the retry
	// re-reads it and applies the action to its status.
	return withStatus, err
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

func (u *Updater[T]) copyOf(obj T) T {
	c := u.newObj()
	obj.DeepCopyInto(c)
	return c
}

// Update is a one-off Updater.Update. It does not group-commit with other
// calls; keep an Updater for repeated use.
func Update[T Object[T]](ctx context.Context, c client.Client, obj T, action Action[T], opts Options) error {
	u, err := New[T](c, opts)
	if err != nil {
		return err
	}
	return u.Update(ctx, obj, action)
}
