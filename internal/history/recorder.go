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

package history

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// Outcome is what a caller knows about the effect of its operation.
type Outcome int

const (
	// Done: the operation returned a result; its effect happened once,
	// between its call and its return, as the result says.
	Done Outcome = iota
	// Refused: the operation was definitely refused and had no effect.
	Refused
	// Unknown: the operation may have taken effect once, at any time after
	// it was called, or never.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Done:
		return "done"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// OutcomeOf classifies an operation's error. nil is Done. An error that
// says the outcome is unknown (update.ErrOutcomeUnknown), a context error
// and a timeout are Unknown; a definite refusal — a conflict, a stream
// version conflict, a duplicate id, a held lock, a validation or
// authorization error — is Refused. Anything else is Unknown: an error
// nobody has shown to be a refusal may have come after the write.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return Done
	case errors.Is(err, lease.ErrTimeout) && !errors.Is(err, update.ErrOutcomeUnknown):
		// Acquire gave up waiting: no write taking the lock was in flight.
		return Refused
	case errors.Is(err, update.ErrOutcomeUnknown),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return Unknown
	case refused(err):
		return Refused
	}
	return Unknown
}

// refused reports whether err is a definite refusal: nothing was stored.
func refused(err error) bool {
	for _, sentinel := range []error{
		stream.ErrVersionConflict, stream.ErrDuplicateID, stream.ErrStreamNotFound,
		stream.ErrInvalidEvent, stream.ErrTooLarge, lease.ErrHeld,
	} {
		if errors.Is(err, sentinel) {
			return true
		}
	}
	// *update.ConflictError is an apierrors.APIStatus with reason Conflict:
	// every write it tried was refused.
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) ||
		apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) ||
		apierrors.IsUnauthorized(err) || apierrors.IsRequestEntityTooLargeError(err)
}

// Output is an operation's result as a model reads it: every output type
// of this package says its Outcome.
type Output interface {
	outcome() Outcome
}

// Recorder records a history. It is safe for concurrent use.
type Recorder struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

// NewRecorder returns an empty Recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the Recorder's clock: nanoseconds since NewRecorder, on the
// monotonic clock, so it never goes back.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Call is an operation that has been called and not yet recorded.
type Call struct {
	r      *Recorder
	client int
	input  any
	at     int64
}

// Call starts recording an operation of client with input, called now.
// Record it with Return once it has returned.
func (r *Recorder) Call(client int, input any) Call {
	return Call{r: r, client: client, input: input, at: r.Now()}
}

// At is when the operation was called, on the Recorder's clock.
func (c Call) At() int64 { return c.at }

// Return records the operation with its output, returned now — or, if the
// output's outcome is Unknown, at +∞ (math.MaxInt64): its effect may come
// at any time after its call.
func (c Call) Return(out Output) {
	ret := c.r.Now()
	if out.outcome() == Unknown {
		ret = math.MaxInt64
	}
	c.r.Record(porcupine.Operation{ClientId: c.client, Input: c.input, Call: c.at, Output: out, Return: ret})
}

// Record adds an operation as it is: for one whose call time is not when
// it was made (a lock lost before its release was called is released at
// an unknown time since it was acquired).
func (r *Recorder) Record(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Operations returns a copy of the history recorded so far.
func (r *Recorder) Operations() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// Tally counts the operations of ops by outcome.
func Tally(ops []porcupine.Operation) map[Outcome]int {
	n := map[Outcome]int{}
	for _, op := range ops {
		if out, ok := op.Output.(Output); ok {
			n[out.outcome()]++
		}
	}
	return n
}
