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
	"net/http"
	"regexp"
	"testing"
)

// TestSDKSpec runs the cases of EventoDB's SDK test specification
// (docs/SDK-TEST-SPEC.md in eventodb-hq/eventodb) that the other tests of
// this package do not already cover, by their ids, against the gateway.
func TestSDKSpec(t *testing.T) {
	g := newGateway(t)
	roundTrip := func(t *testing.T, stream string, data, meta any) row {
		t.Helper()
		msg := map[string]any{"type": "TestEvent", "data": data}
		if meta != nil {
			msg["metadata"] = meta
		}
		g.ok(nil, "stream.write", stream, msg)
		var rows []row
		g.ok(&rows, "stream.get", stream)
		if len(rows) != 1 {
			t.Fatalf("%d rows", len(rows))
		}
		return rows[0]
	}
	sameJSON := func(t *testing.T, got json.RawMessage, want string) {
		t.Helper()
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(want), &b); err != nil {
			t.Fatal(err)
		}
		ga, _ := json.Marshal(a)
		gb, _ := json.Marshal(b)
		if string(ga) != string(gb) {
			t.Errorf("read back %s, wrote %s", got, want)
		}
	}
	t.Run("WRITE-009 null metadata", func(t *testing.T) {
		g.ok(nil, "stream.write", "w9-1", map[string]any{"type": "TestEvent", "data": map[string]any{"x": 1}, "metadata": nil})
		var rows []json.RawMessage
		g.ok(&rows, "stream.get", "w9-1")
		var cols []json.RawMessage
		if err := json.Unmarshal(rows[0], &cols); err != nil || string(cols[5]) != "null" {
			t.Fatalf("metadata column %s (%v), want null", cols[5], err)
		}
	})
	for id, data := range map[string]string{
		"READ-008 data integrity": `{"nested":{"array":[1,2,3],"bool":true,"null":null}}`,
		"ENCODING-001 UTF-8":      `{"text":"Hello 世界 🌍 émojis"}`,
		"ENCODING-004 empty":      `{"emptyString":""}`,
		"ENCODING-005 booleans":   `{"isTrue":true,"isFalse":false}`,
		"ENCODING-006 null":       `{"nullValue":null}`,
		"ENCODING-007 numbers":    `{"integer":42,"float":3.14159,"negative":-100,"zero":0}`,
		"ENCODING-008 nested":     `{"level1":{"level2":{"level3":{"value":"deep"}}}}`,
		"ENCODING-009 arrays":     `{"items":[1,"two",{"three":3},null,true]}`,
	} {
		t.Run(id, func(t *testing.T) {
			r := roundTrip(t, "enc-"+id, json.RawMessage(data), nil)
			sameJSON(t, r.Data, data)
		})
	}
	t.Run("ENCODING-002 unicode metadata", func(t *testing.T) {
		r := roundTrip(t, "enc2-1", map[string]any{}, json.RawMessage(`{"description":"Test 测试 🎉"}`))
		sameJSON(t, r.Metadata, `{"description":"Test 测试 🎉"}`)
	})
	t.Run("READ-010 time format", func(t *testing.T) {
		r := roundTrip(t, "time-1", map[string]any{}, nil)
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`).MatchString(r.Time) {
			t.Errorf("time %q is not RFC 3339 in UTC", r.Time)
		}
	})
	t.Run("ENCODING-003 EDGE-004 names", func(t *testing.T) {
		for _, name := range []string{"test-stream_123.abc", "a", "stream-with-many-dashes", "stream123", "UPPERCASE"} {
			if p, _ := g.write(name, "E", map[string]any{}, nil); p != 0 {
				t.Errorf("%s: first write at %d", name, p)
			}
		}
	})
	t.Run("EDGE-003 EDGE-006 batch sizes and positions", func(t *testing.T) {
		for range 5 {
			g.write("edge-1", "E", map[string]any{}, nil)
		}
		var rows []row
		g.ok(&rows, "stream.get", "edge-1", map[string]any{"batchSize": 1000000})
		if len(rows) != 5 {
			t.Errorf("batchSize 1000000: %d rows, want 5 (capped, not refused)", len(rows))
		}
		g.ok(&rows, "stream.get", "edge-1", map[string]any{"position": 100})
		if len(rows) != 0 {
			t.Errorf("position past the end: %d rows, want 0", len(rows))
		}
	})
	t.Run("EDGE-007 EDGE-008 expected versions of a new stream", func(t *testing.T) {
		status, body := g.call("stream.write", "edge-2", map[string]any{"type": "E", "data": map[string]any{}}, map[string]any{"expectedVersion": 0})
		wantError(t, status, body, http.StatusConflict, CodeStreamVersionConflict)
		g.write("edge-2", "E", map[string]any{}, map[string]any{"expectedVersion": -1})
		status, body = g.call("stream.write", "edge-2", map[string]any{"type": "E", "data": map[string]any{}}, map[string]any{"expectedVersion": -1})
		wantError(t, status, body, http.StatusConflict, CodeStreamVersionConflict)
	})
	t.Run("CATEGORY-007 empty category", func(t *testing.T) {
		var rows []catRow
		g.ok(&rows, "category.get", "nonexistent")
		if rows == nil || len(rows) != 0 {
			t.Errorf("category.get of nothing = %v, want []", rows)
		}
	})
	t.Run("SYS-001 SYS-002", func(t *testing.T) {
		var v string
		g.ok(&v, "sys.version")
		if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
			t.Errorf("sys.version %q is not a semantic version", v)
		}
		var h struct{ Status string }
		g.ok(&h, "sys.health")
		if h.Status != "ok" {
			t.Errorf("sys.health status %q", h.Status)
		}
	})
}
