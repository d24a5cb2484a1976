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

// Package faultproxy is a TCP proxy on 127.0.0.1 that loses responses after
// the server produced them: armed with LoseResponses(n), it forwards the
// next n requests and, at the first bytes of each answer — the server has
// processed the request by then, and a write is committed — closes both
// connections without forwarding them. The client sees its connection
// drop after sending the request: the outcome of the call is unknown to it.
//
// It forwards TLS without decrypting it, record by record, and tells a
// response from the handshake by the records' plaintext content type: the
// first application-data record from the server after the client sent
// application data. That holds for TLS 1.2 with HTTP/1.1 only (TLS 1.3
// encrypts the handshake and session tickets as application data; HTTP/2
// sends frames of its own unasked), so the proxy refuses a connection whose
// ServerHello negotiates either, and Close reports it. RESTConfig makes a
// client config that negotiates what the proxy needs.
//
// Why not etcd's pkg/proxy (go.etcd.io/etcd/pkg/v3/proxy): it delays,
// blackholes or rewrites the bytes of a connection, but cannot close it at
// the start of a response, which is what makes a committed write's outcome
// unknown to the client at once rather than at its timeout.
//
// What it does not do: tell requests apart. The n requests that lose their
// response are the next n sent through the proxy, whatever they are; a
// test arranges what those are (for example an Update of a carried object,
// whose first request is its write).
package faultproxy

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// TLS record content types (RFC 5246 section 6.2.1).
const (
	recordHandshake       = 22
	recordApplicationData = 23
	// maxRecord is the largest record body TLS allows (2^14 + 2048).
	maxRecord = 1<<14 + 2048
)

// Proxy forwards connections from Addr to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	arm    int // responses still to lose
	lost   int
	err    error // the first refused connection's reason
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Start listens on a free port of 127.0.0.1 and forwards every connection
// to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// LoseResponses arms the proxy: the responses to the next n requests are
// lost (added to any still armed).
func (p *Proxy) LoseResponses(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.arm += n
}

// Lost is the number of responses lost so far.
func (p *Proxy) Lost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// Armed is the number of responses still to lose.
func (p *Proxy) Armed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arm
}

// Close stops listening, closes every connection and waits for their
// goroutines. It returns why a connection was refused, if one was.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = client.Close() // as if the server refused it
			continue
		}
		if !p.track(client, server) {
			return
		}
		c := &conn{p: p, client: client, server: server}
		p.wg.Go(c.up)
		p.wg.Go(c.down)
	}
}

// track registers a connection's two ends, or closes them if the proxy is
// closing.
func (p *Proxy) track(ends ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range ends {
			_ = c.Close()
		}
		return false
	}
	for _, c := range ends {
		p.conns[c] = struct{}{}
	}
	return true
}

// take consumes one armed loss, if any.
func (p *Proxy) take() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.arm == 0 {
		return false
	}
	p.arm--
	p.lost++
	return true
}

// refuse records why a connection was refused (the first reason only).
func (p *Proxy) refuse(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// conn is one proxied connection.
type conn struct {
	p              *Proxy
	client, server net.Conn
	// requested: the client sent application data (a request) that no
	// server record has answered yet. Set before the request is forwarded,
	// so the answer always finds it set.
	requested atomic.Bool
	once      sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c.client)
		delete(c.p.conns, c.server)
		c.p.mu.Unlock()
	})
}

// up forwards the client's records to the server.
func (c *conn) up() {
	defer c.close()
	for {
		rec, err := readRecord(c.client)
		if err != nil {
			return
		}
		if rec[0] == recordApplicationData {
			c.requested.Store(true)
		}
		if _, err := c.server.Write(rec); err != nil {
			return
		}
	}
}

// down forwards the server's records to the client, refuses what the
// proxy cannot see responses in, and loses an armed response: the first
// application-data record after a request.
func (c *conn) down() {
	defer c.close()
	hello := true
	for {
		rec, err := readRecord(c.server)
		if err != nil {
			return
		}
		if hello && rec[0] == recordHandshake {
			hello = false
			if err := checkServerHello(rec[5:]); err != nil {
				c.p.refuse(err)
				return
			}
		}
		if rec[0] == recordApplicationData && c.requested.Swap(false) && c.p.take() {
			return // lost: close both ends, forward nothing
		}
		if _, err := c.client.Write(rec); err != nil {
			return
		}
	}
}

// readRecord reads one TLS record, header included.
func readRecord(r io.Reader) ([]byte, error) {
	header := make([]byte, 5)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(header[3:5]))
	if n > maxRecord {
		return nil, fmt.Errorf("faultproxy: a TLS record of %d bytes: not TLS?", n)
	}
	rec := make([]byte, 5+n)
	copy(rec, header)
	if _, err := io.ReadFull(r, rec[5:]); err != nil {
		return nil, err
	}
	return rec, nil
}

// TLS extensions of a ServerHello (RFC 8446 section 4.2, RFC 7301).
const (
	extensionALPN              = 16
	extensionSupportedVersions = 43
)

// checkServerHello refuses a ServerHello (the body of the server's first
// handshake record) that negotiates TLS 1.3 or HTTP/2.
func checkServerHello(b []byte) error {
	malformed := errors.New("faultproxy: cannot read the ServerHello, refusing the connection")
	// type(1) length(3) version(2) random(32)
	if len(b) < 39 || b[0] != 2 {
		return malformed
	}
	b = b[38:]
	sid := int(b[0])
	// session id, cipher suite(2), compression(1), extensions length(2)
	if len(b) < 1+sid+5 {
		return nil // no extensions: TLS 1.2 without ALPN
	}
	b = b[1+sid+3:]
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return malformed
	}
	b = b[:n]
	for len(b) >= 4 {
		typ, size := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+size {
			return malformed
		}
		data := b[4 : 4+size]
		switch {
		case typ == extensionSupportedVersions && size == 2 && binary.BigEndian.Uint16(data) >= tls.VersionTLS13:
			return errors.New("faultproxy: the connection negotiated TLS 1.3, whose handshake looks like responses; use RESTConfig (TLS 1.2)")
		case typ == extensionALPN && size > 3 && string(data[3:]) != "http/1.1":
			return fmt.Errorf("faultproxy: the connection negotiated %q, not HTTP/1.1; use RESTConfig", data[3:])
		}
		b = b[4+size:]
	}
	return nil
}

// RESTConfig returns a copy of base (a config for a TLS API server, such as
// the kube-apiserver of internal/testenv) that connects through p with TLS
// 1.2 and HTTP/1.1, still verifying the server's certificate against base's
// CA and host name, with base's client certificate.
func RESTConfig(base *rest.Config, p *Proxy) (*rest.Config, error) {
	u, err := url.Parse(base.Host)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := rest.TLSConfigFor(base)
	if err != nil {
		return nil, err
	}
	if tlsConfig == nil {
		return nil, fmt.Errorf("faultproxy: %s is not served over TLS", base.Host)
	}
	tlsConfig.ServerName = u.Hostname()
	tlsConfig.MinVersion, tlsConfig.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tlsConfig.NextProtos = []string{"http/1.1"}
	cfg := rest.CopyConfig(base)
	cfg.Host = "https://" + p.Addr()
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport = &http.Transport{
		TLSClientConfig:     tlsConfig,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return cfg, nil
}
