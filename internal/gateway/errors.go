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
	"fmt"
	"net/http"
)

// EventoDB's error codes, with the HTTP status each is served with.
const (
	CodeInvalidRequest        = "INVALID_REQUEST"
	CodeMethodNotFound        = "METHOD_NOT_FOUND"
	CodeAuthRequired          = "AUTH_REQUIRED"
	CodeAuthInvalidToken      = "AUTH_INVALID_TOKEN"
	CodeAuthUnauthorized      = "AUTH_UNAUTHORIZED"
	CodeNamespaceNotFound     = "NAMESPACE_NOT_FOUND"
	CodeNamespaceExists       = "NAMESPACE_EXISTS"
	CodeStreamNotFound        = "STREAM_NOT_FOUND"
	CodeStreamVersionConflict = "STREAM_VERSION_CONFLICT"
	// CodeBackendError: the API server failed or did not answer in time.
	// The write's outcome may be unknown (details.outcome says so); a
	// retry with the same message id is safe.
	CodeBackendError = "BACKEND_ERROR"
)

// Error is an EventoDB error response: {"error":{"code","message","details"}}.
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// Status is the HTTP status it is served with.
	Status int `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// invalid is a 400 INVALID_REQUEST: the request cannot succeed as sent.
func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}
