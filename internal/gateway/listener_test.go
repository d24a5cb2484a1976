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
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// TestListenerTLSAndShutdown: the Listener serves HTTPS with the given
// certificate on 127.0.0.1, and when its context ends it stops accepting,
// runs OnShutdown, and returns once the call in flight has finished.
func TestListenerTLSAndShutdown(t *testing.T) {
	cert, key, pool := selfSigned(t)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		<-release
		_, _ = w.Write([]byte("done"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	shutdown := make(chan struct{})
	l := &Listener{Addr: addr, CertFile: cert, KeyFile: key, Handler: mux, Log: logr.Discard(),
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ShutdownTimeout: 10 * time.Second,
		OnShutdown: func() { close(shutdown) }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()

	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	var resp *http.Response
	for range 50 {
		if resp, err = c.Get("https://" + addr + "/health"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /health over HTTPS: %v %v", resp, err)
	}
	resp.Body.Close()

	slow := make(chan error, 1)
	go func() {
		r, err := c.Get("https://" + addr + "/slow")
		if err == nil {
			r.Body.Close()
		}
		slow <- err
	}()
	time.Sleep(100 * time.Millisecond) // the slow call is in flight
	cancel()
	select {
	case <-shutdown:
	case <-time.After(5 * time.Second):
		t.Fatal("OnShutdown did not run")
	}
	select {
	case err := <-done:
		t.Fatalf("Start returned (%v) with a call in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("the call in flight failed: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for path, block := range map[string]*pem.Block{cert: {Type: "CERTIFICATE", Bytes: der}, key: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, pool
}

// TestSubscriptionOutlivesTimeouts: a GET /subscribe served by the Listener
// keeps receiving pokes after the server's read and write timeouts have
// passed (they bound calls, not a subscription's stream).
func TestSubscriptionOutlivesTimeouts(t *testing.T) {
	s, err := New(Options{Client: env.Client, Stream: stream.Options{Sealer: true}, Auth: tokenAuth{}, Subscribe: SubscribeOptions{Watch: newWatch(t)}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := &Listener{Addr: addr, Handler: s.Handler(), Log: logr.Discard(), OnShutdown: s.Close,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, ShutdownTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	g := &gw{t: t, url: "http://" + addr, ns: env.Namespace(t), server: s}
	g.token = "t-" + g.ns
	for range 50 {
		if resp, err := http.Get(g.url + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/subscribe?stream=late-1&token="+g.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(1500 * time.Millisecond) // past both timeouts
	g.write("late-1", "E", map[string]any{}, nil)
	got := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(resp.Body)
		for scanner.Scan() {
			if data, ok := strings.CutPrefix(scanner.Text(), "data: "); ok {
				got <- data
				return
			}
		}
		got <- "stream ended: " + fmt.Sprint(scanner.Err())
	}()
	select {
	case data := <-got:
		if !strings.Contains(data, `"position":0`) {
			t.Fatalf("after the timeouts: %s", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no poke after the timeouts")
	}
}
