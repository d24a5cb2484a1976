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

package auth

import (
	"errors"
	"strings"
)

// The refusals of Authorize, one per EventoDB error code. Every error this
// package returns for them is an *Error whose Kind is one of these, with a
// message saying what is wrong and what to do; any other error from
// Authorize means the decision could not be made (the gateway answers 503).
var (
	// ErrRequired: the call carries no token (401 AUTH_REQUIRED).
	ErrRequired = errors.New("a token is required")
	// ErrInvalidToken: the token is malformed, unknown, revoked or
	// expired (401 AUTH_INVALID_TOKEN).
	ErrInvalidToken = errors.New("the token is invalid")
	// ErrUnauthorized: the token is valid but may not do this call here
	// (403 AUTH_UNAUTHORIZED).
	ErrUnauthorized = errors.New("the token is not allowed to do this")
)

// The errors of Tokens, as Kind of an *Error.
var (
	// ErrTokenExists: Create found a token for the namespace already; it
	// must be deleted first.
	ErrTokenExists = errors.New("the namespace has a token already")
	// ErrNoToken: the namespace has no token.
	ErrNoToken = errors.New("the namespace has no token")
	// ErrInvalidNamespace: the name is not a Kubernetes namespace name.
	ErrInvalidNamespace = errors.New("not a valid namespace name")
)

// Error is a refusal of Authorize or an error of Tokens. errors.Is reports
// whether it is its Kind; errors.Unwrap gives its cause.
type Error struct {
	// Kind is the sentinel the error matches: ErrRequired,
	// ErrInvalidToken, ErrUnauthorized, ErrTokenExists, ErrNoToken or
	// ErrInvalidNamespace.
	Kind error
	// Reason says what is wrong and what to do about it. It never holds a
	// token.
	Reason string
	// User is who the token authenticated as ("" when it did not): a
	// Kubernetes user name, "admin token", or "namespace token for <ns>".
	User string
	// Namespace is the namespace concerned, "" when there is none.
	Namespace string
	// Err is the cause, nil when there is none.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("auth: ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool { return target != nil && target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }
