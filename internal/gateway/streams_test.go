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
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// TestSeedFlow runs the seed's optimistic-locking flow over HTTP: version
// null, write with expectedVersion -1, a stale write refused with EventoDB's
// exact conflict, then a write at the current version.
func TestSeedFlow(t *testing.T) {
	g := newGateway(t)
	var version *int64
	g.ok(&version, "stream.version", "account-123")
	if version != nil {
		t.Fatalf("stream.version of a new stream = %d, want null", *version)
	}
	pos, gp := g.write("account-123", "Deposited", map[string]any{"amount": 100}, map[string]any{"expectedVersion": -1})
	if pos != 0 || gp <= 0 {
		t.Fatalf("first write at position %d, global %d; want 0 and > 0", pos, gp)
	}
	g.write("account-123", "Deposited", map[string]any{"amount": 50}, map[string]any{"expectedVersion": 0})
	g.write("account-123", "Withdrawn", map[string]any{"amount": 30}, nil)

	status, body := g.call("stream.write", "account-123", map[string]any{"type": "Deposited", "data": map[string]any{"amount": 1}}, map[string]any{"expectedVersion": 1})
	e := wantError(t, status, body, http.StatusConflict, CodeStreamVersionConflict)
	if e.Message != "Expected version 1, stream is at version 2" {
		t.Errorf("conflict message %q", e.Message)
	}
	if e.Details["expected"] != float64(1) || e.Details["actual"] != float64(2) {
		t.Errorf("conflict details %v, want expected 1, actual 2", e.Details)
	}
	g.ok(&version, "stream.version", "account-123")
	if version == nil || *version != 2 {
		t.Fatalf("version after the conflict = %v, want 2", version)
	}

	var rows []row
	g.ok(&rows, "stream.get", "account-123")
	balance := 0
	for i, r := range rows {
		var d struct{ Amount int }
		if err := json.Unmarshal(r.Data, &d); err != nil {
			t.Fatal(err)
		}
		if r.Type == "Withdrawn" {
			d.Amount = -d.Amount
		}
		balance += d.Amount
		if r.Position != int64(i) || len(r.Metadata) != 0 || r.Time == "" || r.ID == "" {
			t.Errorf("row %d: %+v", i, r)
		}
		if i > 0 && r.GlobalPosition <= rows[i-1].GlobalPosition {
			t.Errorf("global positions not increasing: %d after %d", r.GlobalPosition, rows[i-1].GlobalPosition)
		}
	}
	if len(rows) != 3 || balance != 120 || rows[0].GlobalPosition != gp {
		t.Fatalf("stream.get: %d rows, balance %d, first global %d (write said %d); want 3, 120", len(rows), balance, rows[0].GlobalPosition, gp)
	}
}

// TestConcurrentDeposits is the seed's concurrent simulation over HTTP: two
// deposits read the same version; exactly one is stored.
func TestConcurrentDeposits(t *testing.T) {
	g := newGateway(t)
	g.write("concurrent-test", "AccountOpened", map[string]any{"balance": 0}, nil)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Go(func() {
			statuses[i], _ = g.call("stream.write", "concurrent-test", map[string]any{"type": "Deposited", "data": map[string]any{"amount": 100}}, map[string]any{"expectedVersion": 0})
		})
	}
	wg.Wait()
	slices.Sort(statuses)
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusConflict {
		t.Fatalf("statuses %v, want one 200 and one 409", statuses)
	}
	var rows []row
	g.ok(&rows, "stream.get", "concurrent-test")
	if len(rows) != 2 {
		t.Fatalf("%d events stored, want 2 (opened, one deposit)", len(rows))
	}
}

// TestHotStream: 16 HTTP clients × 100 writes to one stream get positions
// 0..1599, each exactly once, and the stream holds exactly those.
func TestHotStream(t *testing.T) {
	const clients, writes = 16, 100
	g := newGateway(t)
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range writes {
				id := uuid.NewString()
				var res writeResult
				g.ok(&res, "stream.write", "hot-1", map[string]any{"type": "Tick", "data": map[string]any{"c": c, "i": i}}, map[string]any{"id": id})
				mu.Lock()
				if prev, dup := seen[res.Position]; dup {
					t.Errorf("position %d returned twice (%s, %s)", res.Position, prev, id)
				}
				seen[res.Position] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var rows []row
	g.ok(&rows, "stream.get", "hot-1", map[string]any{"batchSize": -1})
	if len(seen) != clients*writes || len(rows) != clients*writes {
		t.Fatalf("%d positions returned, %d stored; want %d", len(seen), len(rows), clients*writes)
	}
	for i, r := range rows {
		if r.Position != int64(i) || seen[r.Position] != r.ID {
			t.Fatalf("row %d: position %d id %s; the write for that position returned id %s", i, r.Position, r.ID, seen[r.Position])
		}
	}
}

// TestDuplicateID: writing a message whose id is stored returns its
// original position and stores nothing (EventoDB answers 500).
func TestDuplicateID(t *testing.T) {
	g := newGateway(t)
	id := uuid.NewString()
	p1, gp1 := g.write("order-1", "Placed", map[string]any{}, map[string]any{"id": id})
	g.write("order-1", "Paid", map[string]any{}, nil)
	p2, gp2 := g.write("order-1", "Placed", map[string]any{}, map[string]any{"id": id})
	if p1 != p2 || gp1 != gp2 {
		t.Fatalf("retry got position %d/%d, want the original %d/%d", p2, gp2, p1, gp1)
	}
	var v int64
	g.ok(&v, "stream.version", "order-1")
	if v != 1 {
		t.Fatalf("version %d after a retried write, want 1", v)
	}
}

// TestStreamNames: any EventoDB name works, each is its own stream, and its
// EventStream keeps the original, which `kubectl get es` shows.
func TestStreamNames(t *testing.T) {
	g := newGateway(t)
	names := []string{"account-123", "Account:Orders+x", "account:orders+x", "konto-über", "a.b", "s", strings.Repeat("x", 300), "💸-1"}
	for i, n := range names {
		if p, _ := g.write(n, "Named", map[string]any{"i": i}, nil); p != 0 {
			t.Fatalf("first write to %q at position %d: another name shares its stream", n, p)
		}
	}
	for i, n := range names {
		var rows []row
		g.ok(&rows, "stream.get", n)
		if len(rows) != 1 || string(rows[0].Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("stream %q: %d rows %v", n, len(rows), rows)
		}
		es := &jobstatev1alpha1.EventStream{}
		if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: g.ns, Name: objectName(n)}, es); err != nil {
			t.Fatal(err)
		}
		if es.Annotations[StreamAnnotation] != n {
			t.Errorf("EventStream %s records stream name %q, want %q", es.Name, es.Annotations[StreamAnnotation], n)
		}
	}
	// kubectl get es shows the names as written.
	kubeconfig, err := env.KubeConfig("developer")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(testenv.AssetsDir(), "kubectl"), "--kubeconfig", path, "get", "es", "-n", g.ns).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get es: %v\n%s", err, out)
	}
	for _, n := range names {
		if !strings.Contains(string(out), n) {
			t.Errorf("kubectl get es does not show stream %q:\n%s", n, out)
		}
	}
}

// TestBatchWrite: several messages in one stream.write are stored together
// at consecutive positions (an extension).
func TestBatchWrite(t *testing.T) {
	g := newGateway(t)
	msgs := []any{
		map[string]any{"type": "A", "data": map[string]any{}},
		map[string]any{"type": "B", "data": map[string]any{}, "metadata": map[string]any{"k": "v"}, "id": uuid.NewString()},
	}
	var res writeResult
	g.ok(&res, "stream.write", "batch-1", msgs, map[string]any{"expectedVersion": -1})
	if !slices.Equal(res.Positions, []int64{0, 1}) || res.Position != 1 || len(res.GlobalPositions) != 2 || res.GlobalPositions[1] != res.GlobalPosition || res.GlobalPositions[1] != res.GlobalPositions[0]+1 {
		t.Fatalf("batch result %+v", res)
	}
	status, body := g.call("stream.write", "batch-1", msgs[:1], map[string]any{"expectedVersion": -1})
	wantError(t, status, body, http.StatusConflict, CodeStreamVersionConflict)
	// The same batch again is a retry (its second id is stored at 1 with a
	// different first event): refused, with where.
	status, body = g.call("stream.write", "batch-1", msgs)
	if e := wantError(t, status, body, http.StatusBadRequest, CodeInvalidRequest); !strings.Contains(e.Message, "already stored at position 1") {
		t.Errorf("partial retry: %q", e.Message)
	}
	// One bad message stores none.
	status, body = g.call("stream.write", "batch-1", []any{map[string]any{"type": "C", "data": map[string]any{}}, map[string]any{"type": "", "data": map[string]any{}}})
	wantError(t, status, body, http.StatusBadRequest, CodeInvalidRequest)
	var v int64
	g.ok(&v, "stream.version", "batch-1")
	if v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
}

// TestStreamLast covers stream.last with and without a type.
func TestStreamLast(t *testing.T) {
	g := newGateway(t)
	var last *row
	g.ok(&last, "stream.last", "none-1")
	if last != nil {
		t.Fatalf("stream.last of no stream = %+v, want null", last)
	}
	for _, typ := range []string{"A", "B", "A", "C"} {
		g.write("last-1", typ, map[string]any{"t": typ}, nil)
	}
	g.ok(&last, "stream.last", "last-1")
	if last == nil || last.Position != 3 || last.Type != "C" {
		t.Fatalf("stream.last = %+v, want position 3 type C", last)
	}
	g.ok(&last, "stream.last", "last-1", map[string]any{"type": "A"})
	if last == nil || last.Position != 2 {
		t.Fatalf("stream.last type A = %+v, want position 2", last)
	}
	g.ok(&last, "stream.last", "last-1", map[string]any{"type": "Z"})
	if last != nil {
		t.Fatalf("stream.last type Z = %+v, want null", last)
	}
}

// TestStreamGetOptions covers position, globalPosition and batchSize.
func TestStreamGetOptions(t *testing.T) {
	g := newGateway(t)
	var gps []int64
	for i := range 10 {
		_, gp := g.write("get-1", "E", map[string]any{"i": i}, nil)
		gps = append(gps, gp)
	}
	var rows []row
	g.ok(&rows, "stream.get", "get-1", map[string]any{"position": 4, "batchSize": 3})
	if len(rows) != 3 || rows[0].Position != 4 || rows[2].Position != 6 {
		t.Fatalf("position 4 batch 3: %v", rows)
	}
	g.ok(&rows, "stream.get", "get-1", map[string]any{"globalPosition": gps[7]})
	if len(rows) != 3 || rows[0].Position != 7 || rows[0].GlobalPosition != gps[7] {
		t.Fatalf("from global %d: %v", gps[7], rows)
	}
	g.ok(&rows, "stream.get", "nothing-here")
	if rows == nil || len(rows) != 0 {
		t.Fatalf("stream.get of no stream = %v, want []", rows)
	}
}

// TestTwoReplicas: two gateways (two replicas, each with its own
// stream.Client) writing one stream at once are correct together: 2 × 8
// clients × 25 writes get positions 0..399, each once.
func TestTwoReplicas(t *testing.T) {
	const perReplica, writes = 8, 25
	a := newGateway(t)
	b := newGateway(t)
	b.ns, b.token = a.ns, a.token // the same namespace through another replica
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for _, g := range []*gw{a, b} {
		for range perReplica {
			wg.Go(func() {
				for range writes {
					var res writeResult
					g.ok(&res, "stream.write", "shared-1", map[string]any{"type": "E", "data": map[string]any{}})
					mu.Lock()
					if seen[res.Position] {
						t.Errorf("position %d returned twice", res.Position)
					}
					seen[res.Position] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	var v int64
	a.ok(&v, "stream.version", "shared-1")
	if want := 2 * perReplica * writes; len(seen) != want || v != int64(want-1) {
		t.Fatalf("%d positions returned, version %d; want %d and %d", len(seen), v, want, want-1)
	}
}
