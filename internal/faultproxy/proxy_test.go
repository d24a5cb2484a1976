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

package faultproxy

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
)

// server is a TLS server on 127.0.0.1 that counts the POSTs it processed
// and answers each with the count so far.
func server(t *testing.T, http2 bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var posts atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := posts.Load()
		if r.Method == http.MethodPost {
			n = posts.Add(1)
		}
		fmt.Fprintf(w, "%d %s", n, strings.Repeat("x", 40000)) // several records
	}))
	srv.EnableHTTP2 = http2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &posts
}

// through returns a proxy to srv and an HTTP client using it, made by
// RESTConfig.
func through(t *testing.T, srv *httptest.Server) (*Proxy, *http.Client) {
	t.Helper()
	p, err := Start(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg, err := RESTConfig(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}, p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func call(c *http.Client, method, url string) (string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader("body"))
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	n, _, _ := strings.Cut(string(b), " ")
	return n, nil
}

// TestLoseResponses: unarmed, requests and responses pass (over kept-alive
// connections); armed with 2, the next two POSTs fail at the client after
// the server processed them; then requests pass again.
func TestLoseResponses(t *testing.T) {
	srv, posts := server(t, false)
	p, c := through(t, srv)
	url := "https://" + p.Addr() + "/"
	for i := 1; i <= 3; i++ {
		if n, err := call(c, http.MethodPost, url); err != nil || n != fmt.Sprint(i) {
			t.Fatalf("POST %d: %q, %v", i, n, err)
		}
	}
	p.LoseResponses(2)
	for i := 4; i <= 5; i++ {
		if n, err := call(c, http.MethodPost, url); err == nil {
			t.Errorf("armed POST %d: got %q, want its response lost", i, n)
		}
		if got := posts.Load(); got != int64(i) {
			t.Errorf("after armed POST %d the server processed %d POSTs, want %d", i, got, i)
		}
	}
	if p.Lost() != 2 || p.Armed() != 0 {
		t.Errorf("Lost %d, Armed %d; want 2, 0", p.Lost(), p.Armed())
	}
	if n, err := call(c, http.MethodGet, url); err != nil || n != "5" {
		t.Errorf("GET after the losses: %q, %v; want 5", n, err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestRefusesWhatItCannotRead: a connection negotiating TLS 1.3, or HTTP/2,
// is refused and Close says why (the proxy could not tell a response from
// the handshake or from the server's own frames).
func TestRefusesWhatItCannotRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		http2 bool
		tls   *tls.Config
		want  string
	}{
		{"TLS 1.3", false, &tls.Config{MinVersion: tls.VersionTLS13}, "TLS 1.3"},
		{"HTTP/2", true, &tls.Config{MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}, `"h2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := server(t, tc.http2)
			p, err := Start(srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			tc.tls.RootCAs, tc.tls.ServerName = pool, "127.0.0.1"
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.tls, ForceAttemptHTTP2: tc.http2}}
			if n, err := call(c, http.MethodGet, "https://"+p.Addr()+"/"); err == nil {
				t.Errorf("GET: %q, want the connection refused", n)
			}
			if err := p.Close(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Close: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
