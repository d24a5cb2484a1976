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
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBadRequests: every malformed request is a 4xx that says what is wrong
// and where, and nothing is stored.
func TestBadRequests(t *testing.T) {
	g := newGateway(t, func(o *Options) { o.MaxBodyBytes = 4096 })
	msg := map[string]any{"type": "T", "data": map[string]any{}}
	cases := []struct {
		name       string
		body       string
		status     int
		code, text string
	}{
		{"empty body", ``, 400, CodeInvalidRequest, "empty"},
		{"not JSON", `["stream.write", `, 400, CodeInvalidRequest, "not valid JSON"},
		{"object", `{"method":"stream.write"}`, 400, CodeInvalidRequest, "must be a JSON array"},
		{"empty array", `[]`, 400, CodeInvalidRequest, "empty"},
		{"method not a string", `[42, "s"]`, 400, CodeInvalidRequest, "method name"},
		{"trailing garbage", `["sys.version"] x`, 400, CodeInvalidRequest, "not valid JSON"},
		{"unknown method", `["stream.delete", "s-1"]`, 404, CodeMethodNotFound, `"stream.delete"`},
		{"no stream", `["stream.write"]`, 400, CodeInvalidRequest, "streamName"},
		{"stream not a string", `["stream.write", 7, {"type":"T","data":{}}]`, 400, CodeInvalidRequest, "streamName must be a string"},
		{"empty stream", `["stream.write", "", {"type":"T","data":{}}]`, 400, CodeInvalidRequest, "streamName must not be empty"},
		{"no message", `["stream.write", "bad-1"]`, 400, CodeInvalidRequest, "message"},
		{"message a string", `["stream.write", "bad-1", "hello"]`, 400, CodeInvalidRequest, "message must be an object"},
		{"no type", `["stream.write", "bad-1", {"data":{}}]`, 400, CodeInvalidRequest, "type must be a non-empty string"},
		{"type a number", `["stream.write", "bad-1", {"type":1,"data":{}}]`, 400, CodeInvalidRequest, "type must be a string"},
		{"no data", `["stream.write", "bad-1", {"type":"T"}]`, 400, CodeInvalidRequest, "data must be an object"},
		{"data an array", `["stream.write", "bad-1", {"type":"T","data":[1]}]`, 400, CodeInvalidRequest, "data must be an object"},
		{"metadata a string", `["stream.write", "bad-1", {"type":"T","data":{},"metadata":"m"}]`, 400, CodeInvalidRequest, "metadata must be an object"},
		{"options an array", `["stream.write", "bad-1", {"type":"T","data":{}}, []]`, 400, CodeInvalidRequest, "options must be an object"},
		{"expectedVersion a string", `["stream.write", "bad-1", {"type":"T","data":{}}, {"expectedVersion":"1"}]`, 400, CodeInvalidRequest, "expectedVersion must be an integer"},
		{"expectedVersion fractional", `["stream.write", "bad-1", {"type":"T","data":{}}, {"expectedVersion":1.5}]`, 400, CodeInvalidRequest, "expectedVersion must be an integer"},
		{"expectedVersion huge", `["stream.write", "bad-1", {"type":"T","data":{}}, {"expectedVersion":1e300}]`, 400, CodeInvalidRequest, "expectedVersion must be an integer"},
		{"expectedVersion -2", `["stream.write", "bad-1", {"type":"T","data":{}}, {"expectedVersion":-2}]`, 400, CodeInvalidRequest, "expectedVersion must be -1"},
		{"id not a UUID", `["stream.write", "bad-1", {"type":"T","data":{}}, {"id":"abc"}]`, 400, CodeInvalidRequest, "not a UUID"},
		{"id a number", `["stream.write", "bad-1", {"type":"T","data":{}}, {"id":5}]`, 400, CodeInvalidRequest, "id must be a string"},
		{"too many arguments", `["stream.write", "bad-1", {"type":"T","data":{}}, {}, {}]`, 400, CodeInvalidRequest, "at most 3"},
		{"type too long", `["stream.write", "bad-1", {"type":"` + strings.Repeat("t", 200) + `","data":{}}]`, 400, CodeInvalidRequest, "type must have 1 to 128"},
		{"stream name too long", `["stream.write", "` + strings.Repeat("s", 1100) + `", {"type":"T","data":{}}]`, 400, CodeInvalidRequest, "at most 1024"},
		{"empty batch", `["stream.write", "bad-1", []]`, 400, CodeInvalidRequest, "at least one message"},
		{"batch with options.id", `["stream.write", "bad-1", [{"type":"T","data":{}}], {"id":"6f1e1c8e-1d0e-4a7e-9a53-0c7d3c1e2f10"}]`, 400, CodeInvalidRequest, "options.id is for one message"},
		{"oversized body", `["stream.write", "bad-1", {"type":"T","data":{"x":"` + strings.Repeat("x", 5000) + `"}}]`, 413, CodeInvalidRequest, "over 4096 bytes"},
		{"batchSize 0", `["stream.get", "bad-1", {"batchSize":0}]`, 400, CodeInvalidRequest, "batchSize must be at least 1"},
		{"batchSize -2", `["stream.get", "bad-1", {"batchSize":-2}]`, 400, CodeInvalidRequest, "batchSize must be at least 1"},
		{"negative position", `["stream.get", "bad-1", {"position":-1}]`, 400, CodeInvalidRequest, "must be >= 0"},
		{"last type a number", `["stream.last", "bad-1", {"type":3}]`, 400, CodeInvalidRequest, "type must be a string"},
		{"version extra argument", `["stream.version", "bad-1", {}]`, 400, CodeInvalidRequest, "at most 1"},
		{"category not a string", `["category.get", null]`, 400, CodeInvalidRequest, "categoryName must be a string"},
		{"group without size", `["category.get", "bad", {"consumerGroup":{"member":0}}]`, 400, CodeInvalidRequest, "needs both member and size"},
		{"group member out of range", `["category.get", "bad", {"consumerGroup":{"member":2,"size":2}}]`, 400, CodeInvalidRequest, "member must be 0 to size-1"},
		{"group size 0", `["category.get", "bad", {"consumerGroup":{"member":0,"size":0}}]`, 400, CodeInvalidRequest, "size must be >= 1"},
		{"correlation a number", `["category.get", "bad", {"correlation":1}]`, 400, CodeInvalidRequest, "correlation must be a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := g.post([]byte(c.body))
			e := wantError(t, status, body, c.status, c.code)
			if !strings.Contains(e.Message, c.text) {
				t.Errorf("message %q does not say %q", e.Message, c.text)
			}
		})
	}
	var v *int64
	g.ok(&v, "stream.version", "bad-1")
	if v != nil {
		t.Fatalf("a bad request stored something: version %d", *v)
	}
	// A stored stream is unchanged by bad requests.
	g.ok(nil, "stream.write", "good-1", msg)
	for _, c := range cases {
		g.post([]byte(strings.ReplaceAll(c.body, "bad-1", "good-1")))
	}
	g.ok(&v, "stream.version", "good-1")
	if v == nil || *v != 0 {
		t.Fatalf("bad requests changed a stored stream: version %v, want 0", v)
	}
}

// TestAuthErrors: the gateway answers the Authorizer's errors with
// EventoDB's codes.
func TestAuthErrors(t *testing.T) {
	g := newGateway(t)
	body := []byte(`["stream.version", "a-1"]`)
	status, out := g.postAs("", body)
	wantError(t, status, out, http.StatusUnauthorized, CodeAuthRequired)
	status, out = g.postAs("bogus", body)
	wantError(t, status, out, http.StatusUnauthorized, CodeAuthInvalidToken)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, g.url+"/rpc", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set(NamespaceHeader, "kube-system")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e errorBody
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.Error.Code != CodeAuthUnauthorized {
		t.Fatalf("another namespace: %d %s, want 403 %s", resp.StatusCode, e.Error.Code, CodeAuthUnauthorized)
	}
	// sys.* needs no token; the query parameter works as a token.
	if status, out := g.postAs("", []byte(`["sys.version"]`)); status != http.StatusOK || string(bytes.TrimSpace(out)) != `"0.0.0-dev"` {
		t.Fatalf("sys.version: %d %s", status, out)
	}
	resp, err = http.Post(g.url+"/rpc?token="+g.token, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("?token=: status %d", resp.StatusCode)
	}
}

// TestHTTPEndpoints covers GET /health, GET /version and a GET of /rpc.
func TestHTTPEndpoints(t *testing.T) {
	g := newGateway(t)
	for path, want := range map[string]string{"/health": `{"status":"ok"}`, "/version": `{"version":"0.0.0-dev"}`} {
		resp, err := http.Get(g.url + path)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, _ = got.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(got.String()) != want {
			t.Errorf("GET %s: %d %s, want %s", path, resp.StatusCode, got.String(), want)
		}
	}
	resp, err := http.Get(g.url + "/rpc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /rpc: %d, want 405", resp.StatusCode)
	}
}

// TestOversizedMessage: a message over pkg/stream's 64 KiB bound is a 400
// naming the bound, within the default body limit, and stores nothing.
func TestOversizedMessage(t *testing.T) {
	g := newGateway(t)
	status, body := g.call("stream.write", "big-1", map[string]any{"type": "Big", "data": map[string]any{"x": strings.Repeat("x", 70<<10)}})
	if e := wantError(t, status, body, http.StatusBadRequest, CodeInvalidRequest); !strings.Contains(e.Message, "65536") {
		t.Errorf("message %q does not name the bound", e.Message)
	}
	var v *int64
	g.ok(&v, "stream.version", "big-1")
	if v != nil {
		t.Fatalf("an oversized message stored something: version %d", *v)
	}
}
