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
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// TestMakeRun runs make run (hack/devenv) as a newcomer does — no
// kubeconfig, so it starts its own control plane — with stdout not a
// terminal, as CI sees it, and checks what they are shown: no error and no
// stack trace, where the logs are (and that they are written), one line per
// transition of the samples up to Succeeded (flaky-export through its
// retry), the final table, and a clean stop that leaves no process behind.
func TestMakeRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	root, dir := testenv.RepoRoot(), t.TempDir()
	bin := build(t, root, dir, "./hack/devenv")
	logDir := filepath.Join(dir, "run")

	// The demo worker heartbeats every 200ms, so a job takes 6s and
	// flaky-export, with its 5s backoff, about 15s.
	cmd := exec.CommandContext(ctx, bin, "--exit-after=50s", "--dir", logDir,
		"--gateway-address", freeAddr(t), "--worker-interval=200ms")
	cmd.Dir, cmd.Env = root, newcomerEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tree := watchTree(cmd.Process.Pid)
	t.Cleanup(tree.kill)
	err := cmd.Wait()
	tree.stop()
	out := stdout.String()
	t.Logf("make run's stdout:\n%s", out)
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("make run: %v; stderr:\n%s", err, stderr.String())
	}
	if left := tree.alive(); len(left) > 0 {
		t.Errorf("make run left processes running: %v", left)
	}

	checkCalm(t, out)
	checkLogs(t, out, logDir)
	checkTransitions(t, out)
	checkFinalTable(t, out)
}

// newcomerEnv is this process's environment as a newcomer's shell has it:
// no kubeconfig ($HOME is empty, $KUBECONFIG unset), not in a pod; the Go
// caches and the envtest binaries as this process has them.
func newcomerEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "HOME" && name != "KUBECONFIG" && !strings.HasPrefix(name, "KUBERNETES_") && name != "KUBEBUILDER_ASSETS" {
			env = append(env, kv)
		}
	}
	// $HOME is where go finds these by default; make run builds the worker
	// and the gateway with them.
	names := []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"}
	values, err := exec.Command("go", append([]string{"env"}, names...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range strings.Split(strings.TrimSuffix(string(values), "\n"), "\n") {
		env = append(env, names[i]+"="+v)
	}
	return append(env, "HOME="+t.TempDir(), "KUBEBUILDER_ASSETS="+testenv.AssetsDir())
}

// checkCalm: nothing on stdout looks like an error or a stack trace, and
// the missing kubeconfig is said in one line.
func checkCalm(t *testing.T, out string) {
	t.Helper()
	alarming := regexp.MustCompile(`(?i)\berror\b|panic|goroutine \d|\.go:\d+`)
	for line := range strings.SplitSeq(out, "\n") {
		if alarming.MatchString(line) {
			t.Errorf("stdout line looks like an error or a stack trace: %q", line)
		}
	}
	for _, want := range []string{
		"No cluster in the kubeconfig; starting a local control plane",
		"export TOKEN=ns_",
		"Stopping: --exit-after elapsed.",
		"Stopped everything make run started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout does not say %q", want)
		}
	}
}

// checkLogs: the log directory is named, and every part's log is in it,
// written.
func checkLogs(t *testing.T, out, logDir string) {
	t.Helper()
	if !strings.Contains(out, "Logs in "+logDir+string(filepath.Separator)+"\n") {
		t.Errorf("stdout does not name the log directory %s", logDir)
	}
	for _, name := range []string{"manager.log", "worker.log", "gateway.log", "kube-apiserver.log", "etcd.log"} {
		if !strings.Contains(out, name) {
			t.Errorf("stdout does not name %s", name)
		}
		if fi, err := os.Stat(filepath.Join(logDir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, want a non-empty file", name, err)
		}
	}
}

// transition is a line make run prints when a job's phase or attempt
// changes: "15:04:05  default/flaky-export  Running  attempt 1, ...".
var transition = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  (\S+)/(\S+) +(\w+) +attempt (\d+)`)

// checkTransitions: each sample's transitions, in order, and no other.
func checkTransitions(t *testing.T, out string) {
	t.Helper()
	got := map[string][]string{}
	for _, m := range transition.FindAllStringSubmatch(out, -1) {
		got[m[2]] = append(got[m[2]], m[3]+" "+m[4])
	}
	once := []string{"Pending 0", "Running 1", "Succeeded 1"}
	want := map[string][]string{
		"nightly-import": once, "reindex-search": once, "ledger-rebuild": once, "migrate-schema": once,
		// Fails its first attempt on purpose, then is retried.
		"flaky-export": {"Pending 0", "Running 1", "Pending 1", "Running 2", "Succeeded 2"},
	}
	for name, steps := range want {
		if !slices.Equal(got[name], steps) {
			t.Errorf("transitions of %s: %q, want %q", name, got[name], steps)
		}
	}
	if len(got) != len(want) {
		t.Errorf("transition lines for %d jobs, want %d", len(got), len(want))
	}
}

// checkFinalTable: the table at exit lists every sample Succeeded, with
// the attempt that succeeded.
func checkFinalTable(t *testing.T, out string) {
	t.Helper()
	_, final, ok := strings.Cut(out, "JobStates (at exit):\n")
	if !ok {
		t.Fatal("no final table")
	}
	final, _, _ = strings.Cut(final, "\n\n")
	rows := strings.Split(final, "\n")
	if header := strings.Fields(rows[0]); !slices.Equal(header[:6], []string{"NAMESPACE", "NAME", "PHASE", "ATTEMPT", "HOLDER", "PROGRESS"}) {
		t.Errorf("final table header %q", rows[0])
	}
	want := map[string]string{"flaky-export": "2", "ledger-rebuild": "1", "migrate-schema": "1", "nightly-import": "1", "reindex-search": "1"}
	for _, row := range rows[1:] {
		f := strings.Fields(row)
		if len(f) < 6 || want[f[1]] == "" || f[0] != "default" || f[2] != "Succeeded" || f[3] != want[f[1]] || f[5] != "100%" {
			t.Errorf("final table row %q, want default/NAME Succeeded at attempt %v and 100%%", row, want)
			continue
		}
		delete(want, f[1])
	}
	if len(want) > 0 {
		t.Errorf("final table misses %v", want)
	}
}

// processTree follows the processes under a root process (envtest starts
// kube-apiserver and etcd in process groups of their own, so killing a
// group would miss them), to check that none outlives the root and to kill
// every one if the test fails.
type processTree struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen map[int]string // pid: command name
}

// watchTree looks for root's descendants every 200ms until stop.
func watchTree(root int) *processTree {
	p := &processTree{done: make(chan struct{}), seen: map[int]string{}}
	p.wg.Go(func() {
		for {
			p.mu.Lock()
			for pid, comm := range descendants(root) {
				p.seen[pid] = comm
			}
			p.mu.Unlock()
			select {
			case <-p.done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return p
}

func (p *processTree) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}

// alive is the processes seen that still run ("pid name").
func (p *processTree) alive() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for pid, comm := range p.seen {
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == comm {
			out = append(out, fmt.Sprintf("%d %s", pid, comm))
		}
	}
	return out
}

// kill kills every process seen that still runs.
func (p *processTree) kill() {
	p.stop()
	for _, proc := range p.alive() {
		pid, _ := strconv.Atoi(strings.Fields(proc)[0])
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// descendants are the processes under root, from /proc.
func descendants(root int) map[int]string {
	children := map[int][]int{}
	comms := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(string(stat[end+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], pid)
		comms[pid] = string(stat[open+1 : end])
	}
	out := map[int]string{}
	for queue := []int{root}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out[c] = comms[c]
			queue = append(queue, c)
		}
	}
	return out
}
