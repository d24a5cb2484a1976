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
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// Authorizer verifies a call's bearer token and returns the namespace the
// call acts in (see package auth).
type Authorizer interface {
	Authorize(ctx context.Context, token, namespace string, access auth.Access) (string, error)
}

// Options configure a Server.
type Options struct {
	// Client reads live from the API server (no cache): stream.version and
	// stream.get answer with what is stored now, so a client reads its own
	// writes. Required.
	Client client.Client
	// Stream configures the stream.Client the Server writes and reads
	// events with: one per Server, so concurrent writes to one stream
	// share API requests (group commit). Its Update.OnWrite also feeds the
	// gateway's metrics. The zero value is a writer that waits for the
	// EventStream controller to seal full heads.
	Stream stream.Options
	// Auth verifies every call's token. Required.
	Auth Authorizer
	// Tokens keeps namespace tokens, for ns.create, ns.delete, ns.list and
	// ns.info. Default: none, and those calls answer 503.
	Tokens TokenStore
	// MaxBodyBytes bounds a request body; larger ones are refused with 413.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Version is what sys.version and GET /version report, a semantic
	// version (EventoDB's SDK tests check). Default "0.0.0-dev".
	Version string
	// Log receives one line per failed call that is not the client's
	// fault. Default: discard.
	Log logr.Logger
	// Ready, if set, gates GET /health: 503 until it reports true (the
	// Authorizer's token cache has synced). Default: always ready.
	Ready func() bool
	// Metrics is where the gateway's metrics are registered (with
	// controller-runtime: metrics.Registry). Default: a registry of its
	// own, which nothing serves.
	Metrics prometheus.Registerer
	// Subscribe configures GET /subscribe; without a Watch it answers 503.
	Subscribe SubscribeOptions
}

// DefaultMaxBodyBytes bounds a request: pkg/stream's largest append (256
// KiB of events) with room for JSON escaping.
const DefaultMaxBodyBytes = 2 << 20

// NamespaceHeader names the namespace a call acts in, for a token that does
// not imply one (a Kubernetes user's) or one allowed in several (the
// admin's, a ServiceAccount with RBAC elsewhere). EventoDB's clients never
// send it: their token names the namespace.
const NamespaceHeader = "X-Jobstate-Namespace"

// Server serves EventoDB's HTTP protocol on EventStreams.
type Server struct {
	opts    Options
	methods map[string]method
	metrics *metrics
	streams *stream.Client
	// subs fans the watch out to subscriptions; nil without a Watch.
	subs *hub
}

// New validates opts and returns a Server.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("gateway: Options.Client is required")
	case opts.Auth == nil:
		return nil, errors.New("gateway: Options.Auth is required")
	case opts.MaxBodyBytes < 0:
		return nil, fmt.Errorf("gateway: Options.MaxBodyBytes must be >= 0, got %d", opts.MaxBodyBytes)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Version == "" {
		opts.Version = "0.0.0-dev"
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, methods: methods()}
	var err error
	if s.metrics, err = newMetrics(opts.Metrics, s.Subscriptions); err != nil {
		return nil, fmt.Errorf("gateway: registering metrics: %w", err)
	}
	sopts := opts.Stream
	onWrite := sopts.Update.OnWrite
	sopts.Update.OnWrite = func(appends int, err error) {
		s.observeWrite(appends, err)
		if onWrite != nil {
			onWrite(appends, err)
		}
	}
	if s.streams, err = stream.New(opts.Client, sopts); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if s.subs, err = newHub(opts.Subscribe, s.headPokes, opts.Log); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler serves POST /rpc, GET /subscribe, GET /health and GET /version.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/rpc", s.serveRPC)
	mux.HandleFunc("GET /subscribe", s.serveSubscribe)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if s.opts.Ready != nil && !s.opts.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.opts.Version})
	})
	return mux
}

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"BACKEND_ERROR","message":"the response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeError writes e as EventoDB's error body.
func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

// callTimeout bounds one call when the client sets no deadline.
const callTimeout = 30 * time.Second
