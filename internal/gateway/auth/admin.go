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
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// minAdminTokenLen keeps out admin tokens short enough to guess through
// the gateway.
const minAdminTokenLen = 16

// adminToken is the admin token, kept as its hash.
type adminToken struct {
	file   string
	period time.Duration
	// hash is nil when there is no admin token: none configured, or the
	// file became unreadable or invalid (failing closed).
	hash atomic.Pointer[[sha256.Size]byte]
}

// newAdminToken reads file ("" = no admin token).
func newAdminToken(file string, period time.Duration) (*adminToken, error) {
	a := &adminToken{file: file, period: period}
	if file == "" {
		return a, nil
	}
	hash, err := readAdminToken(file)
	if err != nil {
		return nil, err
	}
	a.hash.Store(hash)
	return a, nil
}

// readAdminToken returns the hash of the token in file.
func readAdminToken(file string) (*[sha256.Size]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth: reading the admin token (Options.AdminTokenFile): %w", err)
	}
	token := string(bytes.TrimSpace(data))
	if len(token) < minAdminTokenLen || !printable(token) {
		return nil, fmt.Errorf("auth: the admin token in %s must be at least %d printable ASCII characters without whitespace (it has %d bytes); generate one with `openssl rand -hex 32`", file, minAdminTokenLen, len(token))
	}
	hash := tokenHash(token)
	return &hash, nil
}

// printable reports whether s is printable ASCII without whitespace, as
// every token is.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' })
}

// matches reports, in constant time, whether token is the admin token.
// Hashes are compared so that the time taken says nothing about the admin
// token's length either.
func (a *adminToken) matches(token string) bool {
	want := a.hash.Load()
	if want == nil {
		return false
	}
	got := tokenHash(token)
	return hashesEqual(got[:], want[:])
}

// watch re-reads the file every period until ctx ends. A file that
// cannot be read or holds no valid token disables the admin token until
// it is fixed.
func (a *adminToken) watch(ctx context.Context) {
	if a.file == "" {
		return
	}
	log := klog.FromContext(ctx).WithValues("file", a.file)
	t := time.NewTicker(a.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hash, err := readAdminToken(a.file)
		old := a.hash.Swap(hash)
		switch {
		case err != nil && old != nil:
			log.Error(err, "Admin token disabled")
		case err == nil && (old == nil || *old != *hash):
			log.Info("Admin token loaded")
		}
	}
}
