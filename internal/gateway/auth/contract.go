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

// Package auth is a placeholder for the gateway's authorization contract,
// replaced by the full package.
package auth

import (
	"encoding/json"
	"errors"
	"time"
)

// Access is what a call does in a namespace.
type Access int

const (
	Read Access = iota
	Write
	Admin
)

var (
	ErrRequired     = errors.New("authentication required")
	ErrInvalidToken = errors.New("invalid token")
	ErrUnauthorized = errors.New("unauthorized")
)

var (
	ErrTokenExists = errors.New("token exists")
	ErrNoToken     = errors.New("no token")
)

// Record is a namespace token's record.
type Record struct {
	Namespace, Token, Description string
	Metadata                      json.RawMessage
	CreatedAt                     time.Time
}
