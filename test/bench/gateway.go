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

package main

// The gateway section of the bench (internal/gateway), printed last:
//
//  A. Many streams: W HTTP clients (-writers) sending stream.write without
//     expectedVersion to S streams (-gateway-streams), each client to its
//     own share of them in turn, against W writers each updating its own
//     JobState the raw serial way (the stream section's baseline). A third
//     row, the reference, makes the same appends to other S streams with
//     stream.Append through a stream.Client of its own, no HTTP: the gap
//     between it and the gateway is what HTTP and JSON cost.
//  B. One hot stream: C HTTP clients (-gateway-clients) writing to one
//     stream, against one raw serial writer of one JobState (the update
//     table's baseline): one object's limit, which only group commit — the
//     gateway's one stream.Client sharing a head write among the calls
//     waiting for it — can pass. The reference row is a second gateway
//     whose stream.Client leaves sealing to the EventStream controller, as
//     a gateway without the sealer identity must: the gap between the two
//     is what waiting for the controller's seals costs a hot stream, and
//     why cmd/gateway seals (config/admission names its identity).
//  C. Poke latency (poke.go): one GET /subscribe, serial writes; the time
//     from a write's answer to its poke, against the write's round trip.
//
// The rows of a table run interleaved in rounds (ABBA), as the serial
// variants do. The gateway is internal/gateway's Server on 127.0.0.1
// (httptest), with one stream.Client as cmd/gateway has one, a sealer as
// cmd/gateway's is; the EventStream controller also runs, in a manager
// watching the section's namespace, its writes not counted. Its authorizer
// accepts one token without any request, as a namespace token is checked
// against a cache (internal/gateway/auth). The clients are net/http with
// keep-alive connections, sending and decoding JSON as EventoDB's do.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/gateway"
	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// Targets of the gateway section.
const (
	// minSpreadRatio is the lowest acceptable writes/s of A's HTTP clients
	// as a multiple of its raw writers' updates/s.
	minSpreadRatio = 0.8
	// minHotRatio is the lowest acceptable writes/s of B's HTTP clients on
	// one stream as a multiple of raw serial updates of one object.
	minHotRatio = 10
)

// gatewayOptions are the gateway section's flags.
type gatewayOptions struct {
	// writers, streams and perWriter size A: calls per writer, in rounds.
	writers, streams, perWriter, rounds int
	// clients and updates size B: updates is split among the clients, and
	// the raw serial writer makes as many.
	clients, updates int
	// pokes sizes C: serial writes to a subscribed stream.
	pokes int
}

// gatewayServer is the in-process gateway and what its clients share.
type gatewayServer struct {
	url, token, namespace string
	// http is every client's: one keep-alive connection per client.
	http *http.Client
	// writes counts the creates and updates its stream.Client sends.
	writes atomic.Int64
	// versions reads streams' versions live, for the checks.
	versions *stream.Client
}

// oneToken authorizes one token, for any access, in one namespace.
type oneToken struct{ token, namespace string }

func (a oneToken) Authorize(_ context.Context, token, _ string, _ auth.Access) (string, error) {
	if token != a.token {
		return "", auth.ErrInvalidToken
	}
	return a.namespace, nil
}

// gatewaySection runs A and B and prints their tables.
func (b *bench) gatewaySection(ctx context.Context, o gatewayOptions) error {
	ns, err := b.namespace(ctx)
	if err != nil {
		return err
	}
	if err := b.startSealer(ctx, ns); err != nil {
		return fmt.Errorf("starting the sealer: %w", err)
	}
	// As cmd/gateway: the gateway seals the heads it fills.
	g, err := b.startGateway(ctx, ns, max(o.writers, o.clients), true)
	if err != nil {
		return err
	}
	spread, err := b.gatewaySpread(ctx, g, o)
	if err != nil {
		return err
	}
	unsealing, err := b.startGateway(ctx, ns, o.clients, false)
	if err != nil {
		return err
	}
	hot, err := b.gatewayHot(ctx, g, unsealing, o)
	if err != nil {
		return err
	}
	pokes, err := b.pokeLatency(ctx, ns, o.pokes)
	if err != nil {
		return fmt.Errorf("poke latency: %w", err)
	}
	printGatewaySpread(os.Stdout, spread, o)
	fmt.Println()
	printGatewayHot(os.Stdout, hot, o)
	fmt.Println()
	printPokeLatency(os.Stdout, pokes)
	return nil
}

// startGateway serves a gateway on 127.0.0.1 until ctx ends, for namespace
// ns, and returns it with an HTTP client that keeps a connection per
// concurrent caller. Its stream.Client seals heads itself if sealer (b.c
// is a sealer identity), as cmd/gateway's does.
func (b *bench) startGateway(ctx context.Context, ns string, callers int, sealer bool) (*gatewayServer, error) {
	g := &gatewayServer{token: "bench-token", namespace: ns}
	// One stream.Client for the process, as cmd/gateway has, writing every
	// stream of every namespace (group commit per stream).
	var err error
	if g.versions, err = stream.New(b.c, stream.Options{}); err != nil {
		return nil, err
	}
	srv, err := gateway.New(gateway.Options{Client: countWrites(b.c, &g.writes), Stream: stream.Options{Sealer: sealer}, Auth: oneToken{token: g.token, namespace: ns}})
	if err != nil {
		return nil, err
	}
	ts := httptest.NewServer(srv.Handler())
	context.AfterFunc(ctx, ts.Close)
	g.url = ts.URL
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	// Every caller keeps its connection between calls: net/http keeps only
	// 2 idle per host by default, and would open and close the rest.
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 0, callers
	g.http = &http.Client{Transport: transport, Timeout: time.Minute}
	return g, nil
}

// write is one stream.write of a Counted event {"i": i}, without
// expectedVersion, checked to answer 200 with a position.
func (g *gatewayServer) write(ctx context.Context, name string, i int) error {
	body := fmt.Sprintf(`["stream.write",%q,{"type":%q,"data":{"i":%d}}]`, name, eventType, i)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/rpc", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.token)
	res, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("stream.write %s: reading the answer: %w", name, err)
	}
	var written struct{ Position *int64 }
	if res.StatusCode != http.StatusOK || json.Unmarshal(answer, &written) != nil || written.Position == nil {
		return fmt.Errorf("stream.write %s: HTTP %d %s", name, res.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

// version reads stream name's version live.
func (g *gatewayServer) version(ctx context.Context, name string) (int64, error) {
	v, _, err := g.versions.Version(ctx, client.ObjectKey{Namespace: g.namespace, Name: name})
	return v, err
}

// gatewaySpread runs A: the raw writers and the HTTP clients, interleaved in
// rounds, then checks every object. Each stream is created by one untimed
// write first (the raw writers' JobStates exist before their timing too).
func (b *bench) gatewaySpread(ctx context.Context, g *gatewayServer, o gatewayOptions) ([]*flow, error) {
	var rawWrites atomic.Int64
	raw, err := b.rawFlow(ctx, o.writers, &rawWrites)
	if err != nil {
		return nil, fmt.Errorf("raw updates: %w", err)
	}
	owned := make([][]string, o.writers)
	for s := range o.streams {
		name := fmt.Sprintf("spread-%d", s)
		if err := g.write(ctx, name, 0); err != nil {
			return nil, fmt.Errorf("creating stream %s: %w", name, err)
		}
		owned[s%o.writers] = append(owned[s%o.writers], name)
	}
	var calls []func() error
	for w := range o.writers {
		i := 0
		calls = append(calls, func() error {
			i++
			return g.write(ctx, owned[w][i%len(owned[w])], i)
		})
	}
	f := newFlow(fmt.Sprintf("gateway stream.write, %d HTTP clients, %d streams", o.writers, o.streams),
		target{minRatio: minSpreadRatio, noFailures: true}, calls)
	f.stored = g.storedIn(owned)
	var directWrites atomic.Int64
	direct, err := b.directFlow(ctx, g, o, &directWrites)
	if err != nil {
		return nil, fmt.Errorf("direct appends: %w", err)
	}

	flows := []*flow{raw, f, direct}
	rawWrites.Store(0) // Count the timed writes only.
	directWrites.Store(0)
	before := g.writes.Load()
	if err := runInRounds(ctx, flows, o.rounds, o.perWriter, o.writers); err != nil {
		return nil, err
	}
	raw.writes.Store(rawWrites.Load())
	f.writes.Store(g.writes.Load() - before)
	direct.writes.Store(directWrites.Load())
	for _, f := range flows {
		if err := f.check(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return flows, nil
}

// storedIn returns a flow's stored: how many timed writes writer w's
// streams took, their versions (the creating write put an event at 0).
func (g *gatewayServer) storedIn(owned [][]string) func(ctx context.Context, w int) (int64, error) {
	return func(ctx context.Context, w int) (int64, error) {
		var sum int64
		for _, name := range owned[w] {
			v, err := g.version(ctx, name)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	}
}

// directFlow sets up A's reference: W writers appending as the gateway's
// clients do, to their shares of S other streams, with stream.Append
// through one stream.Client (a sealer, as the gateway's) and no HTTP.
func (b *bench) directFlow(ctx context.Context, g *gatewayServer, o gatewayOptions, writes *atomic.Int64) (*flow, error) {
	sc, err := stream.New(countWrites(b.c, writes), stream.Options{Sealer: true})
	if err != nil {
		return nil, err
	}
	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: g.namespace, Name: name} }
	owned := make([][]string, o.writers)
	for s := range o.streams {
		name := fmt.Sprintf("direct-%d", s)
		if _, err := sc.Append(ctx, key(name), []stream.EventData{counted(0)}, stream.ExpectVersion(stream.NoStream)); err != nil {
			return nil, fmt.Errorf("creating stream %s: %w", name, err)
		}
		owned[s%o.writers] = append(owned[s%o.writers], name)
	}
	var calls []func() error
	for w := range o.writers {
		i := 0
		calls = append(calls, func() error {
			i++
			_, err := sc.Append(ctx, key(owned[w][i%len(owned[w])]), []stream.EventData{counted(i)}, stream.AppendOptions{})
			return err
		})
	}
	f := newFlow(fmt.Sprintf("reference: stream.Append, no HTTP, %d writers, %d streams", o.writers, o.streams), target{noFailures: true}, calls)
	f.stored = g.storedIn(owned)
	return f, nil
}

// Streams of B: the gateway's, and the reference gateway's that leaves
// sealing to the controller.
const (
	hotStream          = "hot"
	hotUnsealingStream = "hot-controller-seals"
)

// gatewayHot runs B: raw serial updates of one JobState, the HTTP clients on
// one stream through g, and as many through unsealing (a gateway that
// leaves sealing to the EventStream controller), interleaved in rounds.
func (b *bench) gatewayHot(ctx context.Context, g, unsealing *gatewayServer, o gatewayOptions) ([]result, error) {
	serial, err := b.prepare(ctx, variant{name: "raw serial (Status().Update, carried), 1 JobState", target: target{noFailures: true}, writers: 1, setup: rawSerial})
	if err != nil {
		return nil, fmt.Errorf("raw serial: %w", err)
	}
	hot, err := newHotRow(ctx, g, hotStream, fmt.Sprintf("gateway stream.write, %d HTTP clients, 1 stream", o.clients),
		target{minRatio: minHotRatio, noFailures: true}, o.clients)
	if err != nil {
		return nil, err
	}
	ref, err := newHotRow(ctx, unsealing, hotUnsealingStream, "reference: the same, the controller sealing (a gateway without the sealer identity)",
		target{noFailures: true}, o.clients)
	if err != nil {
		return nil, err
	}

	rows := []*row{serial, hot.row, ref.row}
	hot.start()
	ref.start()
	rounds := min(o.rounds, o.updates)
	for i := range rounds {
		n := share(o.updates, rounds, i)
		for j := range rows {
			if i%2 == 1 {
				j = len(rows) - 1 - j
			}
			rows[j].run(ctx, n)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	base, err := b.finish(ctx, serial)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", serial.name, err)
	}
	results := []result{base}
	for _, h := range []*hotRow{hot, ref} {
		r, err := h.finish(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// hotRow is a row of B: HTTP clients writing to one stream of a gateway.
type hotRow struct {
	*row
	g      *gatewayServer
	stream string
	// before is the gateway's write count when the timing started.
	before int64
}

// newHotRow creates the stream with one untimed write and sets up the
// clients.
func newHotRow(ctx context.Context, g *gatewayServer, name, rowName string, t target, clients int) (*hotRow, error) {
	if err := g.write(ctx, name, 0); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", name, err)
	}
	h := &hotRow{row: &row{variant: variant{name: rowName, target: t, writers: clients}}, g: g, stream: name}
	var i atomic.Int64
	for range clients {
		h.calls = append(h.calls, func() error { return g.write(ctx, name, int(i.Add(1))) })
	}
	return h, nil
}

// start marks the start of the timed writes.
func (h *hotRow) start() { h.before = h.g.writes.Load() }

// finish checks the stream's version against the successes: the creating
// write put an event at 0, so the version is the number of timed writes.
func (h *hotRow) finish(ctx context.Context) (result, error) {
	v, err := h.g.version(ctx, h.stream)
	if err != nil {
		return result{}, err
	}
	ok := h.ok.Load()
	return result{
		variant: h.variant, ok: ok, failed: h.failed.Load(), lost: ok - v,
		writes: h.g.writes.Load() - h.before, elapsed: h.elapsed, firstErr: h.firstErr,
	}, nil
}

// printGatewaySpread writes table A, then every mismatch and error.
func printGatewaySpread(out io.Writer, flows []*flow, o gatewayOptions) {
	fmt.Fprintf(out, "gateway, many streams: %d HTTP clients, stream.write without expectedVersion, each to its share of %d streams in turn, %d calls per client;\n",
		o.writers, o.streams, o.perWriter)
	fmt.Fprintf(out, "  against %d raw writers on %d JobStates; interleaved in %d rounds (ABBA)\n", o.writers, o.writers, min(o.rounds, o.perWriter))
	results := make([]result, len(flows))
	for i, f := range flows {
		results[i] = f.result()
	}
	printCallTable(out, results, "raw")
	fmt.Fprintln(out, "lost: successful calls their objects do not show (a JobState's counter; the versions of a client's streams,")
	fmt.Fprintln(out, "  each created by an untimed write at 0). writes: the API writes each row sent (the controller's seals not counted).")
	for _, f := range flows {
		f.printErrors(out)
	}
}

// printGatewayHot writes table B, then the errors.
func printGatewayHot(out io.Writer, results []result, o gatewayOptions) {
	fmt.Fprintf(out, "gateway, one stream: %d HTTP clients, stream.write without expectedVersion to one stream, %d calls in all;\n", o.clients, o.updates)
	fmt.Fprintf(out, "  against raw serial updates of one JobState, as many; interleaved in %d rounds (ABBA)\n", min(o.rounds, o.updates))
	printCallTable(out, results, "raw serial")
	for _, r := range results[1:] {
		if r.writes > 0 {
			fmt.Fprintf(out, "%s: %.1f calls per head write (group commit).\n", r.name, float64(r.ok+r.failed)/float64(r.writes))
		}
	}
	fmt.Fprintln(out, "writes: the API writes each row sent (the controller's seals not counted; the gateway's own are).")
	fmt.Fprintln(out, "lost: successful calls the object does not show (the JobState's counter; the stream's version, created by an untimed write at 0).")
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "%s: first error of %d: %s\n", r.name, r.failed, truncate(r.firstErr.Error(), 300))
		}
	}
}
