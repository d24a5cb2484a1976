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

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

const (
	// callTimeout bounds every call that has no short deadline: far above
	// any latency of a healthy run, so that reaching it is an error.
	callTimeout = 30 * time.Second
	// workerUser is the identity of the load: an admin, not the sealer.
	workerUser = "soak-worker"
)

// soak is what the workloads share.
type soak struct {
	o options
	// ctx ends on SIGINT: every call runs under it.
	ctx context.Context
	// load ends after o.duration as well: no call starts after it.
	load context.Context
	env  *testenv.Env
	// c is the workers' client (workerUser, no client-side rate limit).
	c     client.WithWatch
	ns    string
	stats *stats
	// loads are the workloads of the run.
	loads []workload
}

// workload is one kind of load with its ledger.
type workload interface {
	// setup creates what the workload needs before the load starts.
	setup(ctx context.Context) error
	// start starts its goroutines in wg; they return once s.load has ended
	// and their last call has returned.
	start(wg *sync.WaitGroup)
	// verify compares what is stored with the ledger, once the goroutines
	// have returned.
	verify(ctx context.Context) ([]ledgerRow, []check)
}

// progresser is a workload that checks its ledger during the run, too.
type progresser interface {
	// progress is the ledger checked so far, for the progress line.
	progress() string
}

// run sets up the control plane, the manager and the workloads, runs the
// load, verifies and reports. It returns whether every check passed.
func run(ctx context.Context, o options) (passed bool, err error) {
	// envtest logs through controller-runtime's logger; without one set it
	// complains on stderr after 30s. client-go logs through klog, among
	// others every response a short deadline cut off: the report counts
	// those.
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	klog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "jobstate-soak-")
	if err != nil {
		return false, err
	}
	defer func() { cleanupDir(dir, o.keep || !passed || err != nil) }()

	env, err := testenv.Start()
	if err != nil {
		return false, err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "soak: stopping envtest:", err)
		}
	}()
	mgr, err := startManager(env, dir)
	if err != nil {
		return false, err
	}
	defer mgr.stop()

	s, err := newSoak(ctx, env, o)
	if err != nil {
		return false, err
	}
	mem, err := newMemory(env, mgr)
	if err != nil {
		return false, err
	}
	if err := s.awaitManager(mgr); err != nil {
		return false, err
	}
	fmt.Printf("jobstate soak: %s of load, %d CPUs, %s; namespace %s; manager log %s\n",
		o.duration, runtime.NumCPU(), runtime.Version(), s.ns, mgr.logPath)
	fmt.Printf("memory followed: %s\n\n", mem.describe())
	return s.soak(mgr, mem)
}

// newSoak connects as workerUser and creates the namespace of the run.
func newSoak(ctx context.Context, env *testenv.Env, o options) (*soak, error) {
	kubeconfig, err := env.KubeConfig(workerUser)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	// Many writers: the default client-side limit (5 QPS) would measure
	// the rate limiter.
	cfg.QPS, cfg.Burst = -1, -1
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "soak-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		return nil, fmt.Errorf("creating namespace: %w", err)
	}
	return &soak{o: o, ctx: ctx, load: ctx, env: env, c: c, ns: ns.Name, stats: newStats()}, nil
}

// awaitManager waits until the manager initializes a JobState: then its
// caches are synced and the load can begin.
func (s *soak) awaitManager(mgr *manager) error {
	probe := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "manager-probe"}}
	if err := s.c.Create(s.ctx, probe); err != nil {
		return fmt.Errorf("creating the probe JobState: %w", err)
	}
	err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if !mgr.running() {
			return false, fmt.Errorf("the manager exited: %v (log: %s)", mgr.err, mgr.logPath)
		}
		js := &jobstatev1alpha1.JobState{}
		if err := s.c.Get(ctx, client.ObjectKeyFromObject(probe), js); err != nil {
			return false, err
		}
		return js.Status.Phase == jobstatev1alpha1.PhasePending, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the manager to initialize a JobState: %w", err)
	}
	return s.c.Delete(s.ctx, probe)
}

// soak sets the workloads up, runs them for o.duration with a progress
// line every o.report, then verifies and prints the totals.
func (s *soak) soak(mgr *manager, mem *memory) (bool, error) {
	s.loads = []workload{
		&counterLoad{s: s, kind: "inc", objects: incObjects, writers: incWriters, short: true},
		&counterLoad{s: s, kind: "locked", objects: 1, writers: lockedWriters, lockPolicy: jobstatev1alpha1.LockPolicyLease},
		&jobLoad{s: s},
		&streamLoad{s: s},
		&leaseLoad{s: s},
	}
	for _, l := range s.loads {
		if err := l.setup(s.ctx); err != nil {
			return false, err
		}
	}
	elapsed := s.runLoad(mgr, mem)
	if err := s.ctx.Err(); err != nil {
		s.printTotals(elapsed, nil, nil, mem)
		return false, fmt.Errorf("interrupted: %w", err)
	}
	var rows []ledgerRow
	var checks []check
	for _, l := range s.loads {
		r, c := l.verify(s.ctx)
		rows, checks = append(rows, r...), append(checks, c...)
	}
	checks = append(checks, ledgerChecks(rows)...)
	checks = append(checks, mem.checks(s.o.maxRSSGrowth)...)
	checks = append(checks, mgr.checks()...)
	checks = append(checks, s.stats.foreignDeadlines())
	checks = append(checks, s.objectCounts()...)
	s.printTotals(elapsed, rows, checks, mem)
	return allPassed(checks), nil
}

// runLoad runs the workloads until o.duration has passed (or SIGINT, or
// the manager exits), printing a progress line every o.report, and waits
// for their last calls. It returns how long the load ran.
func (s *soak) runLoad(mgr *manager, mem *memory) time.Duration {
	load, stop := context.WithTimeout(s.ctx, s.o.duration)
	defer stop()
	s.load = load
	begin := time.Now()
	var wg sync.WaitGroup
	for _, l := range s.loads {
		l.start(&wg)
	}
	tick := time.NewTicker(s.o.report)
	defer tick.Stop()
	// The memory baseline, after the warm-up: halfway through the run, so
	// the check measures the second half. (Under this load kube-apiserver's
	// watch cache fills over the first 3 to 5 minutes: 630 -> 1210 MiB,
	// then +1-2% over the next five, in two 10-minute runs.)
	baseline := time.NewTimer(s.o.duration / 2)
	defer baseline.Stop()
	last := begin
	for load.Err() == nil {
		select {
		case <-load.Done():
		case <-baseline.C:
			mem.baseline()
		case <-mgr.exited:
			fmt.Printf("the manager exited: %v\n", mgr.err)
			stop()
		case now := <-tick.C:
			last = now
			s.printInterval(now.Sub(begin).Round(time.Second).String(), mem.sample())
		}
	}
	elapsed := time.Since(begin)
	wg.Wait()
	if time.Since(last) > time.Second {
		// The last interval, shorter than o.report, and the calls that
		// were still running when the load ended.
		label := fmt.Sprintf("end %s, load ended at %s", time.Since(begin).Round(time.Second), elapsed.Round(time.Second))
		s.printInterval(label, mem.sample())
	}
	return elapsed
}

// call runs op under a deadline of timeout (short: chosen short on
// purpose) and records it as kind. It returns what op did to the stored
// state, as far as can be known, and its error.
func (s *soak) call(parent context.Context, kind string, timeout time.Duration, op func(ctx context.Context) error) (outcome, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	begin := time.Now()
	err := op(ctx)
	o, errKind := classify(ctx, timeout < callTimeout, err)
	s.stats.record(kind, time.Since(begin), o, errKind, err)
	return o, err
}

// deadline is callTimeout, or for one call in o.shortEvery a deadline of
// 1 to 10ms: long enough to send the request, often too short for its
// response.
func (s *soak) deadline() time.Duration {
	if s.o.shortEvery > 0 && rand.IntN(s.o.shortEvery) == 0 {
		return time.Millisecond + rand.N(9*time.Millisecond)
	}
	return callTimeout
}

// running reports whether the load goes on.
func (s *soak) running() bool { return s.load.Err() == nil }

// pause sleeps up to o.think between two calls of one goroutine, less if
// the load ends.
func (s *soak) pause() {
	if s.o.think <= 0 {
		return
	}
	t := time.NewTimer(rand.N(s.o.think))
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.load.Done():
	}
}

// cleanupDir removes the run's temporary directory unless keep.
func cleanupDir(dir string, keep bool) {
	if keep {
		fmt.Printf("kept %s (manager log and kubeconfig)\n", dir)
		return
	}
	_ = os.RemoveAll(dir)
}
