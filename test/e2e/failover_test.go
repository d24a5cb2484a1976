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

package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
)

// The failover test's leader election: a standby takes over at most
// leaseDuration after the leader's last renewal, and tries every
// retryPeriod.
const (
	leaseDuration = 8 * time.Second
	renewDeadline = 6 * time.Second
	retryPeriod   = time.Second
)

// acquired is what controller-runtime logs when a manager becomes leader.
const acquired = "Successfully acquired lease"

// TestLeaderFailover: two manager processes with --leader-elect, as the
// manager's ServiceAccount. Only the leader reconciles. The leader is
// SIGKILLed with work in flight (ten claimed jobs whose holder stopped
// heartbeating, due to be taken back while no one leads; five live ones
// heartbeating; ten new jobs created while no one leads), and the other
// takes over within the lease duration (plus one jittered retry). Every
// transition is made exactly once: each job's history, watched from the
// test, and the Kubernetes Events of each job are exactly those expected.
func TestLeaderFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	kubeconfig := managerKubeConfig(ctx, t, dir)
	manager := build(t, testenv.RepoRoot(), dir, "./cmd/manager")
	args := []string{"--kubeconfig", kubeconfig, "--leader-elect", "--leader-election-namespace", systemNamespace,
		"--leader-election-lease-duration", leaseDuration.String(), "--leader-election-renew-deadline", renewDeadline.String(),
		"--leader-election-retry-period", retryPeriod.String(), "--metrics-bind-address=0", "--health-probe-bind-address=0"}
	leader := launch(t, nil, manager, args...)
	defer leader.stop()
	if !leader.WaitFor(ctx, acquired, time.Minute) {
		t.Fatalf("the first manager did not become leader:\n%s", leader.Output())
	}
	standby := launch(t, nil, manager, args...)
	defer standby.stop()
	if !standby.WaitFor(ctx, "Attempting to acquire leader lease", time.Minute) {
		t.Fatalf("the second manager did not start:\n%s", standby.Output())
	}

	ns := env.Namespace(t)
	history := watchHistory(ctx, t, ns)
	jobs, err := jobstate.New(env.AdminAs(t, "failover-worker"), jobstate.Options{Identity: "failover-worker"})
	if err != nil {
		t.Fatal(err)
	}
	f := &failover{ns: ns, jobs: jobs}
	lost, live, fresh := f.names("lost", 10), f.names("live", 5), f.names("new", 10)
	f.create(ctx, t, lost, 3)
	f.create(ctx, t, live, 30)
	f.waitEvents(ctx, t, append(slices.Clone(lost), live...), jobstatev1alpha1.ReasonCreated)
	f.claim(ctx, t, lost)
	running := f.claim(ctx, t, live)
	stopHeartbeats := f.heartbeat(ctx, t, running)

	// Kill the leader: the lost jobs' heartbeats expire 3s after their
	// claim, while no one leads; new jobs arrive meanwhile.
	killed := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	f.create(ctx, t, fresh, 30)
	if !standby.WaitFor(ctx, acquired, 2*leaseDuration) {
		t.Fatalf("the standby did not take over within %s:\n%s", 2*leaseDuration, standby.Output())
	}
	takeover := time.Since(killed)
	t.Logf("takeover %s after SIGKILL (lease duration %s, retry period %s)", takeover.Round(time.Millisecond), leaseDuration, retryPeriod)
	// The standby sees the lease expire leaseDuration after the last
	// renewal it saw (before the kill), and tries every retryPeriod
	// jittered by up to JitterFactor more: the longest takeover, plus half
	// a second for the write and for this test to see the log line.
	if longest := leaseDuration + time.Duration((1+leaderelection.JitterFactor)*float64(retryPeriod)) + 500*time.Millisecond; takeover > longest {
		t.Errorf("takeover took %s, want at most %s: the lease duration %s and a jittered retry period", takeover, longest, leaseDuration)
	}
	before, _, _ := strings.Cut(standby.Output(), acquired)
	for _, s := range []string{"Starting workers", "JobState transition", "Reconciler error"} {
		if strings.Contains(before, s) {
			t.Errorf("the standby logged %q before it led:\n%s", s, before)
		}
	}

	f.waitEvents(ctx, t, lost, jobstatev1alpha1.ReasonHeartbeatTimeout)
	f.waitEvents(ctx, t, fresh, jobstatev1alpha1.ReasonCreated)
	stopHeartbeats()
	f.succeed(ctx, t, running)

	// Each job's history and Events, exactly.
	want := map[string][]string{}
	for _, name := range lost {
		want[name] = []string{"Pending/Created/0", "Running/Claimed/1", "Pending/HeartbeatTimeout/1"}
	}
	for _, name := range live {
		want[name] = []string{"Pending/Created/0", "Running/Claimed/1", "Succeeded/Succeeded/1"}
	}
	for _, name := range fresh {
		want[name] = []string{"Pending/Created/0"}
	}
	got := history.until(ctx, t, want)
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !slices.Equal(got[name], want[name]) {
			t.Errorf("%s went through %v, want %v", name, got[name], want[name])
		}
	}
	f.checkEvents(ctx, t, lost, live, fresh)
}

// failover is TestLeaderFailover's jobs, with the test as their worker.
type failover struct {
	ns   string
	jobs *jobstate.Client
}

func (f *failover) names(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return names
}

func (f *failover) key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: f.ns, Name: name}
}

// create makes JobStates names with a heartbeat timeout of timeout seconds.
func (f *failover) create(ctx context.Context, t *testing.T, names []string, timeout int32) {
	t.Helper()
	for _, name := range names {
		js := &jobstatev1alpha1.JobState{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
			Spec:       jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To(timeout), BackoffLimit: ptr.To[int32](3)},
		}
		if err := env.Client.Create(ctx, js); err != nil {
			t.Fatal(err)
		}
	}
}

// claim claims every job of names, once it is Pending.
func (f *failover) claim(ctx context.Context, t *testing.T, names []string) []jobstate.Attempt {
	t.Helper()
	var attempts []jobstate.Attempt
	for _, name := range names {
		waitFor(ctx, t, name+" Pending", func() (bool, error) {
			js := &jobstatev1alpha1.JobState{}
			err := env.Client.Get(ctx, f.key(name), js)
			return js.Status.Phase == jobstatev1alpha1.PhasePending, err
		})
		a, err := f.jobs.Claim(ctx, f.key(name))
		if err != nil {
			t.Fatalf("claiming %s: %v", name, err)
		}
		attempts = append(attempts, a)
	}
	return attempts
}

// heartbeat heartbeats attempts every second until the returned func is
// called.
func (f *failover) heartbeat(ctx context.Context, t *testing.T, attempts []jobstate.Attempt) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, a := range attempts {
		wg.Go(func() {
			for progress := int32(1); ; progress++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if err := f.jobs.Heartbeat(ctx, a, min(progress, 99), nil); err != nil && ctx.Err() == nil {
					t.Errorf("heartbeat: %v", err)
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// succeed finishes attempts.
func (f *failover) succeed(ctx context.Context, t *testing.T, attempts []jobstate.Attempt) {
	t.Helper()
	for _, a := range attempts {
		if err := f.jobs.Succeed(ctx, a, "done"); err != nil {
			t.Fatalf("finishing %s: %v", a.Key, err)
		}
	}
}

// controllerEvents returns the manager's Events in the namespace by job
// and reason, counting an Event series as its count.
func (f *failover) controllerEvents(ctx context.Context, t *testing.T) map[string]map[string]int32 {
	t.Helper()
	counts, err := eventCounts(ctx, f.ns, "jobstate-controller")
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// waitEvents waits until every job of names has the manager's Event reason.
func (f *failover) waitEvents(ctx context.Context, t *testing.T, names []string, reason string) {
	t.Helper()
	waitFor(ctx, t, reason+" Events on "+strings.Join(names, ","), func() (bool, error) {
		counts := f.controllerEvents(ctx, t)
		return !slices.ContainsFunc(names, func(name string) bool { return counts[name][reason] == 0 }), nil
	})
}

// checkEvents: exactly one Created Event per job, one HeartbeatTimeout per
// lost job, and nothing else from the manager.
func (f *failover) checkEvents(ctx context.Context, t *testing.T, lost, live, fresh []string) {
	t.Helper()
	got := f.controllerEvents(ctx, t)
	want := map[string]map[string]int32{}
	for _, name := range slices.Concat(lost, live, fresh) {
		want[name] = map[string]int32{jobstatev1alpha1.ReasonCreated: 1}
	}
	for _, name := range lost {
		want[name][jobstatev1alpha1.ReasonHeartbeatTimeout] = 1
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !maps.Equal(got[name], want[name]) {
			t.Errorf("the manager's Events on %s: %v, want %v", name, got[name], want[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("the manager's Events are on %d objects, want %d: %v", len(got), len(want), got)
	}
}

// jobHistory is every state (phase/reason/attempt) each JobState of a
// namespace went through, as a watch saw its writes; a write that changed
// none of the three (a heartbeat) adds nothing.
type jobHistory struct {
	mu     sync.Mutex
	states map[string][]string
}

// watchHistory watches the JobStates of ns until the test ends.
func watchHistory(ctx context.Context, t *testing.T, ns string) *jobHistory {
	t.Helper()
	w, err := env.Client.Watch(ctx, &jobstatev1alpha1.JobStateList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	h := &jobHistory{states: map[string][]string{}}
	go func() {
		for ev := range w.ResultChan() {
			js, ok := ev.Object.(*jobstatev1alpha1.JobState)
			if !ok || ev.Type == watch.Deleted || js.Status.Phase == "" {
				continue
			}
			state := fmt.Sprintf("%s/%s/%d", js.Status.Phase, js.Status.Reason, js.Status.Attempt)
			h.mu.Lock()
			if s := h.states[js.Name]; len(s) == 0 || s[len(s)-1] != state {
				h.states[js.Name] = append(s, state)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// until waits up to 30s for every job's last state to be want's last, and
// returns the histories.
func (h *jobHistory) until(ctx context.Context, t *testing.T, want map[string][]string) map[string][]string {
	t.Helper()
	var got map[string][]string
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		got = maps.Clone(h.states)
		for name, states := range want {
			if s := got[name]; len(s) == 0 || s[len(s)-1] != states[len(states)-1] {
				return false, nil
			}
		}
		return true, nil
	})
	return got
}
