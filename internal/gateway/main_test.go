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
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// tokenAuth is the tests' Authorizer: token "t-<ns>" acts in namespace
// <ns>, anything else is refused. (The real one, package auth, is tested
// on its own.)
type tokenAuth struct{}

func (tokenAuth) Authorize(_ context.Context, token, namespace string, access auth.Access) (string, error) {
	ns, ok := strings.CutPrefix(token, "t-")
	switch {
	case token == adminToken:
		return namespace, nil
	case access == auth.Admin && ok:
		return "", fmt.Errorf("%w: a namespace token cannot manage namespaces", auth.ErrUnauthorized)
	case token == "":
		return "", fmt.Errorf("%w: send Authorization: Bearer <token>", auth.ErrRequired)
	case !ok || ns == "":
		return "", fmt.Errorf("%w: not a test token", auth.ErrInvalidToken)
	case namespace != "" && namespace != ns:
		return "", fmt.Errorf("%w: the token is for namespace %s", auth.ErrUnauthorized, ns)
	}
	return ns, nil
}

// adminToken is tokenAuth's admin.
const adminToken = "admin"

// gw is a gateway over real HTTP on 127.0.0.1, and a namespace of its own.
type gw struct {
	t       testing.TB
	url, ns string
	token   string
	server  *Server
}

// newGateway serves a Server on a loopback port for one test.
func newGateway(t testing.TB, mutate ...func(*Options)) *gw {
	t.Helper()
	opts := Options{Client: env.Client, Auth: tokenAuth{}, Stream: stream.Options{Sealer: true}}
	for _, m := range mutate {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ns := env.Namespace(t)
	return &gw{t: t, url: srv.URL, ns: ns, token: "t-" + ns, server: s}
}

// post sends body to /rpc with the gateway's token.
func (g *gw) post(body []byte) (int, []byte) {
	g.t.Helper()
	return g.postAs(g.token, body)
}

func (g *gw) postAs(token string, body []byte) (int, []byte) {
	g.t.Helper()
	req, err := http.NewRequestWithContext(g.t.Context(), http.MethodPost, g.url+"/rpc", bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// call sends [method, args...] and returns the status and body.
func (g *gw) call(method string, args ...any) (int, []byte) {
	g.t.Helper()
	body, err := json.Marshal(append([]any{method}, args...))
	if err != nil {
		g.t.Fatal(err)
	}
	return g.post(body)
}

// ok calls and decodes a 200's result into out (if not nil).
func (g *gw) ok(out any, method string, args ...any) {
	g.t.Helper()
	status, body := g.call(method, args...)
	if status != http.StatusOK {
		g.t.Fatalf("%s %v: status %d, body %s", method, args, status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			g.t.Fatalf("%s: decoding %s: %v", method, body, err)
		}
	}
}

// errorBody is EventoDB's error response.
type errorBody struct {
	Error Error `json:"error"`
}

// wantError checks a response is an EventoDB error with status and code.
func wantError(t testing.TB, status int, body []byte, wantStatus int, wantCode string) Error {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d: body %q is not an EventoDB error: %v", status, body, err)
	}
	if status != wantStatus || e.Error.Code != wantCode || e.Error.Message == "" {
		t.Fatalf("got status %d %s %q, want %d %s with a message", status, e.Error.Code, e.Error.Message, wantStatus, wantCode)
	}
	return e.Error
}

// write is stream.write of one message; it returns position and global
// position.
func (g *gw) write(name, typ string, data any, opts map[string]any) (int64, int64) {
	g.t.Helper()
	var res writeResult
	args := []any{name, map[string]any{"type": typ, "data": data}}
	if opts != nil {
		args = append(args, opts)
	}
	g.ok(&res, "stream.write", args...)
	return res.Position, res.GlobalPosition
}

// row is a decoded message row of stream.get.
type row struct {
	ID             string
	Type           string
	Position       int64
	GlobalPosition int64
	Data           json.RawMessage
	Metadata       json.RawMessage
	Time           string
}

func (r *row) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&r.ID, &r.Type, &r.Position, &r.GlobalPosition, &r.Data, &r.Metadata, &r.Time})
}

// categoryRow is a decoded message row of category.get.
type catRow struct {
	ID             string
	Stream         string
	Type           string
	Position       int64
	GlobalPosition int64
	Data           json.RawMessage
	Metadata       json.RawMessage
	Time           string
}

func (r *catRow) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&r.ID, &r.Stream, &r.Type, &r.Position, &r.GlobalPosition, &r.Data, &r.Metadata, &r.Time})
}
