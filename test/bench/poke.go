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

// C. Poke latency: one GET /subscribe on a stream, and serial stream.write
// calls to it; for each write, the time from its answer to the poke for
// its position, against the write's own round trip in the same run. The
// gateway follows an informer on EventStreams, as cmd/gateway does.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// pokeP50Target is the target for answer → poke.
const pokeP50Target = 20 * time.Millisecond

// pokeResult is C's measurements.
type pokeResult struct {
	writes             int
	afterAnswer, trips []time.Duration
	missed             int
}

// pokeLatency runs C in namespace ns.
func (b *bench) pokeLatency(ctx context.Context, ns string, writes int) (pokeResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	informers, err := cache.New(b.env.Config, cache.Options{Scheme: b.env.Scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		return pokeResult{}, err
	}
	watch, err := informers.GetInformer(ctx, &jobstatev1alpha1.EventStream{})
	if err != nil {
		return pokeResult{}, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return pokeResult{}, fmt.Errorf("the EventStream informer did not sync")
	}
	const token = "bench-token"
	srv, err := gateway.New(gateway.Options{Client: b.c, Stream: stream.Options{Sealer: true}, Auth: oneToken{token: token, namespace: ns},
		Subscribe: gateway.SubscribeOptions{Watch: watch}})
	if err != nil {
		return pokeResult{}, err
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Close()

	arrived, err := subscribe(ctx, ts.URL+"/subscribe?stream=poked-1&position=0&token="+token)
	if err != nil {
		return pokeResult{}, err
	}
	res := pokeResult{writes: writes}
	for i := range writes {
		body := fmt.Sprintf(`["stream.write","poked-1",{"type":%q,"data":{"i":%d}}]`, eventType, i)
		sent := time.Now()
		wresp, err := http.Post(ts.URL+"/rpc?token="+token, "application/json", strings.NewReader(body))
		if err != nil {
			return res, err
		}
		var out struct{ Position int64 }
		err = json.NewDecoder(wresp.Body).Decode(&out)
		wresp.Body.Close()
		answered := time.Now()
		if err != nil || wresp.StatusCode != http.StatusOK {
			return res, fmt.Errorf("stream.write: status %d: %v", wresp.StatusCode, err)
		}
		res.trips = append(res.trips, answered.Sub(sent))
		at, ok := arrived.wait(out.Position, 5*time.Second)
		if !ok {
			res.missed++
			continue
		}
		res.afterAnswer = append(res.afterAnswer, max(at.Sub(answered), 0))
	}
	return res, nil
}

// subscribe opens url, a GET /subscribe, and records its pokes until ctx
// ends.
func subscribe(ctx context.Context, url string) (*arrivals, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /subscribe: status %d", resp.StatusCode)
	}
	a := newArrivals()
	go func() {
		defer resp.Body.Close()
		a.read(resp.Body)
	}()
	return a, nil
}

// arrivals records when the poke for each position arrived.
type arrivals struct {
	mu   sync.Mutex
	cond *sync.Cond
	at   map[int64]time.Time
}

func newArrivals() *arrivals {
	a := &arrivals{at: map[int64]time.Time{}}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// read records every poke of an SSE body until it ends.
func (a *arrivals) read(body io.Reader) {
	scanner := bufio.NewScanner(body)
	for scanner.Scan() {
		data, ok := strings.CutPrefix(scanner.Text(), "data: ")
		if !ok {
			continue
		}
		now := time.Now()
		var poke struct{ Position int64 }
		if json.Unmarshal([]byte(data), &poke) != nil {
			continue
		}
		a.mu.Lock()
		a.at[poke.Position] = now
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

// wait returns when position's poke arrived, waiting up to d for it.
func (a *arrivals) wait(position int64, d time.Duration) (time.Time, bool) {
	timer := time.AfterFunc(d, func() {
		a.mu.Lock()
		a.cond.Broadcast()
		a.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		if at, ok := a.at[position]; ok {
			return at, true
		}
		if !time.Now().Before(deadline) {
			return time.Time{}, false
		}
		a.cond.Wait()
	}
}

// printPokeLatency prints C.
func printPokeLatency(out io.Writer, r pokeResult) {
	slices.Sort(r.afterAnswer)
	slices.Sort(r.trips)
	fmt.Fprintf(out, "gateway, poke latency: one GET /subscribe on a stream, %d serial stream.write calls to it\n", r.writes)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tp50\tp90\tmissed\t× baseline\ttarget")
	trip := percentile(r.trips, 0.5)
	fmt.Fprintf(tw, "stream.write round trip (baseline)\t%s\t%s\t\t1.00\t\n", ms(trip), ms(percentile(r.trips, 0.9)))
	p50 := percentile(r.afterAnswer, 0.5)
	verdict := "✓"
	if p50 > pokeP50Target || r.missed > 0 {
		verdict = "✗"
	}
	fmt.Fprintf(tw, "write answered → its poke\t%s\t%s\t%d\t%.2f\tp50 ≤ %s, none missed %s\n", ms(p50), ms(percentile(r.afterAnswer, 0.9)), r.missed,
		float64(p50)/float64(max(trip, 1)), ms(pokeP50Target), verdict)
	_ = tw.Flush()
	fmt.Fprintln(out, "A poke that arrives before the write's answer counts as 0.")
}
