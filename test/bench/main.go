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

// Command bench measures how fast JobState status updates go against one
// local envtest control plane (a real kube-apiserver and etcd), and prints
// every variant side by side with its ratio to the raw serial baseline of
// the same run:
//
//  1. raw serial: one goroutine, Status().Update carrying the object the
//     previous write returned — the per-object limit;
//  2. the update library, uncontended: one goroutine, one Updater;
//  3. several writers on one object, the usual client-go way:
//     retry.RetryOnConflict around Get + Status().Update;
//  4. several writers through one shared Updater (group commit);
//  5. several writers with one Updater each, as separate processes would be
//     (every race is a real 409 Conflict).
//
// Every variant increments a counter in status.data; "lost" is the number
// of successful updates the final counter does not show, and must be 0 for
// a correct variant. "writes" counts the status writes that reached the API
// server, conflicts included.
//
// The two serial variants run interleaved, in alternating rounds (ABBA), so
// that a change in machine load during the run weighs on both alike and
// their ratio stays meaningful on a busy machine.
//
// Two more tables follow (see lease.go): how long a lock takes to pass from
// one holder to a waiting one, pkg/lease against client-go leaderelection;
// and W writers on one JobState under spec.lockPolicy Lease against
// Optimistic. Then three on pkg/stream (see stream.go): append latency by
// stream length, W writers appending to W streams against W raw writers on
// W JobStates, and reading a long stream with a cold segment cache. Last,
// two on the EventoDB gateway (see gateway.go), through real HTTP clients:
// W clients writing to many streams against W raw writers on W JobStates,
// and C clients writing to one stream against raw serial updates of one
// object.
//
// Run it with `make bench` or `go run ./test/bench [-sections LIST]
// [-updates N] [-writers W] [-rounds R] [-warmup K] [-handoffs H]
// [-slow-handoffs S] [-lease-updates L] [-stream-lengths L1,L2,...]
// [-stream-appends A] [-stream-updates U] [-stream-page P]
// [-gateway-streams S] [-gateway-updates G] [-gateway-clients C]
// [-gateway-hot-calls H] [-gateway-pokes P]`;
// -sections picks the sections to run (updates, handoff, lock-policy,
// stream, gateway; and scale, only when named, see scale.go: [-scale-jobs N]
// [-scale-manager BIN] [-scale-manager-args ARGS]).
// Targets are reported, not asserted: the exit status is non-zero only when
// the control plane cannot be set up (or the run is interrupted).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

func main() {
	sections := flag.String("sections", strings.Join(defaultSections, ","), "comma-separated sections to run, of: "+strings.Join(allSections, ", ")+" (scale only when named: it takes minutes)")
	updates := flag.Int("updates", 1000, "updates per variant (split evenly among the writers), and calls per row of the gateway's one-stream table")
	writers := flag.Int("writers", 8, "concurrent writers in the contended variants, in the stream throughput rows and in the gateway's many-streams rows")
	rounds := flag.Int("rounds", 10, "rounds in which the two serial variants alternate (and the stream throughput rows)")
	warmup := flag.Int("warmup", 50, "writes to warm up the API server before the first variant")
	handoffs := flag.Int("handoffs", 50, "lock handoffs timed for pkg/lease and for leaderelection with a 200ms RetryPeriod")
	slowHandoffs := flag.Int("slow-handoffs", 9, "lock handoffs timed for leaderelection with its defaults (about 2s each)")
	leaseUpdates := flag.Int("lease-updates", 200, "updates per lockPolicy row (split evenly among the writers)")
	streamLengths := flag.String("stream-lengths", "100,10000,100000", "comma-separated stream lengths (events) at which appends are timed; the longest is also read")
	streamAppends := flag.Int("stream-appends", 400, "single-event appends timed per stream length")
	streamUpdates := flag.Int("stream-updates", 200, "appends, and raw updates, per writer in the stream throughput rows")
	streamPage := flag.Int("stream-page", 1000, "events per Read when reading the longest stream")
	gatewayStreams := flag.Int("gateway-streams", 100, "streams the gateway's many-streams row writes to (at least -writers)")
	gatewayUpdates := flag.Int("gateway-updates", 200, "stream.write calls, and raw updates, per writer in the gateway's many-streams rows")
	gatewayClients := flag.Int("gateway-clients", 64, "concurrent HTTP clients writing to the gateway's one stream")
	gatewayHot := flag.Int("gateway-hot-calls", 4000, "stream.write calls to the gateway's one stream, and raw serial updates (enough for group commit to reach its steady state)")
	gatewayPokes := flag.Int("gateway-pokes", 200, "serial stream.write calls to a subscribed stream, for the poke latency")
	scale := bindScaleFlags()
	flag.Parse()
	if *updates < 1 || *writers < 1 || *rounds < 1 || *warmup < 0 || *handoffs < 1 || *slowHandoffs < 1 || *leaseUpdates < 1 ||
		*streamAppends < 1 || *streamUpdates < 1 || *streamPage < 1 || *gatewayUpdates < 1 || *gatewayClients < 1 || *gatewayHot < 1 || *gatewayPokes < 1 || scale.jobs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -updates, -writers, -rounds, -handoffs, -slow-handoffs, -lease-updates, -stream-appends, -stream-updates, -stream-page, -gateway-updates, -gateway-clients, -gateway-hot-calls, -gateway-pokes and -scale-jobs must be at least 1, -warmup at least 0")
		os.Exit(2)
	}
	if *gatewayStreams < *writers {
		fmt.Fprintln(os.Stderr, "bench: -gateway-streams must be at least -writers (every writer has streams of its own)")
		os.Exit(2)
	}
	selected, err := parseSections(*sections)
	var lengths []int
	if err == nil {
		lengths, err = parseLengths(*streamLengths)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, options{
		sections: selected,
		updates:  *updates, writers: *writers, rounds: *rounds, warmup: *warmup,
		handoffs: *handoffs, slowHandoffs: *slowHandoffs, leaseUpdates: *leaseUpdates,
		stream: streamOptions{
			lengths: lengths, appends: *streamAppends,
			writers: *writers, perWriter: *streamUpdates, rounds: *rounds, page: *streamPage,
		},
		gateway: gatewayOptions{
			writers: *writers, streams: *gatewayStreams, perWriter: *gatewayUpdates, rounds: *rounds,
			clients: *gatewayClients, updates: *gatewayHot, pokes: *gatewayPokes,
		},
		scale: *scale,
	})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// allSections are the sections of the bench, in the order they run.
var allSections = []string{"updates", "handoff", "lock-policy", "stream", "gateway", "scale"}

// defaultSections run without -sections: all but scale, which takes over
// three minutes at its default size on 2 cores (see scale.go).
var defaultSections = allSections[:len(allSections)-1]

// parseSections parses -sections into the set of sections to run.
func parseSections(list string) (map[string]bool, error) {
	selected := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(allSections, name) {
			return nil, fmt.Errorf("-sections: unknown section %q (known: %s)", name, strings.Join(allSections, ", "))
		}
		selected[name] = true
	}
	return selected, nil
}

// parseLengths parses -stream-lengths: distinct positive lengths, returned
// ascending (the first is the reference of the latency ratios).
func parseLengths(list string) ([]int, error) {
	var lengths []int
	for field := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-stream-lengths: %q is not a positive number of events", field)
		}
		if slices.Contains(lengths, n) {
			return nil, fmt.Errorf("-stream-lengths: %d is given twice", n)
		}
		lengths = append(lengths, n)
	}
	slices.Sort(lengths)
	return lengths, nil
}

// options are the command's flags.
type options struct {
	// sections are the sections to run (see allSections).
	sections map[string]bool
	// rounds is the flag as given; a section caps it at its call count.
	updates, writers, rounds, warmup int
	// handoffs and slowHandoffs are the handoffs timed per lock (see
	// lease.go), leaseUpdates the updates per lockPolicy row.
	handoffs, slowHandoffs, leaseUpdates int
	// stream sizes the stream section (see stream.go).
	stream streamOptions
	// gateway sizes the gateway section (see gateway.go).
	gateway gatewayOptions
	// scale sizes the scale section (see scale.go).
	scale scaleOptions
}

// variant is one way of incrementing the counter; it becomes one row.
type variant struct {
	name   string
	target target
	// writers is the number of goroutines; 1 for the serial variants.
	writers int
	// lockPolicy is the spec.lockPolicy the JobState is created with; empty
	// leaves the default (Optimistic).
	lockPolicy jobstatev1alpha1.LockPolicy
	// setup prepares a run writing through c to the JobState start (as
	// created).
	setup func(ctx context.Context, c client.Client, start *jobstatev1alpha1.JobState) (newWriter, error)
}

// newWriter returns the call writer w repeats: one increment, retries
// included.
type newWriter func(w int) (func() error, error)

// target is what a row is expected to reach. Lost updates must always be 0.
type target struct {
	// minRatio is the lowest acceptable updates/s as a multiple of raw
	// serial; 0 means no throughput target.
	minRatio float64
	// noFailures requires every call to succeed.
	noFailures bool
}

// result is one row of the table.
type result struct {
	variant
	ok     int64 // calls that reported success
	failed int64 // calls that returned an error (after their retries)
	lost   int64 // successes the final counter does not show
	writes int64 // status writes sent to the API server, conflicts included
	// leaseWrites are the Lease creates and updates sent, conflicts
	// included.
	leaseWrites int64
	elapsed     time.Duration
	firstErr    error
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func run(ctx context.Context, o options) error {
	// envtest logs through controller-runtime's logger; without one set it
	// complains on stderr after 30s. Setup errors are returned, not logged.
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: stopping envtest:", err)
		}
	}()

	// Like env.Client (same config, no client-side rate limit), but a
	// client.WithWatch, which interceptor.NewClient needs to count writes.
	// Every variant, the baseline included, writes through it.
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	apiserver, err := apiServerVersion(env.Config)
	if err != nil {
		return err
	}
	fmt.Printf("jobstate bench: %d CPUs, GOMAXPROCS=%d, %s %s/%s; kube-apiserver %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, apiserver)

	b := &bench{env: env, c: c}
	sections := []struct {
		name string
		run  func() error
	}{
		{"updates", func() error { return b.updateSection(ctx, o) }},
		{"handoff", func() error { return b.handoffSection(ctx, o.handoffs, o.slowHandoffs) }},
		{"lock-policy", func() error { return b.lockPolicySection(ctx, o.leaseUpdates, o.writers) }},
		{"stream", func() error { return b.streamSection(ctx, o.stream) }},
		{"gateway", func() error { return b.gatewaySection(ctx, o.gateway) }},
		{"scale", func() error { return b.scaleSection(ctx, o.scale, o.writers) }},
	}
	first := true
	for _, s := range sections {
		if !o.sections[s.name] {
			continue
		}
		if !first {
			fmt.Println()
		}
		first = false
		if err := s.run(); err != nil {
			return err
		}
	}
	return nil
}

// apiServerVersion describes the version of the API server at cfg.
func apiServerVersion(cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("creating discovery client: %w", err)
	}
	version, err := dc.ServerVersion()
	if err != nil {
		return "", fmt.Errorf("getting the API server version: %w", err)
	}
	apiserver := version.GitVersion
	if strings.HasPrefix(apiserver, "v0.0.0") {
		// hack/envtest-assets.sh builds kube-apiserver from the module proxy
		// without version ldflags, so it does not know its own version.
		apiserver += fmt.Sprintf(" (unstamped build; assets dir %s)", testenv.K8sVersion)
	}
	return apiserver, nil
}

// updateSection runs the update variants and prints the first table.
func (b *bench) updateSection(ctx context.Context, o options) error {
	updates, writers, rounds, warmup := o.updates, o.writers, min(o.rounds, o.updates), o.warmup
	fmt.Printf("%d updates per variant; %d writers; serial variants interleaved in %d rounds\n\n", updates, writers, rounds)
	serial := []variant{
		{name: "raw serial (Status().Update, carried)", target: target{noFailures: true}, writers: 1, setup: rawSerial},
		{name: "library, uncontended (1 Updater)", target: target{minRatio: 0.90, noFailures: true}, writers: 1, setup: oneUpdater},
	}
	contended := []variant{
		{name: fmt.Sprintf("%d writers, RetryOnConflict(Get+Update)", writers), writers: writers, setup: retryOnConflict},
		{name: fmt.Sprintf("%d writers, library, shared Updater", writers), target: target{minRatio: 0.80, noFailures: true}, writers: writers, setup: oneUpdater},
		{name: fmt.Sprintf("%d writers, library, Updater per writer", writers), target: target{noFailures: true}, writers: writers, setup: updaterPerWriter},
	}

	if warmup > 0 {
		r, err := b.prepare(ctx, serial[0])
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		r.run(ctx, warmup)
	}

	var results []result
	// Serial variants: alternate A B, B A, ... so that load drift cancels.
	var rows []*row
	for _, v := range serial {
		r, err := b.prepare(ctx, v)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		rows = append(rows, r)
	}
	for i := range rounds {
		n := share(updates, rounds, i)
		for j := range rows {
			if i%2 == 1 {
				j = len(rows) - 1 - j
			}
			rows[j].run(ctx, n)
		}
	}
	for _, r := range rows {
		res, err := b.finish(ctx, r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		results = append(results, res)
	}
	more, err := b.runEach(ctx, contended, updates)
	if err != nil {
		return err
	}
	printTable(os.Stdout, append(results, more...))
	return nil
}

// runEach runs the variants one after the other, n calls each.
func (b *bench) runEach(ctx context.Context, variants []variant, n int) ([]result, error) {
	var results []result
	for _, v := range variants {
		r, err := b.prepare(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		r.run(ctx, n)
		res, err := b.finish(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		results = append(results, res)
	}
	return results, nil
}

// bench holds what every variant shares.
type bench struct {
	env *testenv.Env
	c   client.WithWatch
}

// row is a variant set up on its own JobState, with its running totals.
type row struct {
	variant
	key     client.ObjectKey
	initial int
	calls   []func() error // one per writer
	writes  atomic.Int64
	// leaseWrites counts Lease creates and updates.
	leaseWrites atomic.Int64
	ok          atomic.Int64
	failed      atomic.Int64
	elapsed     time.Duration

	errOnce  sync.Once
	firstErr error
}

// namespace creates a namespace with a fresh name.
func (b *bench) namespace(ctx context.Context) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := b.env.Client.Create(ctx, ns); err != nil {
		return "", fmt.Errorf("creating namespace: %w", err)
	}
	return ns.Name, nil
}

// prepare creates a fresh JobState in its own namespace and sets v up to
// write to it through a client that counts status and Lease writes.
func (b *bench) prepare(ctx context.Context, v variant) (*row, error) {
	ns, err := b.namespace(ctx)
	if err != nil {
		return nil, err
	}
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
		Spec:       jobstatev1alpha1.JobStateSpec{LockPolicy: v.lockPolicy},
	}
	if err := b.env.Client.Create(ctx, js); err != nil {
		return nil, fmt.Errorf("creating JobState: %w", err)
	}
	r := &row{variant: v, key: client.ObjectKeyFromObject(js)}
	if r.initial, err = b.counter(ctx, r.key); err != nil {
		return nil, err
	}

	// Count every status and Lease write the variant sends, whatever its
	// outcome.
	counted := interceptor.NewClient(b.c, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			r.writes.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok {
				r.leaseWrites.Add(1)
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok {
				r.leaseWrites.Add(1)
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	newCall, err := v.setup(ctx, counted, js)
	if err != nil {
		return nil, fmt.Errorf("setting up: %w", err)
	}
	for w := range v.writers {
		call, err := newCall(w)
		if err != nil {
			return nil, fmt.Errorf("setting up writer %d: %w", w, err)
		}
		r.calls = append(r.calls, call)
	}
	return r, nil
}

// run makes n calls, split evenly among the writers, and adds the time they
// took to r.elapsed. It stops early only when ctx ends.
func (r *row) run(ctx context.Context, n int) {
	begin := time.Now()
	var wg sync.WaitGroup
	for w, call := range r.calls {
		wg.Go(func() {
			for range share(n, len(r.calls), w) {
				if ctx.Err() != nil {
					return
				}
				if err := call(); err != nil {
					r.failed.Add(1)
					r.errOnce.Do(func() { r.firstErr = err })
					continue
				}
				r.ok.Add(1)
			}
		})
	}
	wg.Wait()
	r.elapsed += time.Since(begin)
}

// finish checks the final counter against the successes.
func (b *bench) finish(ctx context.Context, r *row) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, fmt.Errorf("interrupted: %w", err)
	}
	final, err := b.counter(ctx, r.key)
	if err != nil {
		return result{}, err
	}
	ok := r.ok.Load()
	return result{
		variant: r.variant, ok: ok, failed: r.failed.Load(), lost: ok - int64(final-r.initial),
		writes: r.writes.Load(), leaseWrites: r.leaseWrites.Load(), elapsed: r.elapsed, firstErr: r.firstErr,
	}, nil
}

// share is part i of n split into parts nearly equal parts.
func share(n, parts, i int) int {
	s := n / parts
	if i < n%parts {
		s++
	}
	return s
}

// counter reads status.data.counter live.
func (b *bench) counter(ctx context.Context, key client.ObjectKey) (int, error) {
	js := &jobstatev1alpha1.JobState{}
	if err := b.env.Client.Get(ctx, key, js); err != nil {
		return 0, fmt.Errorf("reading JobState %s: %w", key, err)
	}
	return testenv.Counter(js)
}

// rawSerial is the baseline: one writer, each write made from the object the
// previous write returned, so its resourceVersion is current and no read is
// needed.
func rawSerial(ctx context.Context, c client.Client, start *jobstatev1alpha1.JobState) (newWriter, error) {
	return func(int) (func() error, error) {
		js := start.DeepCopy()
		return func() error {
			err := testenv.Increment(js)
			if err == nil {
				err = c.Status().Update(ctx, js)
			}
			if err != nil {
				// The carried copy is unusable now (incremented but not
				// written, or stale): start again from the stored object.
				fresh := &jobstatev1alpha1.JobState{}
				if c.Get(ctx, client.ObjectKeyFromObject(start), fresh) == nil {
					js = fresh
				}
			}
			return err
		}, nil
	}, nil
}

// retryOnConflict is the usual client-go way: every call wraps Get,
// increment and Status().Update in retry.RetryOnConflict with
// retry.DefaultRetry, and gives up after its attempts.
func retryOnConflict(ctx context.Context, c client.Client, start *jobstatev1alpha1.JobState) (newWriter, error) {
	key := client.ObjectKeyFromObject(start)
	return func(int) (func() error, error) {
		return func() error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				js := &jobstatev1alpha1.JobState{}
				if err := c.Get(ctx, key, js); err != nil {
					return err
				}
				if err := testenv.Increment(js); err != nil {
					return err
				}
				return c.Status().Update(ctx, js)
			})
		}, nil
	}, nil
}

// oneUpdater gives all writers one Updater, as goroutines of one process
// would share it, so concurrent Updates are group-committed. Each writer
// carries its own object between calls.
func oneUpdater(ctx context.Context, c client.Client, start *jobstatev1alpha1.JobState) (newWriter, error) {
	u, err := update.New[*jobstatev1alpha1.JobState](c, update.Options{Status: true})
	if err != nil {
		return nil, err
	}
	return func(int) (func() error, error) {
		js := start.DeepCopy()
		return func() error { return u.Update(ctx, js, testenv.Increment) }, nil
	}, nil
}

// updaterPerWriter gives every writer its own Updater, as separate
// processes would have: nothing is group-committed and every race is a real
// 409 Conflict. The one-minute Timeout keeps a writer that keeps losing in
// line instead of giving up after DefaultMaxAttempts.
func updaterPerWriter(ctx context.Context, c client.Client, start *jobstatev1alpha1.JobState) (newWriter, error) {
	return func(int) (func() error, error) {
		u, err := update.New[*jobstatev1alpha1.JobState](c, update.Options{Status: true, Timeout: time.Minute})
		if err != nil {
			return nil, err
		}
		js := start.DeepCopy()
		return func() error { return u.Update(ctx, js, testenv.Increment) }, nil
	}, nil
}

// printTable writes the results with their ratio to the first row, raw
// serial, then the first error of every row that had failures.
func printTable(out io.Writer, results []result) {
	base := results[0].rate()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\tupdates ok\tfailed\tlost\twrites\telapsed\tupdates/s\t× raw serial\ttarget")
	met, total := 0, 0
	for _, r := range results {
		ratio := r.rate() / base
		pass := checkTarget(r, ratio)
		total++
		if pass {
			met++
		}
		tgt := describeTarget(r.target, pass)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.0f\t%.2f\t%s\n",
			r.name, r.ok, r.failed, r.lost, r.writes, r.elapsed.Round(time.Millisecond), r.rate(), ratio, tgt)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "targets met: %d of %d (lost must be 0 in every row)\n", met, total)
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "%s: first error of %d: %s\n", r.name, r.failed, truncate(r.firstErr.Error(), 300))
		}
	}
}

// checkTarget reports whether r met its target: no lost updates, and the
// ratio and failure count it asks for.
func checkTarget(r result, ratio float64) bool {
	return r.lost == 0 &&
		(r.target.minRatio == 0 || ratio >= r.target.minRatio) &&
		(!r.target.noFailures || r.failed == 0)
}

// describeTarget renders a target such as "≥0.90, 0 failed, 0 lost ✓".
func describeTarget(t target, pass bool) string {
	var parts []string
	if t.minRatio > 0 {
		parts = append(parts, fmt.Sprintf("≥%.2f", t.minRatio))
	}
	if t.noFailures {
		parts = append(parts, "0 failed")
	}
	parts = append(parts, "0 lost")
	mark := "✓"
	if !pass {
		mark = "✗"
	}
	return strings.Join(parts, ", ") + " " + mark
}

// truncate shortens s to n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
