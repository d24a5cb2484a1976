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
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// A namespace token is tokenPrefix, the namespace in base64url without
// padding, "_", and secretBytes random bytes in lowercase hex. The
// namespace encoding may itself contain "_", the hex part never does: the
// last "_" separates them.
const (
	tokenPrefix = "ns_"
	secretBytes = 32
	// maxTokenLen bounds what ParseToken decodes: the prefix, a 63-byte
	// namespace in base64 (84 characters), "_" and the hex secret.
	maxTokenLen = len(tokenPrefix) + 84 + 1 + 2*secretBytes
)

// namespaceEncoding is strict so that a namespace has exactly one
// encoding, and a token exactly one spelling.
var namespaceEncoding = base64.RawURLEncoding.Strict()

// NewToken returns a new namespace token for namespace, with 256 bits from
// crypto/rand.
func NewToken(namespace string) (string, error) {
	if err := validateNamespace(namespace); err != nil {
		return "", err
	}
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("auth: reading random bytes for a token: %w", err)
	}
	return tokenPrefix + namespaceEncoding.EncodeToString([]byte(namespace)) + "_" + hex.EncodeToString(secret), nil
}

// ParseToken returns the namespace a namespace token names. An error
// matching ErrInvalidToken says what is malformed. It checks the format
// only: whether the token was issued is for Authorize.
func ParseToken(token string) (namespace string, err error) {
	invalid := func(reason string) error {
		return &Error{Kind: ErrInvalidToken, Reason: "malformed namespace token: " + reason + `; a namespace token is "ns_<base64url namespace>_<64 hex digits>", as ns.create returned it`}
	}
	if !strings.HasPrefix(token, tokenPrefix) {
		return "", invalid(`it does not start with "ns_"`)
	}
	if len(token) > maxTokenLen {
		return "", invalid("it is too long")
	}
	rest := token[len(tokenPrefix):]
	sep := strings.LastIndexByte(rest, '_')
	if sep < 0 {
		return "", invalid(`no "_" after the namespace`)
	}
	encoded, secret := rest[:sep], rest[sep+1:]
	if len(secret) != 2*secretBytes || strings.Trim(secret, "0123456789abcdef") != "" {
		return "", invalid("the part after the namespace is not 64 lowercase hex digits")
	}
	ns, err := namespaceEncoding.DecodeString(encoded)
	if err != nil {
		return "", invalid("the namespace is not base64url without padding")
	}
	if validateNamespace(string(ns)) != nil {
		return "", invalid("it does not name a valid namespace")
	}
	return string(ns), nil
}

// validateNamespace checks that namespace is a Kubernetes namespace name:
// an EventoDB namespace is one.
func validateNamespace(namespace string) error {
	if problem := namespaceProblem(namespace); problem != "" {
		return &Error{Kind: ErrInvalidNamespace, Namespace: namespace, Reason: problem}
	}
	return nil
}

// namespaceProblem says what makes namespace no namespace name, "" if
// nothing does.
func namespaceProblem(namespace string) string {
	errs := validation.IsDNS1123Label(namespace)
	if len(errs) == 0 {
		return ""
	}
	return fmt.Sprintf("%q is not a Kubernetes namespace name (%s); use lowercase letters, digits and '-'", namespace, strings.Join(errs, "; "))
}

// tokenHash is what a Secret stores of a token, and what the admin token
// is kept as.
func tokenHash(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// hashesEqual compares in constant time.
func hashesEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
