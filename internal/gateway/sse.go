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
	"sync"
	"time"
)

// poke is EventoDB's notification of one event.
type poke struct {
	Stream         string `json:"stream"`
	Position       int64  `json:"position"`
	GlobalPosition int64  `json:"globalPosition"`
}

func pokeOf(ev *event) poke {
	return poke{Stream: ev.name, Position: ev.Position, GlobalPosition: ev.global}
}

var (
	// errInterrupted: a write was refused because the subscription ended.
	errInterrupted = errors.New("the subscription ended during a write")
	// errConnection wraps a write that failed: the client left, or read
	// nothing for WriteTimeout.
	errConnection = errors.New("writing to the subscriber")
)

// pokeWriter writes Server-Sent Events, each write bounded by a deadline.
type pokeWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration

	// mu orders setting a write's deadline against interrupt, which
	// another goroutine calls.
	mu          sync.Mutex
	interrupted bool
}

func newPokeWriter(w http.ResponseWriter, timeout time.Duration) *pokeWriter {
	return &pokeWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// start sends the response's header.
func (p *pokeWriter) start() error {
	h := p.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx would otherwise buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	p.w.WriteHeader(http.StatusOK)
	return p.flush()
}

// poke writes one poke event.
func (p *pokeWriter) poke(ev poke) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return p.write(append(append([]byte("event: poke\ndata: "), data...), '\n', '\n'))
}

// comment writes an SSE comment, which clients ignore.
func (p *pokeWriter) comment(text string) error { return p.write([]byte(": " + text + "\n\n")) }

func (p *pokeWriter) write(b []byte) error {
	if err := p.deadline(); err != nil {
		return err
	}
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("%w: %w", errConnection, err)
	}
	return nil
}

func (p *pokeWriter) flush() error {
	if err := p.deadline(); err != nil {
		return err
	}
	if err := p.rc.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errConnection, err)
	}
	return nil
}

// deadline bounds the next write, unless the writer was interrupted. It
// also replaces the deadline of http.Server.WriteTimeout, which would
// otherwise end every subscription that long after it began.
func (p *pokeWriter) deadline() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.interrupted {
		return errInterrupted
	}
	if err := p.rc.SetWriteDeadline(time.Now().Add(p.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// interruptOn cuts off the write in progress, and refuses every later
// one, once any of the channels is closed: a handler blocked writing to a
// client that stopped reading must end when the client falls behind or the
// gateway closes. Call the returned func before the handler returns (a
// ResponseController may not be used after).
func (p *pokeWriter) interruptOn(ctx context.Context, behind, closed <-chan struct{}) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-behind:
		case <-closed:
		case <-done:
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.interrupted = true
		_ = p.rc.SetWriteDeadline(time.Now())
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
