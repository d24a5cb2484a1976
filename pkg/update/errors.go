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
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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

// ErrOutcomeUnknown matches every *UnknownOutcomeError with errors.Is.
var ErrOutcomeUnknown = errors.New("the write's outcome is unknown: it may or may not have been stored")

// UnknownOutcomeError: the write carrying the caller's action was sent, but
// whether the API server stored it is unknown — the caller's own context
// ended while it was in flight, or the response was lost (a timeout, a
// dropped connection, a server error after the request was accepted). The
// action may have been applied once, or not at all; the library never
// applies it a second time on its own. Read the object to find out, or make
// the action idempotent (pkg/stream's event ids are) and retry.
//
// Only the caller's own context or its own write produces this error:
// another caller's deadline in the same group commit never does.
type UnknownOutcomeError struct {
	// Kind and Key name the object.
	Kind string
	Key  client.ObjectKey
	// Err is why the outcome is unknown: the caller's context error, or the
	// write's transport or server error. errors.Is(err,
	// context.DeadlineExceeded) and apierrors.IsTimeout see through it.
	Err error
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("updating %s %s: the write was sent, but whether it was stored is unknown: %v", e.Kind, e.Key, e.Err)
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrOutcomeUnknown.
func (e *UnknownOutcomeError) Is(target error) bool { return target == ErrOutcomeUnknown }
