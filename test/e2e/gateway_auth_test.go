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

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// TestGatewayAuth: cmd/gateway, as its ServiceAccount with config/default's
// RBAC, admits exactly what each token may do. A pod's ServiceAccount token
// acts in its own namespace as RBAC allows (403 without a binding, 403 in
// another namespace); a namespace token is confined to its namespace,
// manages no namespace, and stops working when ns.delete revokes it.
func TestGatewayAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	g := runGateway(ctx, t)
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	writer, reader, nobody := saToken(ctx, t, nsA, "writer", "jobstate-eventstream-editor-role"),
		saToken(ctx, t, nsA, "reader", "jobstate-eventstream-viewer-role"), saToken(ctx, t, nsA, "nobody", "")
	msg := map[string]any{"type": "Opened", "data": map[string]any{}}

	// Kubernetes tokens: RBAC decides (the cache TTL is 1s: wait out a
	// denial cached before the RoleBinding took effect).
	waitStatus(ctx, t, http.StatusOK, func() (int, string) { return rpc(ctx, t, g.url, writer, "", nil, "stream.write", "account-1", msg) })
	waitStatus(ctx, t, http.StatusOK, func() (int, string) { return rpc(ctx, t, g.url, reader, "", nil, "stream.get", "account-1") })
	for _, c := range []struct {
		name, token, ns, method string
		want                    int
	}{
		{"a reader cannot write", reader, "", "stream.write", http.StatusForbidden},
		{"no RBAC, no read", nobody, "", "stream.get", http.StatusForbidden},
		{"not in another namespace", writer, nsB, "stream.write", http.StatusForbidden},
		{"no token", "", "", "stream.get", http.StatusUnauthorized},
		{"a forged token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "", "stream.get", http.StatusUnauthorized},
	} {
		args := []any{"account-1"}
		if c.method == "stream.write" {
			args = append(args, msg)
		}
		if status, body := rpc(ctx, t, g.url, c.token, c.ns, nil, c.method, args...); status != c.want {
			t.Errorf("%s: %s answered %d %s, want %d", c.name, c.method, status, body, c.want)
		}
	}

	// Namespace tokens: confined to their namespace.
	tokenA, tokenB := g.createToken(ctx, t, nsA), g.createToken(ctx, t, nsB)
	var version int64
	if status, body := rpc(ctx, t, g.url, tokenA, "", &version, "stream.version", "account-1"); status != http.StatusOK || version != 0 {
		t.Fatalf("namespace token A reads its stream: %d %s", status, body)
	}
	rpc(ctx, t, g.url, tokenB, "", nil, "stream.write", "secret-1", msg)
	var rows []any
	if status, body := rpc(ctx, t, g.url, tokenA, "", &rows, "category.get", ""); status != http.StatusOK || len(rows) != 1 {
		t.Errorf("token A's category.get \"\" sees %d messages (%d %s), want its own 1", len(rows), status, body)
	}
	for _, c := range []struct {
		name, ns, method string
		args             []any
		want             int
	}{
		{"another namespace's stream", nsB, "stream.get", []any{"secret-1"}, http.StatusForbidden},
		{"writing there", nsB, "stream.write", []any{"secret-1", msg}, http.StatusForbidden},
		{"its info", "", "ns.info", []any{nsB}, http.StatusForbidden},
		{"deleting it", "", "ns.delete", []any{nsB}, http.StatusForbidden},
		{"listing namespaces", "", "ns.list", nil, http.StatusForbidden},
		{"making one", "", "ns.create", []any{"evil-" + nsA}, http.StatusForbidden},
	} {
		if status, body := rpc(ctx, t, g.url, tokenA, c.ns, nil, c.method, c.args...); status != c.want {
			t.Errorf("token A, %s: %s answered %d %s, want %d", c.name, c.method, status, body, c.want)
		}
	}
	if status, body := rpc(ctx, t, g.url, tokenB, "", &rows, "stream.get", "secret-1"); status != http.StatusOK || len(rows) != 1 {
		t.Errorf("B's stream after A's attempts: %d %s", status, body)
	}

	// Revoked by ns.delete: the token stops working (a watch removes it
	// from the gateway's cache).
	if status, body := rpc(ctx, t, g.url, g.admin, "", nil, "ns.delete", nsB); status != http.StatusOK {
		t.Fatalf("ns.delete: %d %s", status, body)
	}
	waitStatus(ctx, t, http.StatusUnauthorized, func() (int, string) { return rpc(ctx, t, g.url, tokenB, "", nil, "stream.version", "secret-1") })

	// The gateway deletes a namespace its ns.create made, and no other
	// (config/admission's gateway-namespaces policy): not even with its
	// own credentials directly.
	made := "made-" + nsA
	g.createToken(ctx, t, made)
	if status, body := rpc(ctx, t, g.url, g.admin, "", nil, "ns.delete", made); status != http.StatusOK {
		t.Fatalf("ns.delete %s: %d %s", made, status, body)
	}
	gone := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: made}, gone); err == nil && gone.DeletionTimestamp == nil {
		t.Errorf("ns.delete left namespace %s, which ns.create made", made)
	}
	cfg, err := env.ConfigFor(gatewayUser)
	if err != nil {
		t.Fatal(err)
	}
	asGateway, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	victim := &corev1.Namespace{}
	victim.Name = nsA
	if err := asGateway.Delete(ctx, victim); err == nil || !strings.Contains(err.Error(), "the gateway may delete only the namespaces its ns.create made") {
		t.Errorf("the gateway's identity deleting namespace %s: %v, want the policy's refusal", nsA, err)
	}
}

// saToken makes a ServiceAccount in ns bound to config/default's
// clusterRole there (none if ""), and returns a token for it from the
// TokenRequest API.
func saToken(ctx context.Context, t *testing.T, ns, name, clusterRole string) string {
	t.Helper()
	boundServiceAccount(ctx, t, ns, name, clusterRole)
	return serviceAccountToken(ctx, t, ns, name)
}

// waitStatus calls until the status is want, for up to 15s.
func waitStatus(ctx context.Context, t *testing.T, want int, call func() (int, string)) {
	t.Helper()
	var status int
	var body string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		status, body = call()
		return status == want, nil
	})
	if err != nil {
		t.Fatalf("status %d %s, want %d", status, body, want)
	}
}

// TestGatewaySubscribe: cmd/gateway's GET /subscribe, following its
// manager's informer, pokes once for each write, in order, from the
// history on and then live.
func TestGatewaySubscribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g := runGateway(ctx, t)
	ns := env.Namespace(t)
	token := g.createToken(ctx, t, ns)
	msg := map[string]any{"type": "Tick", "data": map[string]any{}}
	if status, body := rpc(ctx, t, g.url, token, "", nil, "stream.write", "ticks-1", msg); status != http.StatusOK {
		t.Fatalf("stream.write: %d %s", status, body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/subscribe?stream=ticks-1&position=0&token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /subscribe: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for range 4 {
		if status, body := rpc(ctx, t, g.url, token, "", nil, "stream.write", "ticks-1", msg); status != http.StatusOK {
			t.Fatalf("stream.write: %d %s", status, body)
		}
	}
	scanner := bufio.NewScanner(resp.Body)
	var positions []int64
	for len(positions) < 5 && scanner.Scan() {
		data, ok := strings.CutPrefix(scanner.Text(), "data: ")
		if !ok {
			continue
		}
		var poke struct {
			Stream   string
			Position int64
		}
		if err := json.Unmarshal([]byte(data), &poke); err != nil || poke.Stream != "ticks-1" {
			t.Fatalf("poke %q: %v", data, err)
		}
		positions = append(positions, poke.Position)
	}
	if !slices.Equal(positions, []int64{0, 1, 2, 3, 4}) {
		t.Fatalf("pokes for positions %v, want 0..4 once each, in order (%v)", positions, scanner.Err())
	}
}

// TestGatewaySeals: the gateway's ServiceAccount may seal (config/admission
// names it): 90 messages in three writes fill the head past its sealing
// size, the gateway seals it into segments itself, and stream.get still
// reads all 90 in order.
func TestGatewaySeals(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g := runGateway(ctx, t)
	ns := env.Namespace(t)
	token := g.createToken(ctx, t, ns)
	for range 3 {
		batch := make([]any, 30)
		for i := range batch {
			batch[i] = map[string]any{"type": "Tick", "data": map[string]any{}}
		}
		if status, body := rpc(ctx, t, g.url, token, "", nil, "stream.write", "sealed-1", batch); status != http.StatusOK {
			t.Fatalf("stream.write of 30: %d %s", status, body)
		}
	}
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sealed-1"}, es); err != nil {
		t.Fatal(err)
	}
	if es.Head == nil || es.Head.First == 0 {
		t.Fatalf("the head was not sealed: %+v", es.Head)
	}
	var rows [][]any
	if status, body := rpc(ctx, t, g.url, token, "", &rows, "stream.get", "sealed-1"); status != http.StatusOK || len(rows) != 90 {
		t.Fatalf("stream.get: %d rows (%d %s), want 90", len(rows), status, body)
	}
	for i, r := range rows {
		if r[2] != float64(i) {
			t.Fatalf("row %d is at position %v", i, r[2])
		}
	}
}
