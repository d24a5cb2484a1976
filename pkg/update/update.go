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
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/jobstate-dev/jobstate/internal/metrics"
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
// unset: 2ms growing by 1.5 over the first 10 attempts (to about 80ms), fully
// jittered. Every later attempt waits as long as the tenth (see
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

	// Backoff between attempts after a conflict. Steps counts attempts, as
	// in retry.OnError: the sleep after attempt n is Duration × Factor^(n-1)
	// for the first Steps attempts, and the last of those after every later
	// attempt — it grows, then stays flat (jittered) for the attempts that
	// remain. Cap, if set, bounds the sleep before jitter: once the growth
	// would pass it, the sleep stays at Cap. Reaching Cap does not end the
	// retries (as it does in wait.ExponentialBackoff); MaxAttempts and
	// Timeout do. Factor is 0 (no growth) or at least 1. Zero:
	// DefaultBackoff.
	Backoff wait.Backoff

	// MaxAttempts bounds the writes tried for one Update. Zero: unlimited
	// when Timeout is set, else DefaultMaxAttempts.
	MaxAttempts int

	// Timeout bounds one Update call, retries included. Zero: only the
	// caller's context bounds it.
	Timeout time.Duration

	// Clock is what the backoff sleeps on. Default: the real clock.
	Clock clock.Clock

	// LiveReader is where objects are read and re-read after a conflict. It
	// must read from the API server, never from an informer cache (a cache
	// may be behind, which turns every retry into another conflict): with a
	// controller-runtime manager, pass mgr.GetAPIReader(). Default: the
	// client given to New.
	LiveReader client.Reader

	// OnWrite, if set, is called after every write this Updater makes to
	// the API server, with the number of updates the write carried (group
	// commit: 1 or more) and its error (nil, a Conflict, ...): what a
	// metric of batch sizes and conflicts needs. It must not block. (The
	// library's own metrics, jobstate_update_*, are kept without it; see
	// internal/metrics.)
	OnWrite func(updates int, err error)
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
	// backoff is Options.Backoff with Steps counting the growths between
	// attempts, as wait.Backoff.DelayFunc counts them, not the attempts.
	backoff wait.Backoff
	// metrics are the jobstate_update_* series of T's resource.
	metrics metrics.Resource

	mu     sync.Mutex
	queues map[client.ObjectKey]*queue[T]
}

// New validates opts and returns an Updater writing through c.
func New[T Object[T]](c client.Client, opts Options) (*Updater[T], error) {
	if c == nil {
		return nil, errors.New("update: client must not be nil")
	}
	opts, err := withDefaults(c, opts)
	if err != nil {
		return nil, err
	}
	typ := reflect.TypeFor[T]()
	if typ.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("update: type %s must be a pointer to a struct", typ)
	}
	u := &Updater[T]{
		c: c, live: opts.LiveReader, opts: opts, kind: typ.Elem().Name(),
		newObj:  func() T { return reflect.New(typ.Elem()).Interface().(T) },
		backoff: opts.Backoff,
		queues:  map[client.ObjectKey]*queue[T]{},
	}
	// The first attempt takes no step: Steps attempts make Steps-1 growths
	// (Steps 0 means no growth, as it did before).
	u.backoff.Steps = max(u.backoff.Steps, 1) - 1
	gvk := schema.GroupVersionKind{Kind: u.kind}
	if known, err := apiutil.GVKForObject(u.newObj(), c.Scheme()); err == nil {
		gvk, u.kind = known, known.Kind
	}
	u.metrics = metrics.ForResource(resourceOf(gvk))
	return u, nil
}

// resourceOf is the resource label of gvk's metrics: its lowercase plural,
// as the RESTMapper's default guess makes it ("jobstates", "leases") —
// without a discovery request, and bounded by the types written.
func resourceOf(gvk schema.GroupVersionKind) string {
	plural, _ := meta.UnsafeGuessKindToResource(gvk)
	return plural.Resource
}

// withDefaults validates opts and fills in the defaults the field comments
// name.
func withDefaults(c client.Client, opts Options) (Options, error) {
	if opts.Backoff == (wait.Backoff{}) {
		opts.Backoff = DefaultBackoff
	}
	b := opts.Backoff
	switch {
	case b.Duration <= 0 || b.Factor < 0 || b.Jitter < 0 || b.Cap < 0 || b.Steps < 0:
		return opts, fmt.Errorf("update: Options.Backoff needs a positive Duration and no negative field, got %+v", b)
	case b.Factor > 0 && b.Factor < 1:
		return opts, fmt.Errorf("update: Options.Backoff.Factor must be 0 (no growth) or at least 1, got %g: a shrinking sleep would spin", b.Factor)
	case b.Cap != 0 && b.Cap < b.Duration:
		return opts, fmt.Errorf("update: Options.Backoff.Cap (%s) must be unset or at least Duration (%s)", b.Cap, b.Duration)
	case opts.MaxAttempts < 0:
		return opts, fmt.Errorf("update: Options.MaxAttempts must be >= 0, got %d", opts.MaxAttempts)
	case opts.Timeout < 0:
		return opts, fmt.Errorf("update: Options.Timeout must be >= 0, got %s", opts.Timeout)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
		if opts.Timeout > 0 {
			opts.MaxAttempts = math.MaxInt32
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.LiveReader == nil {
		opts.LiveReader = c
	}
	return opts, nil
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
