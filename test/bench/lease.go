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

// The lock sections of the bench, printed after the update table:
//
//  A. Handoff latency: the time from a holder's release returning to a
//     waiting candidate's acquisition returning, for pkg/lease (waiters
//     watch the Lease) and for client-go leaderelection (waiters poll every
//     RetryPeriod), with its defaults and with a 200ms RetryPeriod.
//  B. W writers, each with its own jobstate.Client, incrementing one
//     JobState created with spec.lockPolicy Optimistic, then another created
//     with Lease.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// Targets of section A.
const (
	// leaseP50Target is the highest acceptable p50 handoff of pkg/lease.
	leaseP50Target = 10 * time.Millisecond
	// minSpeedup is how many times faster than leaderelection with its
	// defaults pkg/lease must hand over (ratio of the p50s).
	minSpeedup = 100
)

// handoffTimeout bounds every wait of section A: a candidate starting to
// wait, a release, an acquisition. Far above the slowest expected handoff
// (about 4.4s: leaderelection's 2s RetryPeriod, jittered by up to 120%).
const handoffTimeout = 30 * time.Second

// handoffRow is one row of the handoff table.
type handoffRow struct {
	name string
	// measure times the handoffs into the row, using namespace ns.
	measure func(ctx context.Context, ns string, r *handoffRow)
	// samples are the measured handoffs, in order.
	samples []time.Duration
	// maxHolders is the most candidates that held the lock at once.
	maxHolders int64
	// p50Max, if set, is the highest acceptable p50.
	p50Max time.Duration
	// minSpeedup, if set, is how many times the p50 of pkg/lease must be
	// below this row's.
	minSpeedup float64
	err        error
}

// holding counts the candidates holding one lock at once: up after an
// acquisition returned, down before a release starts, so a handoff alone
// never counts two. It remembers the most it saw.
type holding struct {
	now, max atomic.Int64
}

func (h *holding) acquired() {
	n := h.now.Add(1)
	for {
		m := h.max.Load()
		if n <= m || h.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (h *holding) releasing() { h.now.Add(-1) }

// handoffSection times handoffs of one lock between two candidates, for
// pkg/lease and for client-go leaderelection, and prints the table.
func (b *bench) handoffSection(ctx context.Context, handoffs, slowHandoffs int) error {
	cs, err := kubernetes.NewForConfig(b.env.Config)
	if err != nil {
		return fmt.Errorf("creating clientset: %w", err)
	}
	// leaderelection logs every acquisition through the context's logger
	// (klog's global one, on stderr, if there is none): discard it. The zero
	// logr.Logger discards.
	ctx = klog.NewContext(ctx, klog.Logger{})

	rows := []handoffRow{{
		name: "pkg/lease (waiters watch the Lease)", p50Max: leaseP50Target,
		measure: func(ctx context.Context, ns string, r *handoffRow) { b.leaseHandoffs(ctx, ns, handoffs, r) },
	}, {
		name: "leaderelection, defaults (lease 15s, renew 10s, retry 2s)", minSpeedup: minSpeedup,
		measure: func(ctx context.Context, ns string, r *handoffRow) {
			electionHandoffs(ctx, cs, ns, electionTiming{15 * time.Second, 10 * time.Second, 2 * time.Second}, slowHandoffs, r)
		},
	}, {
		name: "leaderelection, retry 200ms (lease 2s, renew 1s)",
		measure: func(ctx context.Context, ns string, r *handoffRow) {
			electionHandoffs(ctx, cs, ns, electionTiming{2 * time.Second, time.Second, 200 * time.Millisecond}, handoffs, r)
		},
	}}
	for i := range rows {
		// A namespace per row: a row that fails leaves nothing in the way
		// of the next.
		ns, err := b.namespace(ctx)
		if err != nil {
			return err
		}
		rows[i].measure(ctx, ns, &rows[i])
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
	}
	printHandoffs(os.Stdout, rows)
	return nil
}

// acquisition is what a waiting candidate's Acquire returned, and when.
type acquisition struct {
	lock *lease.Lock
	at   time.Time
	err  error
}

// candidate is one pkg/lease client; watching receives a value whenever
// its Acquire has opened a watch on the Lease, that is when it waits.
type candidate struct {
	locks    *lease.Client
	watching chan struct{}
}

// leaseHandoffs ping-pongs one pkg/lease lock between two clients with
// distinct identities, as two processes would: the holder releases once
// the other is blocked in Acquire (its watch open), and the handoff is timed
// from Release returning to that Acquire returning. Then the roles swap.
func (b *bench) leaseHandoffs(ctx context.Context, ns string, n int, r *handoffRow) {
	// Cancelling the Acquire context of a held lock releases it: on an early
	// return this ends every wait and frees the lock.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var held holding
	defer func() { r.maxHolders = held.max.Load() }()

	newCandidate := func(identity string) (*candidate, error) {
		cand := &candidate{watching: make(chan struct{}, 1)}
		c := interceptor.NewClient(b.env.Client, interceptor.Funcs{
			Watch: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
				w, err := c.Watch(ctx, list, opts...)
				select {
				case cand.watching <- struct{}{}:
				default:
				}
				return w, err
			},
		})
		var err error
		cand.locks, err = lease.New(c, lease.Options{Identity: identity, AcquireTimeout: handoffTimeout})
		return cand, err
	}
	holder, err := newCandidate("bench-a")
	if err != nil {
		r.err = err
		return
	}
	waiter, err := newCandidate("bench-b")
	if err != nil {
		r.err = err
		return
	}
	key := client.ObjectKey{Namespace: ns, Name: "bench-handoff"}
	lock, err := holder.locks.Acquire(ctx, key)
	if err != nil {
		r.err = err
		return
	}
	held.acquired()

	for range n {
		select {
		case <-waiter.watching: // Left over from the previous round.
		default:
		}
		got := make(chan acquisition, 1)
		go func() {
			l, err := waiter.locks.Acquire(ctx, key)
			at := time.Now()
			if err == nil {
				held.acquired()
			}
			got <- acquisition{l, at, err}
		}()
		select {
		case <-waiter.watching:
		case a := <-got:
			r.err = fmt.Errorf("the waiter's Acquire returned while the lock was held (error: %v)", a.err)
			return
		case <-time.After(handoffTimeout):
			r.err = fmt.Errorf("the waiter did not start watching within %s", handoffTimeout)
			return
		}
		held.releasing()
		if err := lock.Release(ctx); err != nil {
			r.err = err
			return
		}
		released := time.Now()
		a, err := receive(ctx, got, "the waiter's Acquire")
		if err == nil {
			err = a.err
		}
		if err != nil {
			r.err = err
			return
		}
		r.samples = append(r.samples, a.at.Sub(released))
		holder, waiter, lock = waiter, holder, a.lock
	}
	held.releasing()
	if err := lock.Release(ctx); err != nil {
		r.err = err
	}
}

// electionTiming is a leaderelection configuration.
type electionTiming struct {
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

// elector is one leaderelection candidate: one RunOrDie, as one process
// would run it.
type elector struct {
	identity string
	cancel   context.CancelFunc
	// done is closed when RunOrDie has returned.
	done chan struct{}
	// leading receives the time OnStartedLeading was called.
	leading chan time.Time
	// leaders receives the identities OnNewLeader reports.
	leaders chan string
}

// startElector runs leaderelection.RunOrDie for identity in the background,
// with ReleaseOnCancel, until cancel is called.
func startElector(ctx context.Context, cs kubernetes.Interface, ns, name, identity string, t electionTiming, held *holding) *elector {
	ctx, cancel := context.WithCancel(ctx)
	e := &elector{
		identity: identity, cancel: cancel, done: make(chan struct{}),
		leading: make(chan time.Time, 1), leaders: make(chan string, 16),
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	go func() {
		defer close(e.done)
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			Name:            name,
			LeaseDuration:   t.leaseDuration,
			RenewDeadline:   t.renewDeadline,
			RetryPeriod:     t.retryPeriod,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					at := time.Now()
					held.acquired()
					e.leading <- at
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(identity string) {
					select {
					case e.leaders <- identity:
					default:
					}
				},
			},
		})
	}()
	return e
}

// electionHandoffs passes a leaderelection Lease back and forth between two
// candidates with ReleaseOnCancel. Each handoff: a new candidate starts and
// its first attempt finds the lock held (OnNewLeader reports the holder);
// after a random pause the holder's RunOrDie context is cancelled, and the
// handoff is timed from that RunOrDie returning — it returns only after
// ReleaseOnCancel wrote the release — to the waiter's OnStartedLeading.
//
// The pause is uniform in [0, RetryPeriod × (1+JitterFactor)), the range of
// the waiter's jittered retry interval, so that the release comes at a
// random point of the waiter's polling cycle, as it would in production;
// releasing right after the waiter's first attempt would time the worst
// case, a whole retry interval, every time.
func electionHandoffs(ctx context.Context, cs kubernetes.Interface, ns string, t electionTiming, n int, r *handoffRow) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var held holding
	defer func() { r.maxHolders = held.max.Load() }()
	const name = "bench-election"
	identities := [2]string{"bench-a", "bench-b"}

	holder := startElector(ctx, cs, ns, name, identities[0], t, &held)
	if _, err := receive(ctx, holder.leading, "the first candidate's OnStartedLeading"); err != nil {
		r.err = err
		return
	}
	maxPause := time.Duration(float64(t.retryPeriod) * (1 + leaderelection.JitterFactor))
	for i := range n {
		waiter := startElector(ctx, cs, ns, name, identities[(i+1)%2], t, &held)
		if err := awaitLeader(ctx, waiter, holder.identity); err != nil {
			r.err = err
			return
		}
		if err := sleep(ctx, rand.N(maxPause)); err != nil {
			r.err = err
			return
		}
		held.releasing()
		holder.cancel()
		if _, err := receive(ctx, holder.done, "the holder's RunOrDie returning"); err != nil {
			r.err = err
			return
		}
		released := time.Now()
		at, err := receive(ctx, waiter.leading, "the waiter's OnStartedLeading")
		if err != nil {
			r.err = err
			return
		}
		r.samples = append(r.samples, at.Sub(released))
		holder = waiter
	}
	held.releasing()
	holder.cancel()
	if _, err := receive(ctx, holder.done, "the last holder's RunOrDie returning"); err != nil {
		r.err = err
	}
}

// awaitLeader waits until e reports identity as the leader, that is until
// its first attempt found the lock held by identity.
func awaitLeader(ctx context.Context, e *elector, identity string) error {
	timer := time.NewTimer(handoffTimeout)
	defer timer.Stop()
	for {
		select {
		case id := <-e.leaders:
			if id == identity {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("candidate %s did not see leader %s within %s", e.identity, identity, handoffTimeout)
		}
	}
}

// receive waits handoffTimeout at most for a value from ch (or ch closing);
// what names the awaited event in the error.
func receive[T any](ctx context.Context, ch <-chan T, what string) (T, error) {
	timer := time.NewTimer(handoffTimeout)
	defer timer.Stop()
	var zero T
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-timer.C:
		return zero, fmt.Errorf("waited %s for %s", handoffTimeout, what)
	}
}

// sleep pauses for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// percentile is the p-quantile (0 ≤ p ≤ 1) of sorted, interpolating
// linearly between the two nearest ranks.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	x := p * float64(len(sorted)-1)
	i := int(x)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + time.Duration((x-float64(i))*float64(sorted[i+1]-sorted[i]))
}

// printHandoffs writes the handoff table with every row's p50 as a
// multiple of the first row's (pkg/lease), then the footnotes and errors.
func printHandoffs(out io.Writer, rows []handoffRow) {
	fmt.Fprintln(out, "lock handoff: holder's release returned → waiter's acquisition returned")
	p50 := func(r handoffRow) time.Duration {
		s := slices.Sorted(slices.Values(r.samples))
		return percentile(s, 0.50)
	}
	base := p50(rows[0])
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "lock\thandoffs\tp50\tp99\tmax\tmax holders\tp50 × pkg/lease\ttarget")
	met := 0
	for _, r := range rows {
		s := slices.Sorted(slices.Values(r.samples))
		ratio := "–"
		speedup := 0.0
		if base > 0 && len(s) > 0 {
			speedup = float64(percentile(s, 0.50)) / float64(base)
			ratio = fmt.Sprintf("%.0f", speedup)
			if speedup < 10 {
				ratio = fmt.Sprintf("%.2f", speedup)
			}
		}
		var parts []string
		pass := r.err == nil && len(s) > 0 && r.maxHolders == 1
		if r.p50Max > 0 {
			parts = append(parts, fmt.Sprintf("p50 ≤%s", r.p50Max))
			pass = pass && percentile(s, 0.50) <= r.p50Max
		}
		if r.minSpeedup > 0 {
			parts = append(parts, fmt.Sprintf("≥%.0f× pkg/lease", r.minSpeedup))
			pass = pass && speedup >= r.minSpeedup
		}
		parts = append(parts, "1 holder")
		if pass {
			met++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.name, len(s),
			ms(percentile(s, 0.50)), ms(percentile(s, 0.99)), ms(percentile(s, 1)), r.maxHolders, ratio,
			describe(parts, pass))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "targets met: %d of %d\n", met, len(rows))
	fmt.Fprintln(out, "pkg/lease: two lease.Clients (identities bench-a, bench-b) pass one lock back and forth; the holder releases once")
	fmt.Fprintln(out, "  the waiter is blocked in Acquire (its watch on the Lease open); timed from Release returning to Acquire returning.")
	fmt.Fprintln(out, "leaderelection: resourcelock.LeaseLock, ReleaseOnCancel; a fresh RunOrDie waits (its first attempt saw the lock")
	fmt.Fprintln(out, "  held), the holder's context is cancelled at a random point of the waiter's retry cycle (uniform in")
	fmt.Fprintln(out, "  [0, RetryPeriod × 2.2)); timed from the holder's RunOrDie returning (the release is written by then) to the")
	fmt.Fprintln(out, "  waiter's OnStartedLeading. Its latency spreads over that whole range, so with few handoffs its p50 is rough.")
	fmt.Fprintln(out, "max holders: candidates holding at once, counted up when an acquisition returns and down before a release starts.")
	fmt.Fprintln(out, "p99 interpolates between the two nearest ranks: with under 100 handoffs it lies between the two slowest.")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(out, "%s: stopped after %d handoffs: %s\n", r.name, len(r.samples), truncate(r.err.Error(), 300))
		}
	}
}

// ms renders d in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 100 && v > -100 {
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

// describe joins the parts of a target and marks whether it was met.
func describe(parts []string, pass bool) string {
	mark := "✓"
	if !pass {
		mark = "✗"
	}
	return strings.Join(parts, ", ") + " " + mark
}

// lockPolicySection runs W writers with a jobstate.Client each on a JobState
// created with spec.lockPolicy Optimistic, then on one created with Lease,
// and prints the table.
func (b *bench) lockPolicySection(ctx context.Context, updates, writers int) error {
	variants := []variant{
		{name: "Optimistic", lockPolicy: jobstatev1alpha1.LockPolicyOptimistic, writers: writers, setup: clientPerWriter},
		{name: "Lease", lockPolicy: jobstatev1alpha1.LockPolicyLease, writers: writers, setup: clientPerWriter},
	}
	var results []result
	for _, v := range variants {
		v.target = target{noFailures: true}
		r, err := b.prepare(ctx, v)
		if err != nil {
			return fmt.Errorf("lockPolicy %s: %w", v.name, err)
		}
		r.run(ctx, updates)
		res, err := b.finish(ctx, r)
		if err != nil {
			return fmt.Errorf("lockPolicy %s: %w", v.name, err)
		}
		results = append(results, res)
	}
	printLockPolicies(os.Stdout, results, updates, writers)
	return nil
}

// clientPerWriter gives every writer its own jobstate.Client with its own
// Identity, as separate worker processes would have, and has it call
// Client.Update, which holds the job's Lease around the update under
// lockPolicy Lease. The one-minute update Timeout and AcquireTimeout keep a
// writer that keeps losing in line instead of giving up (as in
// updaterPerWriter), so the rows compare the throughput of updates that all
// succeed.
func clientPerWriter(ctx context.Context, c client.Client, start *jobstatev1alpha1.JobState) (newWriter, error) {
	key := client.ObjectKeyFromObject(start)
	return func(w int) (func() error, error) {
		jc, err := jobstate.New(c, jobstate.Options{
			Identity: fmt.Sprintf("bench-writer-%d", w),
			Update:   update.Options{Timeout: time.Minute},
			Lease:    lease.Options{AcquireTimeout: time.Minute},
		})
		if err != nil {
			return nil, err
		}
		return func() error {
			_, err := jc.Update(ctx, key, testenv.Increment)
			return err
		}, nil
	}, nil
}

// printLockPolicies writes the lockPolicy table with every row's rate as a
// multiple of the first row's (Optimistic).
func printLockPolicies(out io.Writer, results []result, updates, writers int) {
	fmt.Fprintf(out, "%d writers on one JobState, a jobstate.Client each, %d Client.Update calls per lockPolicy\n", writers, updates)
	base := results[0].rate()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "lockPolicy\tupdates ok\tfailed\tlost\tstatus writes\tLease writes\telapsed\tupdates/s\t× Optimistic\ttarget")
	met := 0
	for _, r := range results {
		ratio := r.rate() / base
		pass := checkTarget(r, ratio)
		if pass {
			met++
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%.0f\t%.2f\t%s\n",
			r.name, r.ok, r.failed, r.lost, r.writes, r.leaseWrites, r.elapsed.Round(time.Millisecond), r.rate(), ratio,
			describeTarget(r.target, pass))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "targets met: %d of %d (lost must be 0 in every row)\n", met, len(results))
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "%s: first error of %d: %s\n", r.name, r.failed, truncate(r.firstErr.Error(), 300))
		}
	}
}
