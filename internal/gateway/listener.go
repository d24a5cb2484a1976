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
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
)

// Listener serves a Handler over HTTP (or HTTPS) until its context ends,
// then shuts down gracefully: a controller-runtime manager.Runnable that
// every replica runs (no leader election: the gateway is stateless).
type Listener struct {
	// Addr is the address to listen on, e.g. ":8080" or "127.0.0.1:8080".
	Addr string
	// CertFile and KeyFile, if both set, serve HTTPS.
	CertFile, KeyFile string
	// ReadTimeout bounds reading a request, body included; WriteTimeout
	// writing a response (GET /subscribe lifts it for its stream).
	ReadTimeout, WriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown: calls in flight finish,
	// subscriptions are closed (clients reconnect from their position).
	ShutdownTimeout time.Duration
	Handler         http.Handler
	// OnShutdown runs when the shutdown starts (Server.Close: it ends the
	// subscriptions, which Shutdown would otherwise wait for).
	OnShutdown func()
	Log        logr.Logger
}

// Start listens and serves until ctx ends.
func (l *Listener) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listening on %s: %w", l.Addr, err)
	}
	srv := &http.Server{
		Handler:           l.Handler,
		ReadHeaderTimeout: min(l.ReadTimeout, 10*time.Second),
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if l.OnShutdown != nil {
		srv.RegisterOnShutdown(l.OnShutdown)
	}
	done := make(chan error, 1)
	go func() {
		l.Log.Info("Serving EventoDB's protocol", "address", ln.Addr().String(), "tls", l.CertFile != "")
		if l.CertFile != "" && l.KeyFile != "" {
			done <- srv.ServeTLS(ln, l.CertFile, l.KeyFile)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), l.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// NeedLeaderElection is false: every replica serves.
func (l *Listener) NeedLeaderElection() bool { return false }
