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

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// method is one RPC method: what access its token needs, and what it does
// in the namespace the token was authorized for.
type method struct {
	// public methods need no token (sys.version, sys.health).
	public bool
	access auth.Access
	// target methods act on the namespace their first argument names
	// (ns.create, ns.delete, ns.info): the token is verified for it.
	target bool
	// tokens methods need Options.Tokens.
	tokens bool
	serve  func(s *Server, ctx context.Context, namespace string, a args) (any, error)
}

// methods is the dispatch table.
func methods() map[string]method {
	return map[string]method{
		"stream.write":   {access: auth.Write, serve: (*Server).streamWrite},
		"stream.get":     {access: auth.Read, serve: (*Server).streamGet},
		"stream.last":    {access: auth.Read, serve: (*Server).streamLast},
		"stream.version": {access: auth.Read, serve: (*Server).streamVersion},
		"category.get":   {access: auth.Read, serve: (*Server).categoryGet},
		"ns.create":      {access: auth.Admin, target: true, tokens: true, serve: (*Server).nsCreate},
		"ns.delete":      {access: auth.Admin, target: true, tokens: true, serve: (*Server).nsDelete},
		"ns.list":        {access: auth.Admin, tokens: true, serve: (*Server).nsList},
		"ns.info":        {access: auth.Read, target: true, tokens: true, serve: (*Server).nsInfo},
		"ns.streams":     {access: auth.Read, serve: (*Server).nsStreams},
		"ns.categories":  {access: auth.Read, serve: (*Server).nsCategories},
		"sys.version":    {public: true, serve: (*Server).sysVersion},
		"sys.health":     {public: true, serve: (*Server).sysHealth},
	}
}

// serveRPC is POST /rpc. Steps:
//  1. Read the body within Options.MaxBodyBytes (413 past it).
//  2. Decode ["method", ...args] (400 for anything else) and find the
//     method (404).
//  3. Verify the token for the method's access (401, 403), which names
//     the namespace the call acts in.
//  4. Serve the call; its errors become EventoDB's codes, never a 500 for
//     what the client sent.
func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &Error{Code: CodeInvalidRequest, Message: "/rpc takes POST with a JSON array body", Status: http.StatusMethodNotAllowed})
		return
	}
	// 1.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("the request body is over %d bytes", s.opts.MaxBodyBytes), Status: http.StatusRequestEntityTooLarge})
			return
		}
		writeError(w, invalid("reading the request body: %v", err))
		return
	}
	// 2.
	c, e := decodeCall(body)
	if e != nil {
		writeError(w, e)
		return
	}
	m, ok := s.methods[c.method]
	if !ok {
		writeError(w, &Error{Code: CodeMethodNotFound, Message: fmt.Sprintf("method %q does not exist", c.method), Status: http.StatusNotFound})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	start := time.Now()
	result, err := s.serveCall(ctx, r, m, c)
	s.metrics.duration.WithLabelValues(c.method).Observe(time.Since(start).Seconds())
	if err != nil {
		e := s.toError(c.method, err)
		s.metrics.requests.WithLabelValues(c.method, e.Code).Inc()
		writeError(w, e)
		return
	}
	s.metrics.requests.WithLabelValues(c.method, "OK").Inc()
	writeJSON(w, http.StatusOK, result)
}

// serveCall is steps 3 and 4.
func (s *Server) serveCall(ctx context.Context, r *http.Request, m method, c call) (any, error) {
	a := args{method: c.method, list: c.args}
	if m.tokens && s.opts.Tokens == nil {
		return nil, &Error{Code: CodeBackendError, Message: c.method + " needs namespace tokens, which this gateway is not configured for (see --token-namespace)", Status: http.StatusServiceUnavailable}
	}
	// 3.
	var namespace string
	if !m.public {
		requested := r.Header.Get(NamespaceHeader)
		if m.target {
			var e *Error
			if requested, e = namespaceArg(a); e != nil {
				return nil, e
			}
		}
		var err error
		if namespace, err = s.opts.Auth.Authorize(ctx, Token(r), requested, m.access); err != nil {
			return nil, err
		}
	}
	// 4.
	return m.serve(s, ctx, namespace, a)
}

// Token is the request's bearer token: the Authorization header's, or the
// token query parameter (EventSource cannot set headers).
func Token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

// toError maps a call's error to EventoDB's code and HTTP status. What the
// client sent wrong is a 4xx that says so; only the API server failing is
// a 503 (BACKEND_ERROR).
func (s *Server) toError(method string, err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if vc, ok := errors.AsType[*stream.VersionConflictError](err); ok {
		return &Error{
			Code:    CodeStreamVersionConflict,
			Message: fmt.Sprintf("Expected version %d, stream is at version %d", vc.Expected, vc.Actual),
			Details: map[string]any{"expected": vc.Expected, "actual": vc.Actual},
			Status:  http.StatusConflict,
		}
	}
	if ie, ok := errors.AsType[*stream.InvalidEventError](err); ok {
		return invalid("%s: %s", messageRef(ie.Index), ie.Reason)
	}
	switch {
	case errors.Is(err, auth.ErrRequired):
		return &Error{Code: CodeAuthRequired, Message: err.Error(), Status: http.StatusUnauthorized}
	case errors.Is(err, auth.ErrInvalidToken):
		return &Error{Code: CodeAuthInvalidToken, Message: err.Error(), Status: http.StatusUnauthorized}
	case errors.Is(err, auth.ErrUnauthorized):
		return &Error{Code: CodeAuthUnauthorized, Message: err.Error(), Status: http.StatusForbidden}
	case errors.Is(err, stream.ErrStreamNotFound):
		return &Error{Code: CodeStreamNotFound, Message: err.Error(), Status: http.StatusNotFound}
	case errors.Is(err, stream.ErrTooLarge), errors.Is(err, stream.ErrDuplicateID):
		return invalid("%v", err)
	case isNamespaceNotFound(err):
		return &Error{Code: CodeNamespaceNotFound, Message: "the namespace does not exist", Status: http.StatusNotFound}
	case apierrors.IsForbidden(err):
		// The gateway's own identity lacks RBAC: an installation fault.
		s.opts.Log.Error(err, "The gateway's ServiceAccount is not allowed to do this; check config/gateway's RBAC", "method", method)
		return &Error{Code: CodeBackendError, Message: "the gateway is not allowed to do this (its RBAC is incomplete)", Status: http.StatusServiceUnavailable}
	}
	s.opts.Log.Error(err, "Call failed", "method", method)
	e := &Error{Code: CodeBackendError, Message: err.Error(), Status: http.StatusServiceUnavailable}
	if errors.Is(err, stream.ErrOutcomeUnknown) {
		e.Details = map[string]any{"outcome": "unknown", "retry": "write again with the same id: a message stored already is not stored twice"}
	}
	return e
}

// messageRef names message i of a write in an error message.
func messageRef(i int) string {
	if i < 0 {
		return "stream.write"
	}
	return fmt.Sprintf("message %d", i)
}

// isNamespaceNotFound reports an API server NotFound for the namespace
// itself (creating a stream in a namespace that does not exist).
func isNamespaceNotFound(err error) bool {
	status, ok := errors.AsType[*apierrors.StatusError](err)
	if !ok || !apierrors.IsNotFound(err) {
		return false
	}
	d := status.ErrStatus.Details
	return d != nil && d.Kind == "namespaces"
}
