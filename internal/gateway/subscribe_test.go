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
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// gateway is a Server on a real socket.
type gateway struct {
	*Server
	http *httptest.Server
}

// newWatch starts a controller-runtime cache and returns its EventStream
// informer; the cache stops when the test ends.
func newWatch(t *testing.T) Informer {
	t.Helper()
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	inf, err := c.GetInformer(t.Context(), &jobstatev1alpha1.EventStream{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Start(t.Context()); err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	t.Cleanup(func() { <-done })
	return inf
}

// startGateway serves a gateway whose appends seal (as the EventStream
// controller would), following a fresh cache unless opts names a Watch.
// wrap, if set, wraps its listener.
func startGateway(t *testing.T, opts SubscribeOptions, wrap func(net.Listener) net.Listener) *gateway {
	t.Helper()
	if opts.Watch == nil {
		opts.Watch = newWatch(t)
	}
	s, err := New(Options{Client: env.Client, Stream: stream.Options{Sealer: true}, Auth: tokenAuth{}, Subscribe: opts})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	if wrap != nil {
		ts.Listener = wrap(ts.Listener)
	}
	ts.Start()
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return &gateway{Server: s, http: ts}
}

// received is a poke and when it arrived.
type received struct {
	poke
	at time.Time
}

// sseClient reads one subscription's events.
type sseClient struct {
	resp     *http.Response
	pokes    chan received
	comments chan string
	// done is closed when the response ends; err says why.
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// subscribe opens GET /subscribe?query with ns's token and fails the test
// unless it is a 200 event stream.
func (g *gateway) subscribe(t *testing.T, ns, query string) *sseClient {
	t.Helper()
	c, status, body := g.open(t, ns, query)
	if status != http.StatusOK {
		t.Fatalf("GET /subscribe?%s: %d %s", query, status, body)
	}
	return c
}

// open opens GET /subscribe?query with ns's token (none if ns is ""); for
// a status other than 200 it returns the body.
func (g *gateway) open(t *testing.T, ns, query string) (*sseClient, int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.http.URL+"/subscribe?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ns != "" {
		req.Header.Set("Authorization", "Bearer t-"+ns)
	}
	resp, err := g.http.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /subscribe?%s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	c := &sseClient{resp: resp, pokes: make(chan received, 1<<16), comments: make(chan string, 1024), done: make(chan struct{}), cancel: cancel}
	go c.read(t)
	t.Cleanup(c.close)
	return c, http.StatusOK, ""
}

// read parses the event stream: poke events and comments; anything else
// fails the test.
func (c *sseClient) read(t *testing.T) {
	defer close(c.done)
	defer c.resp.Body.Close()
	sc := bufio.NewScanner(c.resp.Body)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && event == "poke":
			var p poke
			if err := json.Unmarshal([]byte(data), &p); err != nil {
				t.Errorf("poke data %q: %v", data, err)
			}
			c.pokes <- received{poke: p, at: time.Now()}
			event, data = "", ""
		case line == "" && event == "" && data == "":
		case strings.HasPrefix(line, ": "):
			select {
			case c.comments <- line[2:]:
			default:
			}
		case strings.HasPrefix(line, "event: ") && event == "":
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: ") && event != "" && data == "":
			data = line[len("data: "):]
		default:
			t.Errorf("unexpected line %q (event %q, data %q)", line, event, data)
		}
	}
	c.err = sc.Err()
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
}

// collect returns the next n pokes, failing the test if they do not come
// within d.
func (c *sseClient) collect(t *testing.T, n int, d time.Duration) []received {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var got []received
	for len(got) < n {
		select {
		case r := <-c.pokes:
			got = append(got, r)
		case <-c.done:
			for len(got) < n && len(c.pokes) > 0 {
				got = append(got, <-c.pokes)
			}
			if len(got) < n {
				t.Fatalf("the stream ended (%v) after %d of %d pokes: %v", c.err, len(got), n, pokesOf(got))
			}
		case <-timer.C:
			t.Fatalf("%d of %d pokes within %v: %v", len(got), n, d, pokesOf(got))
		}
	}
	return got
}

// quiet fails the test if a poke is waiting or arrives within d.
func (c *sseClient) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	if len(c.pokes) > 0 {
		t.Fatalf("unexpected poke %+v", (<-c.pokes).poke)
	}
	select {
	case r := <-c.pokes:
		t.Fatalf("unexpected poke %+v", r.poke)
	case <-time.After(d):
	}
}

func pokesOf(rs []received) []poke {
	out := make([]poke, len(rs))
	for i, r := range rs {
		out[i] = r.poke
	}
	return out
}

// checkPositions fails unless pokes are of stream, at positions from,
// from+1, ... in order, with increasing global positions; globals, if
// set, are the global positions the writes were answered with.
func checkPositions(t *testing.T, pokes []poke, name string, from int64, globals map[int64]int64) {
	t.Helper()
	if err := positionsError(pokes, name, from, globals); err != nil {
		t.Fatal(err)
	}
}

func positionsError(pokes []poke, name string, from int64, globals map[int64]int64) error {
	for i, p := range pokes {
		want := from + int64(i)
		switch {
		case p.Stream != name || p.Position != want:
			return fmt.Errorf("poke %d is %s@%d, want %s@%d (gap or duplicate): %v", i, p.Stream, p.Position, name, want, pokes)
		case i > 0 && p.GlobalPosition <= pokes[i-1].GlobalPosition:
			return fmt.Errorf("poke %d has global position %d after %d", i, p.GlobalPosition, pokes[i-1].GlobalPosition)
		case globals != nil && globals[p.Position] != p.GlobalPosition:
			return fmt.Errorf("poke %d has global position %d, the write answered %d", i, p.GlobalPosition, globals[p.Position])
		}
	}
	return nil
}

// checkGlobalOrder fails unless pokes are in increasing global order and
// each stream's positions run from 0 to its count in want, each once.
func checkGlobalOrder(t *testing.T, pokes []poke, want map[string]int) {
	t.Helper()
	if err := globalOrderError(pokes, want); err != nil {
		t.Fatal(err)
	}
}

func globalOrderError(pokes []poke, want map[string]int) error {
	next := map[string]int64{}
	for i, p := range pokes {
		if i > 0 && p.GlobalPosition <= pokes[i-1].GlobalPosition {
			return fmt.Errorf("poke %d (%+v) is not after poke %d (%+v) in global order", i, p, i-1, pokes[i-1])
		}
		if _, ok := want[p.Stream]; !ok {
			return fmt.Errorf("poke %d is of stream %s, which the subscription does not follow", i, p.Stream)
		}
		if p.Position != next[p.Stream] {
			return fmt.Errorf("poke %d is %s@%d, want position %d (gap or duplicate)", i, p.Stream, p.Position, next[p.Stream])
		}
		next[p.Stream]++
	}
	for name, n := range want {
		if next[name] != int64(n) {
			return fmt.Errorf("%d pokes of %s, want %d", next[name], name, n)
		}
	}
	return nil
}

// The checks fail on what they are there to catch.
func TestPokeChecksCanFail(t *testing.T) {
	good := []poke{{"s", 0, 1000}, {"s", 1, 2000}, {"s", 2, 3000}}
	if err := positionsError(good, "s", 0, nil); err != nil {
		t.Fatal(err)
	}
	for name, pokes := range map[string][]poke{
		"duplicate": {{"s", 0, 1000}, {"s", 1, 2000}, {"s", 1, 2000}},
		"gap":       {{"s", 0, 1000}, {"s", 2, 3000}},
		"order":     {{"s", 0, 2000}, {"s", 1, 1000}},
	} {
		if positionsError(pokes, "s", 0, nil) == nil {
			t.Errorf("positionsError passes a %s", name)
		}
		if globalOrderError(pokes, map[string]int{"s": 3}) == nil {
			t.Errorf("globalOrderError passes a %s", name)
		}
	}
	if globalOrderError(good, map[string]int{"s": 3, "t": 1}) == nil {
		t.Error("globalOrderError passes a missing stream")
	}
}

// rpc posts body to /rpc with ns's token and decodes the answer into out.
func (g *gateway) rpc(t testing.TB, ns string, out any, body ...any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Error(err)
		return
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.http.URL+"/rpc", bytes.NewReader(data))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Authorization", "Bearer t-"+ns)
	resp, err := g.http.Client().Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: %d %s", data, resp.StatusCode, answer)
		return
	}
	if err := json.Unmarshal(answer, out); err != nil {
		t.Errorf("%s: %s: %v", data, answer, err)
	}
}

// write writes n messages to stream in one stream.write.
func (g *gateway) write(t testing.TB, ns, name string, n int) writeResult {
	t.Helper()
	var res writeResult
	if n == 1 {
		g.rpc(t, ns, &res, "stream.write", name, map[string]any{"type": "Written", "data": map[string]int{"i": 0}})
		return res
	}
	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = map[string]any{"type": "Written", "data": map[string]int{"i": i}}
	}
	g.rpc(t, ns, &res, "stream.write", name, msgs)
	return res
}

// writeConcurrently makes n single-message writes to stream from writers
// goroutines and returns each position's global position. It may run in
// a goroutine of its own: it fails the test with Errorf.
func (g *gateway) writeConcurrently(t *testing.T, ns, name string, writers, n int) map[int64]int64 {
	t.Helper()
	var mu sync.Mutex
	globals := map[int64]int64{}
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				res := g.write(t, ns, name, 1)
				mu.Lock()
				globals[res.Position] = res.GlobalPosition
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(globals) != n {
		t.Errorf("%d writes answered %d distinct positions", n, len(globals))
	}
	return globals
}

// waitOpen waits until the gateway has n open subscriptions.
func (g *gateway) waitOpen(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for g.Subscriptions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d open subscriptions after %v, want %d", g.Subscriptions(), d, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A stream subscription sees every write exactly once, in order, whoever
// writes; a reconnect from the last seen position + 1 while writes go on
// continues with neither a gap nor a duplicate.
func TestSubscribeStreamSeesEveryWriteOnce(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns := env.Namespace(t)
	sub := g.subscribe(t, ns, "stream=acct-1")
	globals := g.writeConcurrently(t, ns, "acct-1", 4, 50)
	checkPositions(t, pokesOf(sub.collect(t, 50, 30*time.Second)), "acct-1", 0, globals)
	sub.quiet(t, 300*time.Millisecond)
	sub.close()

	// Reconnect from 50 (and subscribe from 0 again) while 40 more
	// writes race the history read.
	more := make(chan map[int64]int64, 1)
	go func() { more <- g.writeConcurrently(t, ns, "acct-1", 4, 40) }()
	again := g.subscribe(t, ns, "stream=acct-1&position=50")
	all := g.subscribe(t, ns, "stream=acct-1&position=0")
	for p, gp := range <-more {
		globals[p] = gp
	}
	checkPositions(t, pokesOf(again.collect(t, 40, 30*time.Second)), "acct-1", 50, globals)
	checkPositions(t, pokesOf(all.collect(t, 90, 30*time.Second)), "acct-1", 0, globals)
	again.quiet(t, 300*time.Millisecond)
	all.quiet(t, 0)
}

// categoryRows reads category.get's answer as pokes.
func (g *gateway) categoryRows(t *testing.T, ns, cat string) []poke {
	t.Helper()
	var rows [][]json.RawMessage
	g.rpc(t, ns, &rows, "category.get", cat, map[string]any{"batchSize": -1})
	out := make([]poke, len(rows))
	for i, row := range rows {
		if err := json.Unmarshal(row[1], &out[i].Stream); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(row[3], &out[i].Position); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(row[4], &out[i].GlobalPosition); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A category subscription gets its streams' events and no others, history
// and then live writes, in global order, each once; one from a global
// position gets exactly the events from there.
func TestSubscribeCategoryInGlobalOrder(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns := env.Namespace(t)
	streams := []string{"cat-1", "cat-2", "cat-3", "dog-1", "category-1"}
	for range 4 {
		for _, name := range streams {
			g.write(t, ns, name, 1)
		}
	}
	sub := g.subscribe(t, ns, "category=cat&position=0")
	var wg sync.WaitGroup
	for _, name := range streams {
		wg.Go(func() {
			for range 5 {
				g.write(t, ns, name, 1)
			}
		})
	}
	wg.Wait()
	got := pokesOf(sub.collect(t, 27, 30*time.Second))
	checkGlobalOrder(t, got, map[string]int{"cat-1": 9, "cat-2": 9, "cat-3": 9})
	sub.quiet(t, 300*time.Millisecond)
	if rows := g.categoryRows(t, ns, "cat"); !slices.Equal(rows, got) {
		t.Fatalf("the subscription's pokes differ from category.get:\n%v\n%v", got, rows)
	}
	from := got[12].GlobalPosition
	mid := g.subscribe(t, ns, fmt.Sprintf("category=cat&position=%d", from))
	if rest := pokesOf(mid.collect(t, 15, 30*time.Second)); !slices.Equal(rest, got[12:]) {
		t.Fatalf("from global position %d: %v, want %v", from, rest, got[12:])
	}
	mid.quiet(t, 300*time.Millisecond)
}

// With consumer groups, each stream's pokes go to exactly one member: the
// one Message DB's hash of its cardinal id names.
func TestSubscribeConsumerGroup(t *testing.T) {
	members := map[string]int64{"x-1": 0, "x-2": 1, "x-3": 0, "x-123": 1}
	for name, m := range members {
		if got := consumerMember(name, 2); got != m {
			t.Fatalf("consumerMember(%s, 2) = %d, Message DB's is %d", name, got, m)
		}
	}
	g := startGateway(t, SubscribeOptions{}, nil)
	ns := env.Namespace(t)
	for name := range members {
		g.write(t, ns, name, 2)
	}
	subs := []*sseClient{
		g.subscribe(t, ns, "category=x&consumer=0&size=2"),
		g.subscribe(t, ns, "category=x&consumer=1&size=2&position=0"),
	}
	for name := range members {
		g.write(t, ns, name, 1)
		g.write(t, ns, name, 1)
	}
	for m, sub := range subs {
		want := map[string]int{}
		for name, member := range members {
			if member == int64(m) {
				want[name] = 4
			}
		}
		checkGlobalOrder(t, pokesOf(sub.collect(t, 8, 30*time.Second)), want)
		sub.quiet(t, 300*time.Millisecond)
	}
}

// all=true follows every stream of the namespace, categories or not.
func TestSubscribeAll(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns, other := env.Namespace(t), env.Namespace(t)
	streams := []string{"a-1", "b-2", "c", "Account:Orders+x"}
	for _, name := range streams {
		g.write(t, ns, name, 1)
		g.write(t, other, name, 1)
	}
	sub := g.subscribe(t, ns, "all=true")
	for _, name := range streams {
		g.write(t, other, name, 1)
		g.write(t, ns, name, 2)
	}
	want := map[string]int{}
	for _, name := range streams {
		want[name] = 3
	}
	checkGlobalOrder(t, pokesOf(sub.collect(t, 12, 30*time.Second)), want)
	sub.quiet(t, 300*time.Millisecond)
}

// A subscriber never sees another namespace's streams, whatever it
// subscribes to, and its token works in its namespace only.
func TestSubscribeNamespaceIsolation(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns1, ns2 := env.Namespace(t), env.Namespace(t)
	var subs []*sseClient
	for _, q := range []string{"stream=acct-1", "category=acct", "all=true"} {
		// The token as a query parameter, as EventSource sends it.
		subs = append(subs, g.subscribe(t, "", q+"&token=t-"+ns1))
	}
	theirs := g.subscribe(t, ns2, "stream=acct-1")
	for range 3 {
		g.write(t, ns2, "acct-1", 1)
	}
	mine := g.write(t, ns1, "acct-1", 1)
	for _, sub := range subs {
		got := pokesOf(sub.collect(t, 1, 30*time.Second))
		if want := (poke{"acct-1", 0, mine.GlobalPosition}); got[0] != want {
			t.Fatalf("poke %+v, want %+v", got[0], want)
		}
		sub.quiet(t, 300*time.Millisecond)
	}
	checkPositions(t, pokesOf(theirs.collect(t, 3, 30*time.Second)), "acct-1", 0, nil)
	theirs.quiet(t, 0)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.http.URL+"/subscribe?stream=acct-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer t-"+ns1)
	req.Header.Set(NamespaceHeader, ns2)
	resp, err := g.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ns1's token in ns2: %d, want 403", resp.StatusCode)
	}
}

// Every bad parameter is a 400 INVALID_REQUEST that says what is wrong,
// before any subscription opens; no token is 401, a bad one too.
func TestSubscribeBadRequests(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns := env.Namespace(t)
	for _, tc := range []struct{ query, want string }{
		{"", "exactly one of stream"},
		{"position=3", "exactly one of stream"},
		{"stream=a-1&category=a", "exactly one of stream"},
		{"stream=a-1&all=true", "exactly one of stream"},
		{"category=a&all=true", "exactly one of stream"},
		{"all=yes", `all must be "true"`},
		{"all=", `all must be "true"`},
		{"stream=", "stream must be a stream name"},
		{"stream=%ff", "stream must be a stream name"},
		{"stream=" + strings.Repeat("x", 1025), "stream must be a stream name"},
		{"category=", "category must be a category name"},
		{"category=a-1", "category must be a category name"},
		{"stream=a-1&stream=a-2", "stream is given 2 times"},
		{"stream=a-1&position=x", "position must be an integer >= 0"},
		{"stream=a-1&position=-1", "position must be an integer >= 0"},
		{"stream=a-1&position=1.5", "position must be an integer >= 0"},
		{"stream=a-1&position=99999999999999999999", "position must be an integer >= 0"},
		{"category=a&position=", "position must be an integer >= 0"},
		{"category=a&consumer=0", "consumer and size go together"},
		{"category=a&size=2", "consumer and size go together"},
		{"category=a&consumer=2&size=2", "consumer must be an integer from 0 to size-1 (1)"},
		{"category=a&consumer=-1&size=2", "consumer must be an integer from 0 to size-1"},
		{"category=a&consumer=x&size=2", "consumer must be an integer from 0 to size-1"},
		{"category=a&consumer=0&size=0", "size must be an integer >= 1"},
		{"category=a&consumer=0&size=two", "size must be an integer >= 1"},
		{"stream=a-1&consumer=0&size=2", "they need category="},
		{"all=true&consumer=0&size=2", "they need category="},
		{"category=a&consumerGroupMember=0&consumerGroupSize=2", "consumer=M&size=N"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, status, body := g.open(t, ns, tc.query)
			var e struct{ Error Error }
			if err := json.Unmarshal([]byte(body), &e); err != nil || status != http.StatusBadRequest || e.Error.Code != CodeInvalidRequest || !strings.Contains(e.Error.Message, tc.want) {
				t.Fatalf("%d %s, want 400 INVALID_REQUEST containing %q", status, body, tc.want)
			}
		})
	}
	for _, tc := range []struct{ token, code string }{{"", CodeAuthRequired}, {"nope", CodeAuthInvalidToken}} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.http.URL+"/subscribe?stream=a-1&token="+tc.token, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := g.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), tc.code) {
			t.Fatalf("token %q: %d %s, want 401 %s", tc.token, resp.StatusCode, body, tc.code)
		}
	}
	if n := g.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions open after refused requests", n)
	}
	// Without a watch: 503, whatever is asked.
	bare, err := New(Options{Client: env.Client, Auth: tokenAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	bare.Handler().ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/subscribe?stream=a-1", nil))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "without a watch") {
		t.Fatalf("without a watch: %d %s", w.Code, w.Body)
	}
}

// smallBuffers makes every accepted connection's send buffer small, so
// that a client that does not read blocks the server's writes soon.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// A subscriber that stops reading is disconnected once its buffer
// overflows, long before its write timeout, and neither the watch nor a
// subscriber that keeps up waits for it.
func TestSubscribeSlowSubscriberIsDisconnected(t *testing.T) {
	g := startGateway(t, SubscribeOptions{Buffer: 8, WriteTimeout: time.Minute}, func(l net.Listener) net.Listener { return smallBuffers{l} })
	ns := env.Namespace(t)
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	slow, err := dialer.DialContext(t.Context(), "tcp", g.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := fmt.Fprintf(slow, "GET /subscribe?all=true&token=t-%s HTTP/1.1\r\nHost: gateway\r\n\r\n", ns); err != nil {
		t.Fatal(err)
	}
	g.waitOpen(t, 1, 10*time.Second)
	fast := g.subscribe(t, ns, "all=true")

	const writers, writes, batch = 4, 15, 20
	start := time.Now()
	var wg sync.WaitGroup
	want := map[string]int{}
	for w := range writers {
		name := fmt.Sprintf("s-%d", w)
		want[name] = writes * batch
		wg.Go(func() {
			for range writes {
				g.write(t, ns, name, batch)
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes of %d events took %v", writers*writes, batch, time.Since(start))
	got := pokesOf(fast.collect(t, writers*writes*batch, time.Minute))
	checkGlobalOrder(t, got, want)
	g.waitOpen(t, 1, 10*time.Second)
	// The slow client reads what was sent, then the end of the response.
	if err := slow.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, slow)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the slow subscriber's connection is still open after %d bytes", n)
	}
	t.Logf("the slow subscriber got %d bytes before it was disconnected", n)
	fast.quiet(t, 0)
}

// History that crosses sealed segments is served, every position once,
// for a stream and for its category, from the start and from the middle.
func TestSubscribeHistoryCrossesSegments(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns := env.Namespace(t)
	sealer, err := stream.New(env.Client, stream.Options{Sealer: true})
	if err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKey{Namespace: ns, Name: "big-1"}
	const total = 150
	for range total / 10 {
		batch := make([]stream.EventData, 10)
		for i := range batch {
			batch[i] = stream.EventData{Type: "Big"}
		}
		if _, err := sealer.Append(t.Context(), key, batch, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(t.Context(), key, es); err != nil {
		t.Fatal(err)
	}
	if es.Head.First < 64 {
		t.Fatalf("head.first = %d: not enough is sealed for the test", es.Head.First)
	}
	events, err := sealer.Read(t.Context(), key, 0, total)
	if err != nil {
		t.Fatal(err)
	}
	globals := map[int64]int64{}
	for _, ev := range events {
		if globals[ev.Position], err = globalPosition(ev.GlobalPosition); err != nil {
			t.Fatal(err)
		}
	}
	whole := g.subscribe(t, ns, "stream=big-1")
	checkPositions(t, pokesOf(whole.collect(t, total, 30*time.Second)), "big-1", 0, globals)
	mid := g.subscribe(t, ns, "stream=big-1&position=30")
	checkPositions(t, pokesOf(mid.collect(t, total-30, 30*time.Second)), "big-1", 30, globals)
	cat := g.subscribe(t, ns, "category=big")
	checkPositions(t, pokesOf(cat.collect(t, total, 30*time.Second)), "big-1", 0, globals)
	catMid := g.subscribe(t, ns, fmt.Sprintf("category=big&position=%d", globals[30]))
	checkPositions(t, pokesOf(catMid.collect(t, total-30, 30*time.Second)), "big-1", 30, globals)
	for _, sub := range []*sseClient{whole, mid, cat, catMid} {
		sub.quiet(t, 100*time.Millisecond)
	}
}

// fakeInformer lets a test deliver watch events itself.
type fakeInformer struct {
	handler toolscache.ResourceEventHandler
	synced  chan struct{}
}

func (f *fakeInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	f.handler = h
	return fakeRegistration{f.synced}, nil
}

func (f *fakeInformer) RemoveEventHandler(toolscache.ResourceEventHandlerRegistration) error {
	return nil
}

type fakeRegistration struct{ done chan struct{} }

func (r fakeRegistration) HasSynced() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}
func (r fakeRegistration) HasSyncedChecker() toolscache.DoneChecker { return r }
func (r fakeRegistration) Name() string                             { return "fake" }
func (r fakeRegistration) Done() <-chan struct{}                    { return r.done }

// A subscription waits for the watch's first list. Then: a relist after a
// watch gap that jumps over events sealed meanwhile is served from the
// segments; a resync, a repeat and an update that adds no event poke
// nothing; a stream deleted and created again is served from 0.
func TestSubscribeWatchJumpsOverSealedEvents(t *testing.T) {
	watch := &fakeInformer{synced: make(chan struct{})}
	g := startGateway(t, SubscribeOptions{Watch: watch}, nil)
	ns := env.Namespace(t)
	sealer, err := stream.New(env.Client, stream.Options{Sealer: true})
	if err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKey{Namespace: ns, Name: "jump-1"}
	appendN := func(n int) *jobstatev1alpha1.EventStream {
		t.Helper()
		for n > 0 {
			batch := make([]stream.EventData, min(n, 20))
			for i := range batch {
				batch[i] = stream.EventData{Type: "Jumped"}
			}
			if _, err := sealer.Append(t.Context(), key, batch, stream.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			n -= len(batch)
		}
		return live(t, key)
	}
	old := appendN(6)

	type opening struct {
		sub    *sseClient
		status int
		body   string
	}
	opened := make(chan opening, 1)
	go func() {
		sub, status, body := g.open(t, ns, "stream=jump-1")
		opened <- opening{sub, status, body}
	}()
	select {
	case <-opened:
		t.Fatal("a subscription was served before the watch synced")
	case <-time.After(300 * time.Millisecond):
	}
	if n := g.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions registered before the watch synced", n)
	}
	close(watch.synced)
	var sub *sseClient
	select {
	case o := <-opened:
		if o.status != http.StatusOK {
			t.Fatalf("GET /subscribe: %d %s", o.status, o.body)
		}
		sub = o.sub
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription 10 s after the watch synced")
	}
	checkPositions(t, pokesOf(sub.collect(t, 6, 10*time.Second)), "jump-1", 0, nil)

	jumped := appendN(140)
	if jumped.Head.First <= 6 {
		t.Fatalf("head.first = %d: the jump does not reach into sealed events", jumped.Head.First)
	}
	watch.handler.OnUpdate(old, jumped)
	globals := globalsOf(t, sealer, key)
	checkPositions(t, pokesOf(sub.collect(t, 140, 30*time.Second)), "jump-1", 6, globals)

	label := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"relabeled":"yes"}}}`))
	relabeled := jumped.DeepCopy()
	if err := env.Client.Patch(t.Context(), relabeled, label); err != nil {
		t.Fatal(err)
	}
	watch.handler.OnUpdate(jumped, jumped)    // A resync.
	watch.handler.OnUpdate(old, jumped)       // A repeat.
	watch.handler.OnUpdate(jumped, relabeled) // No new event.
	sub.quiet(t, 300*time.Millisecond)

	newest := appendN(1)
	watch.handler.OnUpdate(relabeled, newest)
	checkPositions(t, pokesOf(sub.collect(t, 1, 10*time.Second)), "jump-1", 146, globalsOf(t, sealer, key))

	if err := env.Client.Delete(t.Context(), newest); err != nil {
		t.Fatal(err)
	}
	again := appendN(3)
	if again.UID == newest.UID {
		t.Fatal("the stream was not created again")
	}
	watch.handler.OnUpdate(newest, again)
	checkPositions(t, pokesOf(sub.collect(t, 3, 10*time.Second)), "jump-1", 0, globalsOf(t, sealer, key))
	sub.quiet(t, 300*time.Millisecond)
}

// live reads a stream from the API server.
func live(t *testing.T, key client.ObjectKey) *jobstatev1alpha1.EventStream {
	t.Helper()
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(t.Context(), key, es); err != nil {
		t.Fatal(err)
	}
	return es
}

// globalsOf is the global position of each of the stream's events.
func globalsOf(t *testing.T, c *stream.Client, key client.ObjectKey) map[int64]int64 {
	t.Helper()
	events, err := c.Read(t.Context(), key, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, ev := range events {
		if out[ev.Position], err = globalPosition(ev.GlobalPosition); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The response is EventoDB's framing, with keepalive comments; a
// subscription ends when its client leaves, and every one when the
// gateway closes, after which it refuses new ones.
func TestSubscribeEnds(t *testing.T) {
	g := startGateway(t, SubscribeOptions{Keepalive: 50 * time.Millisecond}, nil)
	ns := env.Namespace(t)
	res := g.write(t, ns, "acct-1", 1)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.http.URL+"/subscribe?stream=acct-1&token=t-"+ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw := bufio.NewReader(resp.Body)
	want := fmt.Sprintf("event: poke\ndata: {\"stream\":\"acct-1\",\"position\":0,\"globalPosition\":%d}\n\n: keepalive\n\n", res.GlobalPosition)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(raw, got); err != nil || string(got) != want {
		t.Fatalf("the response begins %q (%v), want %q", got, err, want)
	}
	resp.Body.Close()
	g.waitOpen(t, 0, 10*time.Second)

	subs := []*sseClient{g.subscribe(t, ns, "stream=acct-1"), g.subscribe(t, ns, "category=acct"), g.subscribe(t, ns, "all=true")}
	g.waitOpen(t, 3, 10*time.Second)
	select {
	case c := <-subs[1].comments:
		if c != "keepalive" {
			t.Fatalf("comment %q", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no keepalive within 5 s")
	}
	subs[0].close()
	g.waitOpen(t, 2, 10*time.Second)

	g.Close()
	for _, sub := range subs[1:] {
		select {
		case <-sub.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a subscription is still open 10 s after Close")
		}
	}
	g.waitOpen(t, 0, time.Second)
	_, status, body := g.open(t, ns, "stream=acct-1")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("after Close: %d %s, want 503", status, body)
	}
}

// The hub never blocks the watch: a subscriber whose buffer is full is
// marked behind and skipped, and the others get every change.
func TestHubNeverBlocks(t *testing.T) {
	watch := &fakeInformer{synced: make(chan struct{})}
	pokes := func(es *jobstatev1alpha1.EventStream, from int64) ([]poke, error) {
		return []poke{{es.Name, from, from}}, nil
	}
	h, err := newHub(SubscribeOptions{Watch: watch, Buffer: 2}, pokes, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := h.register("ns", subscription{all: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.register("other", subscription{all: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range int64(5) {
			es := func(v int64) *jobstatev1alpha1.EventStream {
				es := &jobstatev1alpha1.EventStream{Head: &jobstatev1alpha1.EventStreamHead{Version: v}}
				es.Namespace, es.Name = "ns", "s"
				return es
			}
			watch.handler.OnUpdate(es(v-1), es(v))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub blocked the watch")
	}
	select {
	case <-stuck.behind:
	default:
		t.Fatal("a subscriber that missed changes is not marked behind")
	}
	if len(stuck.changes) != 2 || len(other.changes) != 0 {
		t.Fatalf("%d and %d changes buffered, want 2 (the buffer) and 0 (another namespace)", len(stuck.changes), len(other.changes))
	}
	h.unregister(stuck)
	h.unregister(other)
	if h.open() != 0 {
		t.Fatalf("%d open after unregistering both", h.open())
	}
}

// Poke latency: from a write's answer to its poke, over 100 serial writes
// (logged, not asserted).
func TestPokeLatency(t *testing.T) {
	g := startGateway(t, SubscribeOptions{}, nil)
	ns := env.Namespace(t)
	sub := g.subscribe(t, ns, "stream=latency-1")
	const n = 100
	sent, answered := make([]time.Time, n), make([]time.Time, n)
	for i := range n {
		sent[i] = time.Now()
		if res := g.write(t, ns, "latency-1", 1); res.Position != int64(i) {
			t.Fatalf("write %d at position %d", i, res.Position)
		}
		answered[i] = time.Now()
	}
	got := sub.collect(t, n, 30*time.Second)
	checkPositions(t, pokesOf(got), "latency-1", 0, nil)
	fromAnswer, fromSend := make([]time.Duration, n), make([]time.Duration, n)
	for i, r := range got {
		fromAnswer[i], fromSend[i] = r.at.Sub(answered[i]), r.at.Sub(sent[i])
	}
	slices.Sort(fromAnswer)
	slices.Sort(fromSend)
	t.Logf("poke latency over %d writes: write answered → poke p50 %v (p90 %v, min %v, max %v); write sent → poke p50 %v",
		n, fromAnswer[n/2], fromAnswer[n*9/10], fromAnswer[0], fromAnswer[n-1], fromSend[n/2])
}
