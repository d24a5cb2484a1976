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
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// The scale section: does the manager keep up with many new JobStates, and
// what does each cost it in memory? Three rows:
//
//  1. baseline: W writers making N raw status updates of N distinct
//     pre-created JobStates (no manager) — what the API server does in this
//     run with W writers;
//  2. the manager (cmd/manager, built and run as a process) running, W
//     writers create N new JobStates; the time from the first create until
//     every one is Pending, as a multiple of the baseline (target ≤ 2×);
//  3. the manager's RSS growth per JobState: VmRSS with the N JobStates
//     cached and initialized, minus VmRSS before the first was created,
//     divided by N (target ≤ 4 KiB).
//
// The baseline's JobStates are deleted before the manager starts, so that
// its cache holds only the N new ones.

// scaleOptions size the scale section.
type scaleOptions struct {
	jobs, writers int
	// manager is the manager binary to run; empty: built from ./cmd/manager.
	manager string
	// managerArgs are extra flags passed to the manager, space-separated.
	managerArgs string
}

// bindScaleFlags defines the scale section's flags (-writers is shared).
func bindScaleFlags() *scaleOptions {
	o := &scaleOptions{}
	flag.IntVar(&o.jobs, "scale-jobs", 8000, "JobStates the scale section creates for the manager, and raw status updates of distinct JobStates in its baseline")
	flag.StringVar(&o.manager, "scale-manager", "", "manager binary the scale section runs (default: built from ./cmd/manager)")
	flag.StringVar(&o.managerArgs, "scale-manager-args", "", "space-separated extra flags for the scale section's manager")
	return o
}

// Targets of the scale section (issue #11).
const (
	scaleMaxRatio      = 2.0
	scaleMaxBytesPerJS = 4 << 10
)

// scaleSection runs the scale rows and prints their table.
func (b *bench) scaleSection(ctx context.Context, o scaleOptions, writers int) error {
	o.writers = writers
	args := strings.Fields(o.managerArgs)
	fmt.Printf("scale: %d JobStates; %d writers; manager flags %q\n\n", o.jobs, o.writers, args)
	dir, err := os.MkdirTemp("", "jobstate-bench-scale-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bin := o.manager
	if bin == "" {
		if bin, err = buildManager(ctx, dir); err != nil {
			return err
		}
	}
	base, err := b.scaleBaseline(ctx, o)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	m, err := b.startManager(ctx, dir, bin, args)
	if err != nil {
		return err
	}
	defer m.stop()
	run, err := b.scaleManaged(ctx, o, m)
	if err != nil {
		return fmt.Errorf("%w (manager log: %s)", err, m.logTail())
	}
	printScale(os.Stdout, o, base, run)
	return nil
}

// buildManager builds ./cmd/manager into dir.
func buildManager(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w: %s", err, out)
	}
	return bin, nil
}

// parallel runs call(i) for i in [0, n), split among writers goroutines;
// it returns the first error.
func parallel(ctx context.Context, n, writers int, call func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	var next atomic.Int64
	for range writers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if err := call(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// newJobState is the i-th JobState of the section in ns.
func newJobState(ns string, i int) *jobstatev1alpha1.JobState {
	return &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("scale-%d", i)}}
}

// scaleBaseline creates N JobStates (untimed), times W writers making one
// raw status update of each, then deletes them.
func (b *bench) scaleBaseline(ctx context.Context, o scaleOptions) (time.Duration, error) {
	ns, err := b.namespace(ctx)
	if err != nil {
		return 0, err
	}
	objs := make([]*jobstatev1alpha1.JobState, o.jobs)
	err = parallel(ctx, o.jobs, o.writers, func(i int) error {
		objs[i] = newJobState(ns, i)
		return b.c.Create(ctx, objs[i])
	})
	if err != nil {
		return 0, fmt.Errorf("creating JobStates: %w", err)
	}
	begin := time.Now()
	err = parallel(ctx, o.jobs, o.writers, func(i int) error {
		if err := testenv.Increment(objs[i]); err != nil {
			return err
		}
		return b.c.Status().Update(ctx, objs[i])
	})
	elapsed := time.Since(begin)
	if err != nil {
		return 0, fmt.Errorf("updating status: %w", err)
	}
	if err := b.deleteJobStates(ctx, ns); err != nil {
		return 0, err
	}
	return elapsed, nil
}

// deleteJobStates deletes every JobState of ns and waits until none is
// left.
func (b *bench) deleteJobStates(ctx context.Context, ns string) error {
	if err := b.c.DeleteAllOf(ctx, &jobstatev1alpha1.JobState{}, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("deleting JobStates: %w", err)
	}
	for ctx.Err() == nil {
		var list jobstatev1alpha1.JobStateList
		if err := b.c.List(ctx, &list, client.InNamespace(ns), client.Limit(1)); err != nil {
			return fmt.Errorf("listing JobStates: %w", err)
		}
		if len(list.Items) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ctx.Err()
}

// managerProcess is a running manager.
type managerProcess struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// startManager runs bin as an admin of the control plane, with metrics and
// probes off, logging to a file in dir, and waits for it to settle.
func (b *bench) startManager(ctx context.Context, dir, bin string, args []string) (*managerProcess, error) {
	kubeconfig := filepath.Join(dir, "manager.kubeconfig")
	data, err := b.env.KubeConfig("bench-manager")
	if err != nil {
		return nil, fmt.Errorf("making a kubeconfig: %w", err)
	}
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return nil, err
	}
	args = append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	m := &managerProcess{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	return m, nil
}

// stop ends the manager (SIGTERM, then SIGKILL after 10s).
func (m *managerProcess) stop() {
	_ = m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	_ = m.log.Close()
}

// logTail is the end of the manager's log.
func (m *managerProcess) logTail() string {
	data, _ := os.ReadFile(m.log.Name())
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// waitStarted waits until the manager's log shows the workers of
// controllers controllers started: its caches are synced.
func (m *managerProcess) waitStarted(ctx context.Context, controllers int, limit time.Duration) error {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		data, err := os.ReadFile(m.log.Name())
		if err != nil {
			return err
		}
		if bytes.Count(data, []byte("Starting workers")) >= controllers {
			return nil
		}
		select {
		case <-m.done:
			return errors.New("the manager exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
	}
	return fmt.Errorf("the manager's controllers did not start within %s", limit)
}

// rss is the manager's resident set size (VmRSS), in bytes.
func (m *managerProcess) rss() (int64, error) {
	select {
	case <-m.done:
		return 0, errors.New("the manager exited")
	default:
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// settledRSS samples the manager's RSS every 500ms for d and returns the
// smallest: the moment after a garbage collection, not a peak in between.
func (m *managerProcess) settledRSS(ctx context.Context, d time.Duration) (int64, error) {
	least := int64(-1)
	for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(500 * time.Millisecond) {
		r, err := m.rss()
		if err != nil {
			return 0, err
		}
		if least < 0 || r < least {
			least = r
		}
	}
	return least, ctx.Err()
}

// scaleRun is what the managed row measured.
type scaleRun struct {
	created, pending  time.Duration // from the first create
	rssBefore, rssEnd int64
}

// scaleManaged measures the manager's idle RSS, then creates N JobStates
// with W writers and times how long until every one is Pending (watched,
// not polled), then measures the RSS again.
func (b *bench) scaleManaged(ctx context.Context, o scaleOptions, m *managerProcess) (scaleRun, error) {
	var run scaleRun
	ns, err := b.namespace(ctx)
	if err != nil {
		return run, err
	}
	if err := m.waitStarted(ctx, 2, time.Minute); err != nil {
		return run, err
	}
	if run.rssBefore, err = m.settledRSS(ctx, 10*time.Second); err != nil {
		return run, err
	}
	watchCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	pending := make(chan error, 1)
	go func() { pending <- b.waitPending(watchCtx, ns, o.jobs) }()
	begin := time.Now()
	err = parallel(ctx, o.jobs, o.writers, func(i int) error { return b.c.Create(ctx, newJobState(ns, i)) })
	run.created = time.Since(begin)
	if err != nil {
		return run, fmt.Errorf("creating JobStates: %w", err)
	}
	if err := <-pending; err != nil {
		return run, err
	}
	run.pending = time.Since(begin)
	run.rssEnd, err = m.settledRSS(ctx, 10*time.Second)
	return run, err
}

// waitPending returns once n distinct JobStates of ns have a phase. It
// lists, then watches from the list; when the API server ends the watch (a
// slow reader's is), it lists and watches again.
func (b *bench) waitPending(ctx context.Context, ns string, n int) error {
	seen := map[string]bool{}
	for {
		var list jobstatev1alpha1.JobStateList
		if err := b.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("listing JobStates (%d of %d Pending): %w", len(seen), n, err)
		}
		for i := range list.Items {
			if list.Items[i].Status.Phase != "" {
				seen[list.Items[i].Name] = true
			}
		}
		if len(seen) >= n {
			return nil
		}
		w, err := b.c.Watch(ctx, &jobstatev1alpha1.JobStateList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return fmt.Errorf("watching JobStates (%d of %d Pending): %w", len(seen), n, err)
		}
		for ev := range w.ResultChan() {
			if js, ok := ev.Object.(*jobstatev1alpha1.JobState); ok && ev.Type != watch.Deleted && js.Status.Phase != "" {
				seen[js.Name] = true
			}
			if len(seen) >= n {
				break
			}
		}
		w.Stop()
		if len(seen) >= n {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d JobStates Pending: %w", len(seen), n, ctx.Err())
		}
	}
}

// printScale prints the scale table.
func printScale(out io.Writer, o scaleOptions, base time.Duration, run scaleRun) {
	ratio := run.pending.Seconds() / base.Seconds()
	perJS := float64(run.rssEnd-run.rssBefore) / float64(o.jobs)
	mark := func(ok bool) string {
		if ok {
			return "✓"
		}
		return "✗"
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\telapsed\tper s\t× baseline\ttarget")
	fmt.Fprintf(tw, "baseline: %d writers, %d raw status updates of distinct JobStates\t%s\t%.0f\t1.00\t\n",
		o.writers, o.jobs, base.Round(time.Millisecond), float64(o.jobs)/base.Seconds())
	fmt.Fprintf(tw, "manager: %d JobStates created by %d writers (done after %s), all Pending\t%s\t%.0f\t%.2f\t≤%.0f× %s\n",
		o.jobs, o.writers, run.created.Round(time.Millisecond), run.pending.Round(time.Millisecond),
		float64(o.jobs)/run.pending.Seconds(), ratio, scaleMaxRatio, mark(ratio <= scaleMaxRatio))
	_ = tw.Flush()
	fmt.Fprintf(out, "manager RSS: %.1f MiB idle, %.1f MiB with %d JobStates: %.2f KiB per JobState (target ≤%d KiB %s)\n",
		float64(run.rssBefore)/(1<<20), float64(run.rssEnd)/(1<<20), o.jobs, perJS/1024, scaleMaxBytesPerJS>>10, mark(perJS <= scaleMaxBytesPerJS))
}
