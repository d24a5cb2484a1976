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

// Command soak runs a mixed, bounded load for a while against one local
// envtest control plane (a real kube-apiserver and etcd) with the manager
// (cmd/manager, built and run as a process, authenticated as
// testenv.SealerUser) reconciling it, and checks at the end that no
// acknowledged write was lost or stored twice.
//
// The load, from several goroutines of one process, as a worker
// identity that is not the sealer:
//
//   - inc: increments of status.data counters on shared JobStates through
//     one update.Updater (group commit), every writer its own key;
//   - locked: the same on a JobState with spec.lockPolicy Lease, through a
//     jobstate.Client per writer (a Lease handoff per update);
//   - job cycles: fresh JobStates, initialized by the manager, claimed,
//     heartbeated and succeeded with pkg/jobstate, then deleted by the
//     manager after their TTL; every tenth attempt is abandoned, so that
//     the manager declares it lost and a second attempt takes over, and
//     the first attempt's heartbeat must then be fenced;
//   - append: pkg/stream appends of one to three events with fresh ids,
//     unconditional or with an ExpectedVersion, some retried by id on
//     purpose (which must store nothing); the manager seals the streams.
//     Each stream takes a bounded number of appends, is read back and
//     checked, and is deleted with its segments (so storage stays bounded);
//   - acquire/fenced/release: pkg/lease locks handed between several
//     holders, each holder incrementing a ConfigMap counter under the lock
//     with update.Fenced and the lock's token.
//
// One call in -short-every of inc, append and acquire gets a deadline of 1
// to 10ms, so unknown outcomes and a short deadline amid group commits
// happen all the time.
//
// The ledger: every acknowledged increment and event is recorded, and at
// the end (for streams, at the end of each stream) the stored state is
// compared with it. lost = acknowledged but not stored; duplicated = stored
// more often than acknowledged (an event id twice, a counter above its
// acknowledged and unknown increments); phantom = stored although the call
// was refused. Calls whose outcome is unknown (update.ErrOutcomeUnknown, a
// context or transport error) are counted apart and allowed either way;
// an unknown append is retried by id until its outcome is known. Mutual
// exclusion is checked too: two holders of one lock at once is an overlap.
//
// Every -report interval it prints one line: calls by kind so far, errors
// by kind so far, p99 latency by kind over the interval, the streams and
// jobs checked so far (lost, duplicated, phantom), and the resident memory
// (VmRSS) of the manager, kube-apiserver, etcd and the soak itself.
// At the end it prints the totals, the ledger and the memory growth, and
// exits non-zero if anything was lost, duplicated or phantom, two holders
// overlapped, a finished JobState was not deleted by the manager, the
// manager exited, or the manager's or kube-apiserver's RSS grew by more
// than -max-rss-growth between the baseline (halfway through the run,
// after the warm-up) and the end.
//
// Run it with `make soak DURATION=10m` or `go run ./test/soak -duration=10m
// [-report 1m] [-max-rss-growth 1.5] [-think 10ms] [-short-every 20]
// [-keep] [-broken]`; -broken makes the inc writers increment without the
// resourceVersion precondition, as a careless client would, and the run
// must then fail with lost increments. Every process it starts is stopped when it ends, also on
// error and on SIGINT; the manager's log is kept (its path printed) when
// the run fails or with -keep.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	// duration is how long the load runs; verification follows.
	duration time.Duration
	// report is the interval of the progress lines.
	report time.Duration
	// maxRSSGrowth is the largest acceptable ratio of the manager's and
	// kube-apiserver's RSS at the end to their RSS at the baseline, halfway
	// through the run.
	maxRSSGrowth float64
	// think bounds the random pause of a goroutine between two calls.
	think time.Duration
	// shortEvery: one call in shortEvery (of inc, append, acquire) gets a
	// short deadline; 0 never.
	shortEvery int
	// keep keeps the temporary directory (manager log) even on success.
	keep bool
	// broken makes the inc writers skip the resourceVersion precondition,
	// to show that the ledger catches lost writes.
	broken bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the load runs")
	flag.DurationVar(&o.report, "report", time.Minute, "interval of the progress lines")
	flag.Float64Var(&o.maxRSSGrowth, "max-rss-growth", 1.5, "largest acceptable RSS at the end / RSS halfway through the run, for the manager and kube-apiserver")
	flag.DurationVar(&o.think, "think", 10*time.Millisecond, "upper bound of the random pause between two calls of one goroutine")
	flag.IntVar(&o.shortEvery, "short-every", 20, "one call in N of inc, append and acquire gets a 1-10ms deadline (0: none)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the manager's log")
	flag.BoolVar(&o.broken, "broken", false, "make the inc writers read-modify-write without the resourceVersion precondition: the run must then fail with lost increments")
	flag.Parse()
	if o.duration <= 0 || o.report <= 0 || o.maxRSSGrowth < 1 || o.think < 0 || o.shortEvery < 0 {
		fmt.Fprintln(os.Stderr, "soak: -duration and -report must be positive, -max-rss-growth at least 1, -think and -short-every not negative")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	passed, err := run(ctx, o)
	stop()
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	case !passed:
		fmt.Println("soak: FAILED")
		os.Exit(1)
	}
	fmt.Println("soak: passed")
}
