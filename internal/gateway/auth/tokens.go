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
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"
)

// How a namespace token's Secret is named, labelled and annotated.
const (
	// SecretType is the type of every token Secret.
	SecretType corev1.SecretType = "jobstate.dev/eventodb-token"
	// SecretPrefix followed by the namespace is the name of its token's
	// Secret.
	SecretPrefix = "eventodb-token-"
	// NamespaceLabel holds the namespace a token Secret is for; the cache
	// watches only Secrets that have it.
	NamespaceLabel = "eventodb.jobstate.dev/namespace"
	// DescriptionAnnotation, CreatedAtAnnotation (RFC 3339 with
	// nanoseconds) and MetadataAnnotation (JSON) hold a Record's fields.
	DescriptionAnnotation = "eventodb.jobstate.dev/description"
	CreatedAtAnnotation   = "eventodb.jobstate.dev/created-at"
	MetadataAnnotation    = "eventodb.jobstate.dev/metadata"
	// hashKey is the data key of the token's SHA-256, in lowercase hex.
	hashKey = "sha256"
)

// Record is a namespace token as Tokens stores it.
type Record struct {
	// Namespace is the EventoDB (and Kubernetes) namespace of the token.
	Namespace string
	// Token is the token itself, set only in what Create returns: it is
	// not stored, and cannot be read back.
	Token string
	// Description is free text given to Create.
	Description string
	// Metadata is the JSON given to Create, nil when none was.
	Metadata json.RawMessage
	// CreatedAt is when Create stored it.
	CreatedAt time.Time
}

// Tokens stores namespace tokens as Secrets in one namespace, one Secret
// per EventoDB namespace. Its methods read and write the API server
// directly (no cache), so a Get sees the Create before it; Authorize
// verifies tokens from a watch-fed cache instead. Get it from
// Authorizer.Tokens.
type Tokens struct {
	// secrets are those of the token namespace.
	secrets corev1client.SecretInterface
	// cached reads the same Secrets from the Authorizer's informer.
	cached    corev1listers.SecretNamespaceLister
	namespace string
	clock     clock.PassiveClock
}

// secretName is the name of namespace's token Secret.
func secretName(namespace string) string { return SecretPrefix + namespace }

// Create stores a token for namespace and returns it, the only time the
// token can be read. With token "" it generates one; otherwise token must
// be a namespace token for namespace (EventoDB lets ns.create take the
// token to use). A namespace that has a token already gets an error
// matching ErrTokenExists. metadata must be JSON if it is not empty.
func (t *Tokens) Create(ctx context.Context, namespace, token, description string, metadata json.RawMessage) (Record, error) {
	// Step 1. The namespace names the Secret and the label: it must be
	// one, and the token must name it, or the token would never verify.
	if err := validateNamespace(namespace); err != nil {
		return Record{}, err
	}
	if token == "" {
		var err error
		if token, err = NewToken(namespace); err != nil {
			return Record{}, err
		}
	} else if ns, err := ParseToken(token); err != nil {
		return Record{}, err
	} else if ns != namespace {
		return Record{}, &Error{Kind: ErrInvalidToken, Namespace: namespace,
			Reason: fmt.Sprintf("the token given for namespace %s names namespace %s; give one that names %s, or none to have one generated", namespace, ns, namespace)}
	}
	// Step 2. Metadata is stored compacted, so that what Get returns is
	// what was given, byte for byte up to whitespace.
	var compact []byte
	if len(metadata) > 0 {
		var b bytes.Buffer
		if err := json.Compact(&b, metadata); err != nil {
			return Record{}, fmt.Errorf("auth: the metadata of namespace %s's token is not JSON: %w", namespace, err)
		}
		compact = b.Bytes()
	}
	// Step 3. Only the hash is written: a reader of the Secret learns
	// nothing that lets it act as the token.
	now := t.clock.Now().UTC()
	hash := tokenHash(token)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        secretName(namespace),
			Namespace:   t.namespace,
			Labels:      map[string]string{NamespaceLabel: namespace},
			Annotations: map[string]string{DescriptionAnnotation: description, CreatedAtAnnotation: now.Format(time.RFC3339Nano)},
		},
		Type: SecretType,
		Data: map[string][]byte{hashKey: []byte(hex.EncodeToString(hash[:]))},
	}
	if compact != nil {
		secret.Annotations[MetadataAnnotation] = string(compact)
	}
	// Step 4. Create, never update: one token per namespace, and an
	// existing one is replaced only by deleting it first.
	if _, err := t.secrets.Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return Record{}, &Error{Kind: ErrTokenExists, Namespace: namespace,
				Reason: fmt.Sprintf("namespace %s has a token already (Secret %s/%s); delete it first to issue another", namespace, t.namespace, secret.Name)}
		}
		return Record{}, fmt.Errorf("auth: storing the token of namespace %s as Secret %s/%s: %w", namespace, t.namespace, secret.Name, err)
	}
	return Record{Namespace: namespace, Token: token, Description: description, Metadata: json.RawMessage(compact), CreatedAt: now}, nil
}

// Get returns namespace's token record, without the token. A namespace
// without one gets an error matching ErrNoToken.
func (t *Tokens) Get(ctx context.Context, namespace string) (Record, error) {
	if err := validateNamespace(namespace); err != nil {
		return Record{}, err
	}
	secret, err := t.secrets.Get(ctx, secretName(namespace), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Record{}, t.noToken(namespace)
	}
	if err != nil {
		return Record{}, fmt.Errorf("auth: reading the token of namespace %s: %w", namespace, err)
	}
	if !isTokenSecret(secret, namespace) {
		return Record{}, fmt.Errorf("auth: Secret %s/%s is not a token Secret of this package (type %s, label %s=%q); rename or delete it", secret.Namespace, secret.Name, SecretType, NamespaceLabel, namespace)
	}
	return record(secret), nil
}

// Delete deletes namespace's token: Authorize refuses it once its cache
// has seen the deletion. A namespace without a token gets an error
// matching ErrNoToken.
func (t *Tokens) Delete(ctx context.Context, namespace string) error {
	if err := validateNamespace(namespace); err != nil {
		return err
	}
	err := t.secrets.Delete(ctx, secretName(namespace), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return t.noToken(namespace)
	}
	if err != nil {
		return fmt.Errorf("auth: deleting the token of namespace %s: %w", namespace, err)
	}
	return nil
}

// List returns every token record, without the tokens, by namespace.
func (t *Tokens) List(ctx context.Context) ([]Record, error) {
	list, err := t.secrets.List(ctx, listOptions())
	if err != nil {
		return nil, fmt.Errorf("auth: listing tokens in namespace %s: %w", t.namespace, err)
	}
	var records []Record
	for i := range list.Items {
		s := &list.Items[i]
		if isTokenSecret(s, s.Labels[NamespaceLabel]) {
			records = append(records, record(s))
		}
	}
	slices.SortFunc(records, func(a, b Record) int { return strings.Compare(a.Namespace, b.Namespace) })
	return records, nil
}

// listOptions select token Secrets: the label, and the type.
func listOptions() metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: NamespaceLabel, FieldSelector: "type=" + string(SecretType)}
}

// storedHash returns the hash in namespace's token Secret, from the cache
// or (live) from the API server, or an error matching ErrInvalidToken when
// there is none.
func (t *Tokens) storedHash(ctx context.Context, namespace string, live bool) ([]byte, error) {
	var secret *corev1.Secret
	var err error
	if live {
		secret, err = t.secrets.Get(ctx, secretName(namespace), metav1.GetOptions{})
	} else {
		secret, err = t.cached.Get(secretName(namespace))
	}
	if apierrors.IsNotFound(err) {
		return nil, &Error{Kind: ErrInvalidToken, Namespace: namespace,
			Reason: fmt.Sprintf("namespace %s has no token (never issued, or revoked); ask an admin for a new one (ns.create)", namespace)}
	}
	if err != nil {
		return nil, fmt.Errorf("auth: reading the token of namespace %s: %w", namespace, err)
	}
	hash, err := hex.DecodeString(string(secret.Data[hashKey]))
	if err != nil || len(hash) != sha256.Size || !isTokenSecret(secret, namespace) {
		return nil, &Error{Kind: ErrInvalidToken, Namespace: namespace,
			Reason: fmt.Sprintf("the token Secret %s/%s of namespace %s is damaged; delete it and issue a new token", secret.Namespace, secret.Name, namespace)}
	}
	return hash, nil
}

// noToken is the error for a namespace without a token.
func (t *Tokens) noToken(namespace string) error {
	return &Error{Kind: ErrNoToken, Namespace: namespace,
		Reason: fmt.Sprintf("namespace %s has no token (no Secret %s/%s)", namespace, t.namespace, secretName(namespace))}
}

// isTokenSecret reports whether secret is namespace's token Secret.
func isTokenSecret(secret *corev1.Secret, namespace string) bool {
	return secret.Type == SecretType && secret.Name == secretName(namespace) && secret.Labels[NamespaceLabel] == namespace
}

// record is secret as a Record. A creation time that does not parse (the
// annotation edited by hand) is the Secret's own.
func record(secret *corev1.Secret) Record {
	r := Record{
		Namespace:   secret.Labels[NamespaceLabel],
		Description: secret.Annotations[DescriptionAnnotation],
		CreatedAt:   secret.CreationTimestamp.UTC(),
	}
	if m, ok := secret.Annotations[MetadataAnnotation]; ok {
		r.Metadata = json.RawMessage(m)
	}
	if at, err := time.Parse(time.RFC3339Nano, secret.Annotations[CreatedAtAnnotation]); err == nil {
		r.CreatedAt = at
	}
	return r
}
