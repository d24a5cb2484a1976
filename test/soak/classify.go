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
	"io"
	"net"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// refusals are the errors after which the library guarantees that nothing
// was stored, by the name the report gives them. Checked in order, before
// anything that may wrap a context error.
var refusals = []struct {
	name string
	is   func(error) bool
}{
	{"version-conflict", func(err error) bool { return errors.Is(err, stream.ErrVersionConflict) }},
	{"fenced", func(err error) bool { return errors.Is(err, lifecycle.ErrFenced) }},
	{"backing-off", func(err error) bool { return errors.Is(err, lifecycle.ErrBackingOff) }},
	{"illegal-transition", func(err error) bool { return errors.Is(err, lifecycle.ErrIllegalTransition) }},
	{"stale-token", func(err error) bool { return errors.Is(err, update.ErrStaleToken) }},
	{"head-full", func(err error) bool { return errors.Is(err, stream.ErrHeadFull) }},
	{"conflict-exhausted", func(err error) bool { var c *update.ConflictError; return errors.As(err, &c) }},
}

// classify says what a call's error means for the ledger, and names it for
// the report. ctx is the call's own context; short says it had a short
// deadline on purpose.
//
// Unknown, per pkg/update's contract: update.ErrOutcomeUnknown, a context
// error, a server timeout, a transport error. A context error is named by
// whose context ended: the call's own ("short-deadline" when chosen short,
// else "deadline"), another caller's deadline in the same group commit
// ("foreign-deadline"), or a context the library derived and cancelled
// ("inner-cancel": under spec.lockPolicy Lease, the lock was lost
// mid-write). Everything else is a refusal: nothing may have been stored,
// so a stored refusal shows up as phantom or duplicated.
func classify(ctx context.Context, short bool, err error) (outcome, string) {
	if err == nil {
		return stored, ""
	}
	if errors.Is(err, lease.ErrTimeout) {
		// Acquire gave up: it took nothing. On purpose, if short.
		if short && ctx.Err() != nil {
			return refused, "short-deadline"
		}
		return refused, "lease-timeout"
	}
	for _, r := range refusals {
		if r.is(err) {
			return refused, r.name
		}
	}
	switch {
	case errors.Is(err, update.ErrOutcomeUnknown):
		return unknown, "outcome-unknown"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return unknown, contextErrKind(ctx, short, err)
	case apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err):
		return unknown, "server-timeout"
	case isTransport(err):
		return unknown, "transport"
	case apierrors.IsConflict(err):
		return refused, "conflict"
	case apierrors.IsNotFound(err):
		return refused, "not-found"
	case apierrors.IsAlreadyExists(err):
		return refused, "already-exists"
	}
	return refused, "other"
}

// contextErrKind names a context error by whose context ended.
func contextErrKind(ctx context.Context, short bool, err error) string {
	switch {
	case ctx.Err() == nil && errors.Is(err, context.Canceled):
		return "inner-cancel"
	case ctx.Err() == nil:
		return "foreign-deadline"
	case errors.Is(ctx.Err(), context.Canceled):
		return "cancelled"
	case short:
		return "short-deadline"
	}
	return "deadline"
}

// isTransport reports whether err is a connection-level failure, after
// which a sent request may or may not have been served.
func isTransport(err error) bool {
	var u *url.Error
	var n net.Error
	return errors.As(err, &u) || errors.As(err, &n) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
