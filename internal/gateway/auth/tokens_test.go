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

package auth_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

func TestTokensLifecycle(t *testing.T) {
	ctx := t.Context()
	a := newAuthorizer(t, auth.Options{})
	tokens := a.Tokens()

	// Generated.
	before := time.Now()
	orders, err := tokens.Create(ctx, "orders", "", "the orders service", json.RawMessage(`{ "team": "shop" }`))
	if err != nil {
		t.Fatal(err)
	}
	if !tokenFormat.MatchString(orders.Token) || orders.Namespace != "orders" || orders.Description != "the orders service" ||
		string(orders.Metadata) != `{"team":"shop"}` || orders.CreatedAt.Before(before.Add(-time.Second)) || orders.CreatedAt.After(time.Now()) {
		t.Errorf("Create returned %+v", orders)
	}
	// Given.
	given, err := auth.NewToken("billing")
	if err != nil {
		t.Fatal(err)
	}
	billing, err := tokens.Create(ctx, "billing", given, "", nil)
	if err != nil || billing.Token != given || billing.Metadata != nil {
		t.Fatalf("Create with a given token = %+v, %v", billing, err)
	}
	// Refused.
	_, err = tokens.Create(ctx, "orders", "", "again", nil)
	checkRefusal(t, "", err, auth.ErrTokenExists, "", "Create twice")
	other, err := auth.NewToken("other")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tokens.Create(ctx, "shipping", other, "", nil)
	checkRefusal(t, "", err, auth.ErrInvalidToken, other, "Create with another namespace's token")
	_, err = tokens.Create(ctx, "shipping", "ns_garbage", "", nil)
	checkRefusal(t, "", err, auth.ErrInvalidToken, "", "Create with a malformed token")
	_, err = tokens.Create(ctx, "Shipping", "", "", nil)
	checkRefusal(t, "", err, auth.ErrInvalidNamespace, "", "Create for an invalid namespace")
	if _, err := tokens.Create(ctx, "shipping", "", "", json.RawMessage(`{"team":`)); err == nil {
		t.Error("Create with metadata that is not JSON succeeded")
	}
	if _, err := tokens.Get(ctx, "shipping"); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("a refused Create stored a token: Get = %v", err)
	}

	// Read back, without the tokens.
	got, err := tokens.Get(ctx, "orders")
	want := orders
	want.Token = ""
	if err != nil || !equalRecords(got, want) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, want)
	}
	list, err := tokens.List(ctx)
	wantBilling := billing
	wantBilling.Token = ""
	if err != nil || len(list) != 2 || !equalRecords(list[0], wantBilling) || !equalRecords(list[1], want) {
		t.Errorf("List = %+v, %v; want billing then orders", list, err)
	}
	_, err = tokens.Get(ctx, "shipping")
	checkRefusal(t, "", err, auth.ErrNoToken, "", "Get without a token")

	// Both work until deleted; a deleted one is refused once the watch
	// has delivered the deletion.
	eventuallyAllowed(t, a, orders.Token, "", auth.Write, "orders")
	eventuallyAllowed(t, a, billing.Token, "billing", auth.Read, "billing")
	if err := tokens.Delete(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted token to be refused", func() error {
		_, err := authorize(t, a, orders.Token, "", auth.Read)
		if !errors.Is(err, auth.ErrInvalidToken) {
			return errors.New("still accepted")
		}
		return nil
	})
	wantRefused(t, a, orders.Token, "orders", auth.Write, auth.ErrInvalidToken)
	wantAllowed(t, a, billing.Token, "", auth.Read, "billing")
	checkRefusal(t, "", tokens.Delete(ctx, "orders"), auth.ErrNoToken, "", "Delete twice")
	_, err = tokens.Get(ctx, "orders")
	checkRefusal(t, "", err, auth.ErrNoToken, "", "Get after Delete")
	if list, err := tokens.List(ctx); err != nil || len(list) != 1 || list[0].Namespace != "billing" {
		t.Errorf("List after Delete = %+v, %v", list, err)
	}

	// A new token replaces the deleted one; the old one stays refused.
	reissued, err := tokens.Create(ctx, "orders", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventuallyAllowed(t, a, reissued.Token, "orders", auth.Read, "orders")
	wantRefused(t, a, orders.Token, "orders", auth.Read, auth.ErrInvalidToken)
}

// equalRecords compares records, CreatedAt as an instant.
func equalRecords(a, b auth.Record) bool {
	return a.Namespace == b.Namespace && a.Token == b.Token && a.Description == b.Description &&
		string(a.Metadata) == string(b.Metadata) && a.CreatedAt.Equal(b.CreatedAt)
}

// The Secret holds the token's hash, and nothing from which the token
// could be read: not the token, not its secret part, in no encoding.
func TestTokensStoreNoPlaintext(t *testing.T) {
	ctx := t.Context()
	tokenNS := env.Namespace(t)
	a := newAuthorizer(t, auth.Options{TokenNamespace: tokenNS})
	rec, err := a.Tokens().Create(ctx, "orders", "", "described", json.RawMessage(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: tokenNS, Name: auth.SecretPrefix + "orders"}, secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != auth.SecretType || secret.Labels[auth.NamespaceLabel] != "orders" || secret.Annotations[auth.DescriptionAnnotation] != "described" ||
		secret.Annotations[auth.MetadataAnnotation] != `{"a":1}` {
		t.Errorf("the Secret is not labelled, typed and annotated as documented: %+v", secret.ObjectMeta)
	}
	if at, err := time.Parse(time.RFC3339Nano, secret.Annotations[auth.CreatedAtAnnotation]); err != nil || !at.Equal(rec.CreatedAt) {
		t.Errorf("createdAt annotation %q, want %v: %v", secret.Annotations[auth.CreatedAtAnnotation], rec.CreatedAt, err)
	}
	whole, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	secretPart := rec.Token[strings.LastIndexByte(rec.Token, '_')+1:]
	var fields []string
	fields = append(fields, string(whole))
	for _, v := range secret.Data {
		fields = append(fields, string(v))
	}
	for _, v := range secret.StringData {
		fields = append(fields, v)
	}
	for k, v := range secret.Annotations {
		fields = append(fields, k, v)
	}
	for k, v := range secret.Labels {
		fields = append(fields, k, v)
	}
	for _, leak := range []string{rec.Token, secretPart, base64.StdEncoding.EncodeToString([]byte(rec.Token)), base64.StdEncoding.EncodeToString([]byte(secretPart))} {
		for _, f := range fields {
			if strings.Contains(f, leak) {
				t.Fatalf("the Secret holds the token (or its secret part) in plain text: %q in %q", leak, f)
			}
		}
	}
	hash := sha256.Sum256([]byte(rec.Token))
	if len(secret.Data) != 1 || string(secret.Data["sha256"]) != hex.EncodeToString(hash[:]) {
		t.Errorf("Secret data = %q, want only the token's SHA-256 in hex", secret.Data)
	}
}

// TestTokenWorksAtOnce: a token works on the very next call after Create,
// before the watch has delivered its Secret to the cache (the client got it
// from ns.create and uses it right away, possibly on another replica).
func TestTokenWorksAtOnce(t *testing.T) {
	ctx := t.Context()
	a := newAuthorizer(t, auth.Options{})
	for i := range 20 {
		ns := fmt.Sprintf("at-once-%d", i)
		rec, err := a.Tokens().Create(ctx, ns, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		wantAllowed(t, a, rec.Token, "", auth.Write, ns)
	}
}
