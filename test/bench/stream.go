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

// The stream section of the bench (pkg/stream), printed after the lock
// sections:
//
//  A. Append latency: single-event appends by one writer with one
//     stream.Client, on streams already holding 100, 10,000 and 100,000
//     events (-stream-lengths). The head is sealed into segments as it
//     grows, so an append should cost the same whatever the length.
//  B. Throughput: W writers, each appending to its own stream with its own
//     stream.Client, against W writers each updating its own JobState the
//     raw serial way (the baseline of the update table); once with sealing
//     clients (as the manager's), once with workers' clients, which cannot
//     seal, and the EventStream controller sealing for them.
//  C. Reading the longest stream from position 0 to the end with a fresh
//     stream.Client, whose segment cache is cold.
//
// Every stream is filled before anything is timed: appends of
// stream.MaxAppendEvents events each, which seal a segment per call.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/controllers"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// Targets of the stream section.
const (
	// maxLengthRatio is the highest acceptable append p50 (and p99) on the
	// longest stream as a multiple of the same figure on the shortest.
	maxLengthRatio = 1.3
	// minAppendRatio is the lowest acceptable appends/s of the writers as a
	// multiple of their raw updates/s.
	minAppendRatio = 0.8
)

// eventType is the type of every event the bench appends; each event's
// data is {"i": its position}, which the read check verifies.
const eventType = "Counted"

// streamOptions are the stream section's flags.
type streamOptions struct {
	// lengths are the stream lengths timed in A, ascending; the longest is
	// the one read in C.
	lengths []int
	// appends are the single-event appends timed per length in A.
	appends int
	// writers and perWriter size B: calls per writer, in rounds.
	writers, perWriter, rounds int
	// page is the max of every Read in C.
	page int
}

// lengthRow is one stream of A: filled to length, then timed.
type lengthRow struct {
	length int
	ns     string
	client *stream.Client
	// writes counts the creates and updates its Client sends (head writes
	// and sealed segments).
	writes atomic.Int64
	// fillCalls and fill: the appends that filled the stream, and their
	// time.
	fillCalls int
	fill      time.Duration
	// samples are the timed appends' latencies; timedWrites the writes they
	// sent.
	samples     []time.Duration
	timedWrites int64
	failed      int
	firstErr    error
	// version is the stream's version read live after the timed appends;
	// versionErr says why it is not the expected one.
	version    int64
	versionErr error
}

// streamName is the name of every stream of A (each is in its own
// namespace).
const streamName = "bench"

// key names r's stream.
func (r *lengthRow) key() client.ObjectKey {
	return client.ObjectKey{Namespace: r.ns, Name: streamName}
}

// readResult is C.
type readResult struct {
	length   int
	pages    int
	events   int
	requests int64 // API requests (gets and lists) the Reads sent
	elapsed  time.Duration
	err      error
}

// streamSection runs A, B and C and prints their tables. Filling and
// reading come first, so that C reads a stream of exactly its length, then
// the timed appends.
func (b *bench) streamSection(ctx context.Context, o streamOptions) error {
	rows, err := b.fillStreams(ctx, o.lengths)
	if err != nil {
		return err
	}
	read := b.readStream(ctx, rows[len(rows)-1], o.page)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	timeAppends(ctx, rows, o.appends)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	for _, r := range rows {
		r.checkVersion(ctx, int64(r.length+o.appends-r.failed-1))
	}
	flows, err := b.streamThroughput(ctx, o)
	if err != nil {
		return err
	}
	printAppendLatency(os.Stdout, rows, o.appends)
	fmt.Println()
	printStreamThroughput(os.Stdout, flows, o)
	fmt.Println()
	printRead(os.Stdout, read, o.page)
	return nil
}

// countWrites wraps c to add every create and update it sends to n.
func countWrites(c client.WithWatch, n *atomic.Int64) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			n.Add(1)
			return c.Update(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			n.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
}

// fillStreams creates one stream per length, each in a fresh namespace with
// its own Client, and fills it. The Client that filled a stream is the one
// timed on it: it carries the head it wrote last, as a writer would.
func (b *bench) fillStreams(ctx context.Context, lengths []int) ([]*lengthRow, error) {
	var rows []*lengthRow
	for _, length := range lengths {
		ns, err := b.namespace(ctx)
		if err != nil {
			return nil, err
		}
		r := &lengthRow{length: length, ns: ns}
		if r.client, err = stream.New(countWrites(b.c, &r.writes), stream.Options{Sealer: true}); err != nil {
			return nil, err
		}
		begin := time.Now()
		if r.fillCalls, err = fill(ctx, r.client, r.key(), length); err != nil {
			return nil, fmt.Errorf("filling the %s-event stream: %w", thousands(length), err)
		}
		r.fill = time.Since(begin)
		rows = append(rows, r)
	}
	return rows, nil
}

// fill appends length events to the empty stream key in batches of
// stream.MaxAppendEvents, checking that each batch lands where expected. It
// returns the number of appends.
func fill(ctx context.Context, sc *stream.Client, key client.ObjectKey, length int) (int, error) {
	calls := 0
	for first := 0; first < length; first += stream.MaxAppendEvents {
		n := min(stream.MaxAppendEvents, length-first)
		events := make([]stream.EventData, n)
		for i := range events {
			events[i] = counted(first + i)
		}
		res, err := sc.Append(ctx, key, events, stream.AppendOptions{})
		if err != nil {
			return calls, err
		}
		calls++
		if want := int64(first + n - 1); res.Version != want {
			return calls, fmt.Errorf("append of events %d to %d: stream at version %d, want %d", first, first+n-1, res.Version, want)
		}
	}
	return calls, nil
}

// counted is the event the bench stores at position i.
func counted(i int) stream.EventData {
	return stream.EventData{Type: eventType, Data: map[string]int{"i": i}}
}

// timeAppends makes n single-event appends on every stream, round-robin so
// that a change in machine load weighs on every length alike, and records
// each one's latency.
func timeAppends(ctx context.Context, rows []*lengthRow, n int) {
	before := make([]int64, len(rows))
	for j, r := range rows {
		before[j] = r.writes.Load()
	}
	for i := range n {
		for k := range rows {
			if ctx.Err() != nil {
				return
			}
			// Rotate who goes first, so no length always follows another.
			r := rows[(i+k)%len(rows)]
			begin := time.Now()
			_, err := r.client.Append(ctx, r.key(), []stream.EventData{counted(r.length + i)}, stream.AppendOptions{})
			if err != nil {
				r.failed++
				if r.firstErr == nil {
					r.firstErr = err
				}
				continue
			}
			r.samples = append(r.samples, time.Since(begin))
		}
	}
	for j, r := range rows {
		r.timedWrites = r.writes.Load() - before[j]
	}
}

// checkVersion reads the stream's version live and compares it with want.
func (r *lengthRow) checkVersion(ctx context.Context, want int64) {
	v, ok, err := r.client.Version(ctx, r.key())
	switch {
	case err != nil:
		r.versionErr = fmt.Errorf("reading the version: %w", err)
	case !ok:
		r.versionErr = fmt.Errorf("the stream has no events, want version %d", want)
	case v != want:
		r.versionErr = fmt.Errorf("the stream is at version %d, want %d", v, want)
	}
	r.version = v
}

// readStream reads r's stream from position 0 to its end, page events per
// Read, with a fresh Client (no segment cached), and checks that it got
// exactly the events fill stored, in order. Only the Reads are timed.
func (b *bench) readStream(ctx context.Context, r *lengthRow, page int) (res readResult) {
	res.length = r.length
	var requests atomic.Int64
	counted := interceptor.NewClient(b.c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			requests.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			requests.Add(1)
			return c.List(ctx, list, opts...)
		},
	})
	sc, err := stream.New(counted, stream.Options{})
	if err != nil {
		res.err = err
		return res
	}
	defer func() { res.requests = requests.Load() }()
	// Bounded: a page that adds nothing ends the loop, and there are no
	// more full pages than the stream has events.
	maxPages := r.length/page + 2
	for next := int64(0); next < int64(r.length) && res.pages < maxPages; res.pages++ {
		begin := time.Now()
		events, err := sc.Read(ctx, r.key(), next, page)
		res.elapsed += time.Since(begin)
		if err != nil {
			res.err = fmt.Errorf("reading from position %d: %w", next, err)
			return res
		}
		if len(events) == 0 {
			break
		}
		if err := checkPage(events, next); err != nil {
			res.err = err
			return res
		}
		res.events += len(events)
		next += int64(len(events))
	}
	// The stream must end where the last page did: a live version check,
	// outside the timing.
	if v, _, err := sc.Version(ctx, r.key()); err != nil {
		res.err = fmt.Errorf("reading the version: %w", err)
	} else if res.events != r.length || v != int64(r.length-1) {
		res.err = fmt.Errorf("read %d events of a stream at version %d, want %d events (0 to %d)", res.events, v, r.length, r.length-1)
	}
	return res
}

// checkPage checks that events are the ones fill stored at positions from,
// from+1, ...
func checkPage(events []stream.RecordedEvent, from int64) error {
	for i, e := range events {
		want := from + int64(i)
		if e.Position != want {
			return fmt.Errorf("event %d of the page read from %d is at position %d, want %d", i, from, e.Position, want)
		}
		var data struct{ I *int64 }
		if err := json.Unmarshal(e.Data, &data); err != nil || e.Type != eventType || data.I == nil || *data.I != want {
			return fmt.Errorf("event at position %d is %s %s, want %s {\"i\":%d}", want, e.Type, e.Data, eventType, want)
		}
	}
	return nil
}

// flow is one row of B: writers, each on its own object.
type flow struct {
	*row
	// okBy counts each writer's successful calls.
	okBy []int64
	// stored returns how many successful calls writer w's object shows.
	stored func(ctx context.Context, w int) (int64, error)
	// lost is the successes the objects do not show (negative: they show
	// more); mismatches describe every object that is off.
	lost       int64
	mismatches []string
}

// newFlow makes a row of writers from the calls, counting each writer's
// successes.
func newFlow(name string, t target, calls []func() error) *flow {
	f := &flow{row: &row{variant: variant{name: name, target: t, writers: len(calls)}}, okBy: make([]int64, len(calls))}
	for w, call := range calls {
		// A writer's calls run one at a time (rounds are sequential), so its
		// count needs no lock.
		f.calls = append(f.calls, func() error {
			err := call()
			if err == nil {
				f.okBy[w]++
			}
			return err
		})
	}
	return f
}

// streamThroughput runs B: the raw baseline and the appends, interleaved in
// rounds (ABBA) like the serial variants, then checks every object.
func (b *bench) streamThroughput(ctx context.Context, o streamOptions) ([]*flow, error) {
	var rawWrites, appendWrites atomic.Int64
	raw, err := b.rawFlow(ctx, o.writers, &rawWrites)
	if err != nil {
		return nil, fmt.Errorf("raw updates: %w", err)
	}
	appends, err := b.appendFlow(ctx, o.writers, &appendWrites, true)
	if err != nil {
		return nil, fmt.Errorf("stream appends: %w", err)
	}
	var workerWrites atomic.Int64
	workers, err := b.appendFlow(ctx, o.writers, &workerWrites, false)
	if err != nil {
		return nil, fmt.Errorf("worker appends: %w", err)
	}
	flows := []*flow{raw, appends, workers}
	counters := []*atomic.Int64{&rawWrites, &appendWrites, &workerWrites}
	for j := range flows {
		counters[j].Store(0) // Count the timed writes only.
	}
	if err := runInRounds(ctx, flows, o.rounds, o.perWriter, o.writers); err != nil {
		return nil, err
	}
	for j, f := range flows {
		f.writes.Store(counters[j].Load())
		if err := f.check(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return flows, nil
}

// rawFlow sets up the baseline of B: a JobState per writer in a fresh
// namespace, each written the raw serial way (Status().Update carrying the
// object the previous write returned).
func (b *bench) rawFlow(ctx context.Context, writers int, writes *atomic.Int64) (*flow, error) {
	ns, err := b.namespace(ctx)
	if err != nil {
		return nil, err
	}
	c := countWrites(b.c, writes)
	keys := make([]client.ObjectKey, writers)
	initial := make([]int, writers)
	var calls []func() error
	for w := range writers {
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("bench-%d", w)}}
		if err := b.env.Client.Create(ctx, js); err != nil {
			return nil, fmt.Errorf("creating JobState: %w", err)
		}
		keys[w] = client.ObjectKeyFromObject(js)
		if initial[w], err = b.counter(ctx, keys[w]); err != nil {
			return nil, err
		}
		newCall, err := rawSerial(ctx, c, js)
		if err != nil {
			return nil, err
		}
		call, err := newCall(w)
		if err != nil {
			return nil, err
		}
		calls = append(calls, call)
	}
	f := newFlow(fmt.Sprintf("raw (Status().Update, carried), %d JobStates", writers), target{noFailures: true}, calls)
	f.stored = func(ctx context.Context, w int) (int64, error) {
		n, err := b.counter(ctx, keys[w])
		return int64(n - initial[w]), err
	}
	return f, nil
}

// appendFlow sets up the appends of B: a stream and a stream.Client per
// writer in a fresh namespace, as separate processes would have. Each stream
// is created by one untimed append first (the baseline's JobStates exist
// before its timing too), which also leaves the Client carrying its head.
// The Clients are sealers (their appends seal the head, as the manager's
// do), or workers, whose heads the EventStream controller seals: it runs
// in a manager watching that namespace only, its writes not counted.
func (b *bench) appendFlow(ctx context.Context, writers int, writes *atomic.Int64, sealer bool) (*flow, error) {
	ns, err := b.namespace(ctx)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("stream.Append, %d streams, a stream.Client each, sealing", writers)
	if !sealer {
		name = fmt.Sprintf("stream.Append by workers, %d streams, the controller sealing", writers)
		if err := b.startSealer(ctx, ns); err != nil {
			return nil, err
		}
	}
	c := countWrites(b.c, writes)
	clients := make([]*stream.Client, writers)
	var calls []func() error
	for w := range writers {
		key := benchKey(ns, w)
		if clients[w], err = stream.New(c, stream.Options{Sealer: sealer}); err != nil {
			return nil, err
		}
		if _, err := clients[w].Append(ctx, key, []stream.EventData{counted(0)}, stream.ExpectVersion(stream.NoStream)); err != nil {
			return nil, fmt.Errorf("creating stream %s: %w", key, err)
		}
		i := 0
		calls = append(calls, func() error {
			i++
			_, err := clients[w].Append(ctx, key, []stream.EventData{counted(i)}, stream.AppendOptions{})
			return err
		})
	}
	f := newFlow(name, target{minRatio: minAppendRatio, noFailures: true}, calls)
	// The stream's version is the position of its last event; the creating
	// append put one at 0.
	f.stored = func(ctx context.Context, w int) (int64, error) {
		v, _, err := clients[w].Version(ctx, benchKey(ns, w))
		return v, err
	}
	return f, nil
}

// benchKey names writer w's stream of B.
func benchKey(ns string, w int) client.ObjectKey {
	return client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("bench-%d", w)}
}

// startSealer runs the EventStream controller, for namespace ns only, until
// ctx ends.
func (b *bench) startSealer(ctx context.Context, ns string) error {
	mgr, err := ctrl.NewManager(b.env.Config, ctrl.Options{
		Scheme: b.env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		// As cmd/manager: nothing reads managedFields.
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}, DefaultTransform: cache.TransformStripManagedFields()},
		Logger:     logr.Discard(),
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	r := &controllers.EventStreamReconciler{Client: mgr.GetClient(), Recorder: events.NewFakeRecorder(1 << 10)}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "sealer manager:", err)
		}
	}()
	return nil
}

// check compares every writer's successes with what its object shows.
func (f *flow) check(ctx context.Context) error {
	for w, ok := range f.okBy {
		stored, err := f.stored(ctx, w)
		if err != nil {
			return err
		}
		f.lost += ok - stored
		if stored != ok {
			f.mismatches = append(f.mismatches, fmt.Sprintf("writer %d: %d successful calls, its object shows %d", w, ok, stored))
		}
	}
	return nil
}

// printAppendLatency writes table A with the p50 and p99 of every length as
// multiples of the shortest's, then the fills and the errors.
func printAppendLatency(out io.Writer, rows []*lengthRow, appends int) {
	shortest := rows[0]
	fmt.Fprintf(out, "stream append latency: single-event Append, one writer with one stream.Client per stream, %d per stream, round-robin\n", appends)
	sorted := func(r *lengthRow) []time.Duration { return slices.Sorted(slices.Values(r.samples)) }
	base := sorted(shortest)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stream length\tappends ok\tfailed\twrites/append\tp50\tp99\tmax\tp50 × %s\tp99 × %s\ttarget\n",
		thousands(shortest.length), thousands(shortest.length))
	met := 0
	for i, r := range rows {
		s := sorted(r)
		p50, p99 := ratio(s, base, 0.50), ratio(s, base, 0.99)
		parts := []string{"0 failed", "version exact"}
		pass := r.failed == 0 && r.versionErr == nil && len(s) > 0
		if i == len(rows)-1 && i > 0 {
			parts = append([]string{fmt.Sprintf("p50, p99 ≤%.2f× %s", maxLengthRatio, thousands(shortest.length))}, parts...)
			pass = pass && p50 > 0 && p50 <= maxLengthRatio && p99 > 0 && p99 <= maxLengthRatio
		}
		if pass {
			met++
		}
		perAppend := 0.0
		if n := len(s) + r.failed; n > 0 {
			perAppend = float64(r.timedWrites) / float64(n)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%s\t%s\t%s\t%.2f\t%.2f\t%s\n", thousands(r.length), len(s), r.failed, perAppend,
			ms(percentile(s, 0.50)), ms(percentile(s, 0.99)), ms(percentile(s, 1)), p50, p99, describe(parts, pass))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "targets met: %d of %d\n", met, len(rows))
	for _, r := range rows {
		fmt.Fprintf(out, "fill of the %s-event stream (untimed): %s, Append calls of up to %d events: %d (%.0f events/s)\n",
			thousands(r.length), r.fill.Round(time.Millisecond), stream.MaxAppendEvents, r.fillCalls, float64(r.length)/r.fill.Seconds())
	}
	fmt.Fprintln(out, "writes/append: head updates and sealed segments sent during the timed appends (a seal about every 32 appends).")
	for _, r := range rows {
		if r.firstErr != nil {
			fmt.Fprintf(out, "%s events: first error of %d: %s\n", thousands(r.length), r.failed, truncate(r.firstErr.Error(), 300))
		}
		if r.versionErr != nil {
			fmt.Fprintf(out, "%s events: %s\n", thousands(r.length), r.versionErr)
		}
	}
}

// ratio is the p-quantile of s as a multiple of base's, 0 when either is
// empty.
func ratio(s, base []time.Duration, p float64) float64 {
	b := percentile(base, p)
	if len(s) == 0 || b == 0 {
		return 0
	}
	return float64(percentile(s, p)) / float64(b)
}

// printStreamThroughput writes table B with the appends' rate as a multiple
// of the raw updates', then every mismatch and error.
func printStreamThroughput(out io.Writer, flows []*flow, o streamOptions) {
	fmt.Fprintf(out, "%d writers, each on its own object, %d calls per writer; interleaved in %d rounds (ABBA)\n",
		o.writers, o.perWriter, min(o.rounds, o.perWriter))
	results := make([]result, len(flows))
	for i, f := range flows {
		results[i] = f.result()
	}
	printCallTable(out, results, "raw")
	fmt.Fprintln(out, "lost: successful calls their object does not show (its counter for raw; for a stream, its version, which")
	fmt.Fprintln(out, "  must equal the writer's successful appends: the untimed creating append put the first event at 0).")
	for _, f := range flows {
		f.printErrors(out)
	}
}

// result is f's row of a table.
func (f *flow) result() result {
	return result{variant: f.variant, ok: f.ok.Load(), failed: f.failed.Load(), lost: f.lost,
		writes: f.writes.Load(), elapsed: f.elapsed, firstErr: f.firstErr}
}

// printErrors writes f's mismatches and its first error.
func (f *flow) printErrors(out io.Writer) {
	for _, m := range f.mismatches {
		fmt.Fprintf(out, "%s: %s\n", f.name, m)
	}
	if f.firstErr != nil {
		fmt.Fprintf(out, "%s: first error of %d: %s\n", f.name, f.failed.Load(), truncate(f.firstErr.Error(), 300))
	}
}

// printCallTable writes results with each row's calls/s as a multiple of
// the first row's, named base, and how many met their targets.
func printCallTable(out io.Writer, results []result, base string) {
	baseRate := results[0].rate()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "variant\tcalls ok\tfailed\tlost\twrites\telapsed\tcalls/s\t× %s\ttarget\n", base)
	met := 0
	for _, r := range results {
		ratio := r.rate() / baseRate
		pass := checkTarget(r, ratio)
		if pass {
			met++
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.0f\t%.2f\t%s\n", r.name, r.ok, r.failed, r.lost, r.writes,
			r.elapsed.Round(time.Millisecond), r.rate(), ratio, describeTarget(r.target, pass))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "targets met: %d of %d\n", met, len(results))
}

// printRead writes table C.
func printRead(out io.Writer, r readResult, page int) {
	fmt.Fprintf(out, "reading the %s-event stream from position 0 to its end: a fresh stream.Client (cold segment cache), Read(from, %d)\n",
		thousands(r.length), page)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "events read\tReads\tAPI requests\telapsed\tevents/s\tcheck")
	check := fmt.Sprintf("exactly positions 0..%d in order", r.length-1)
	fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%.0f\t%s\n", r.events, r.pages, r.requests, r.elapsed.Round(time.Millisecond),
		float64(r.events)/r.elapsed.Seconds(), describe([]string{check}, r.err == nil))
	_ = tw.Flush()
	if r.err != nil {
		fmt.Fprintf(out, "stopped after %d events: %s\n", r.events, truncate(r.err.Error(), 300))
	}
}

// thousands renders n with thousands separators: 100000 is "100,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// runInRounds runs flows interleaved in rounds (ABBA: the order reverses
// every other round, so that a change in machine load weighs on all alike),
// perWriter × writers calls of each in all.
func runInRounds(ctx context.Context, flows []*flow, rounds, perWriter, writers int) error {
	rounds = min(rounds, perWriter)
	for i := range rounds {
		n := share(perWriter, rounds, i) * writers
		for j := range flows {
			if i%2 == 1 {
				j = len(flows) - 1 - j
			}
			flows[j].run(ctx, n)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}
