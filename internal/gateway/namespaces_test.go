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
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

// memTokens is an in-memory TokenStore (auth.Tokens is tested on its own).
type memTokens struct {
	mu   sync.Mutex
	recs map[string]auth.Record
}

func (m *memTokens) Create(_ context.Context, ns, token, desc string, meta json.RawMessage) (auth.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[ns]; ok {
		return auth.Record{}, auth.ErrTokenExists
	}
	if token == "" {
		token = "t-" + ns
	}
	rec := auth.Record{Namespace: ns, Token: token, Description: desc, Metadata: meta, CreatedAt: time.Now()}
	m.recs[ns] = rec
	return rec, nil
}

func (m *memTokens) Get(_ context.Context, ns string) (auth.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[ns]
	if !ok {
		return rec, auth.ErrNoToken
	}
	return rec, nil
}

func (m *memTokens) Delete(_ context.Context, ns string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, ns)
	return nil
}

func (m *memTokens) List(context.Context) ([]auth.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []auth.Record
	for _, r := range m.recs {
		out = append(out, r)
	}
	return out, nil
}

// TestNamespaces covers ns.create, ns.info, ns.streams, ns.categories,
// ns.list and ns.delete, and who may call them.
func TestNamespaces(t *testing.T) {
	g := newGateway(t, func(o *Options) { o.Tokens = &memTokens{recs: map[string]auth.Record{}} })
	id := "evo-" + rand.String(6)
	var created struct{ Namespace, Token, CreatedAt string }
	as := func(token string, out any, method string, args ...any) (int, []byte) {
		t.Helper()
		body, _ := json.Marshal(append([]any{method}, args...))
		status, resp := g.postAs(token, body)
		if out != nil && status == http.StatusOK {
			if err := json.Unmarshal(resp, out); err != nil {
				t.Fatal(err)
			}
		}
		return status, resp
	}
	if status, body := as(adminToken, &created, "ns.create", id, map[string]any{"description": "tenant"}); status != http.StatusOK || created.Namespace != id || created.Token == "" {
		t.Fatalf("ns.create: %d %s", status, body)
	}
	ns := &corev1.Namespace{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Name: id}, ns); err != nil || ns.Labels[CreatedByLabel] == "" {
		t.Fatalf("ns.create made no labelled Kubernetes namespace: %v %v", err, ns.Labels)
	}
	status, body := as(adminToken, nil, "ns.create", id)
	wantError(t, status, body, http.StatusConflict, CodeNamespaceExists)
	status, body = as(adminToken, nil, "ns.create", "Not_A_Name")
	wantError(t, status, body, http.StatusBadRequest, CodeInvalidRequest)
	// A namespace token manages no namespace, not even its own.
	status, body = as(created.Token, nil, "ns.delete", id)
	wantError(t, status, body, http.StatusForbidden, CodeAuthUnauthorized)
	status, body = as(g.token, nil, "ns.list")
	wantError(t, status, body, http.StatusForbidden, CodeAuthUnauthorized)

	for i, s := range []string{"account-1", "account-2", "account-2", "order-1"} {
		as(created.Token, nil, "stream.write", s, map[string]any{"type": "E", "data": map[string]any{"i": i}})
	}
	var info struct {
		Namespace, Description, CreatedAt string
		MessageCount, StreamCount         int64
		LastActivity                      *string
	}
	as(created.Token, &info, "ns.info", id)
	if info.Namespace != id || info.Description != "tenant" || info.MessageCount != 4 || info.StreamCount != 3 || info.LastActivity == nil {
		t.Fatalf("ns.info: %+v", info)
	}
	status, body = as(g.token, nil, "ns.info", id)
	wantError(t, status, body, http.StatusForbidden, CodeAuthUnauthorized)

	var streams []struct {
		Stream  string
		Version int64
	}
	as(created.Token, &streams, "ns.streams", map[string]any{"prefix": "account", "limit": 1})
	if len(streams) != 1 || streams[0].Stream != "account-1" || streams[0].Version != 0 {
		t.Fatalf("ns.streams prefix account limit 1: %+v", streams)
	}
	as(created.Token, &streams, "ns.streams", map[string]any{"cursor": "account-1"})
	if len(streams) != 2 || streams[0].Stream != "account-2" || streams[0].Version != 1 || streams[1].Stream != "order-1" {
		t.Fatalf("ns.streams after account-1: %+v", streams)
	}
	var cats []struct {
		Category                  string
		StreamCount, MessageCount int64
	}
	as(created.Token, &cats, "ns.categories")
	if fmt.Sprint(cats) != "[{account 2 3} {order 1 1}]" {
		t.Fatalf("ns.categories: %+v", cats)
	}
	var list []struct{ Namespace string }
	as(adminToken, &list, "ns.list")
	if !slices.ContainsFunc(list, func(n struct{ Namespace string }) bool { return n.Namespace == id }) {
		t.Fatalf("ns.list: %+v", list)
	}

	var deleted struct {
		Namespace       string
		MessagesDeleted int64
	}
	if status, body := as(adminToken, &deleted, "ns.delete", id); status != http.StatusOK || deleted.MessagesDeleted != 4 {
		t.Fatalf("ns.delete: %d %s", status, body)
	}
	esl := &jobstatev1alpha1.EventStreamList{}
	if err := env.Client.List(t.Context(), esl, client.InNamespace(id)); err != nil || len(esl.Items) != 0 {
		t.Fatalf("streams left after ns.delete: %d (%v)", len(esl.Items), err)
	}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Name: id}, ns); err == nil && ns.DeletionTimestamp == nil {
		t.Fatal("ns.delete left the Kubernetes namespace it created")
	}
	status, body = as(adminToken, nil, "ns.info", id)
	wantError(t, status, body, http.StatusNotFound, CodeNamespaceNotFound)
	status, body = as(adminToken, nil, "ns.delete", id)
	wantError(t, status, body, http.StatusNotFound, CodeNamespaceNotFound)

	// A namespace that existed before is adopted, and outlives ns.delete.
	as(adminToken, nil, "ns.create", g.ns)
	as(adminToken, nil, "ns.delete", g.ns)
	if err := env.Client.Get(t.Context(), client.ObjectKey{Name: g.ns}, ns); err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("ns.delete deleted a namespace it did not create: %v", err)
	}
}

// TestNamespacesNeedTokens: without a TokenStore, ns.create is a clear 503.
func TestNamespacesNeedTokens(t *testing.T) {
	g := newGateway(t)
	body, _ := json.Marshal([]any{"ns.create", "x"})
	status, out := g.postAs(adminToken, body)
	wantError(t, status, out, http.StatusServiceUnavailable, CodeBackendError)
}
