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
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// managerStopTimeout is how long the manager gets to exit after SIGINT
// before it is killed.
const managerStopTimeout = 15 * time.Second

// manager is cmd/manager running as a process, as test/e2e runs it:
// authenticated as testenv.SealerUser, metrics and probes off.
type manager struct {
	cmd     *exec.Cmd
	logPath string
	// exited is closed when the process has exited; err is then Wait's.
	exited chan struct{}
	err    error
}

// startManager builds cmd/manager into dir and starts it, its output going
// to dir/manager.log. It runs in its own process group, so a SIGINT at the
// terminal reaches only the soak, which stops it.
func startManager(env *testenv.Env, dir string) (*manager, error) {
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/manager: %v\n%s", err, out)
	}
	kubeconfig, err := env.KubeConfig(testenv.SealerUser)
	if err != nil {
		return nil, err
	}
	kubeconfigPath := filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	m := &manager{logPath: filepath.Join(dir, "manager.log"), exited: make(chan struct{})}
	log, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, "--kubeconfig", kubeconfigPath, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	m.cmd.Stdout, m.cmd.Stderr = log, log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	go func() {
		m.err = m.cmd.Wait()
		_ = log.Close()
		close(m.exited)
	}()
	return m, nil
}

// pid is the manager's process id.
func (m *manager) pid() int { return m.cmd.Process.Pid }

// running reports whether the process has not exited.
func (m *manager) running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGINT, as a kubelet's SIGTERM would end a manager, and kills
// the process if it has not exited after managerStopTimeout.
func (m *manager) stop() {
	if !m.running() {
		return
	}
	_ = m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.exited:
	case <-time.After(managerStopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// checks are that the manager ran throughout, and the errors it logged
// (reported, not a failure: a conflict it retries is logged too).
func (m *manager) checks() []check {
	exited := int64(0)
	if !m.running() {
		exited = 1
	}
	n, byMessage := m.errorLines()
	name := "errors in the manager's log"
	if n > 0 {
		name += " (" + byMessage + ")"
	}
	return []check{
		{name: "manager exited during the run", value: exited, mustBeZero: true},
		{name: name, value: n},
	}
}

// errorLines counts the lines the manager logged at level ERROR (zap's
// development console format: time, tab, level, tab) and renders their
// counts by error message, most frequent first.
func (m *manager) errorLines() (int64, string) {
	f, err := os.Open(m.logPath)
	if err != nil {
		return 0, ""
	}
	defer func() { _ = f.Close() }()
	var n int64
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "\tERROR\t") {
			continue
		}
		n++
		counts[truncate(errorMessage(line), 200)]++
	}
	msgs := slices.SortedFunc(maps.Keys(counts), func(a, b string) int { return cmp.Or(counts[b]-counts[a], strings.Compare(a, b)) })
	var parts []string
	for _, msg := range msgs {
		parts = append(parts, fmt.Sprintf("%d× %s", counts[msg], strings.ReplaceAll(msg, "\t", " ")))
	}
	return n, strings.Join(parts, "; ")
}

// errorMessage is the "error" field of a zap console line, or the line.
func errorMessage(line string) string {
	_, rest, ok := strings.Cut(line, `"error": `)
	var msg string
	if !ok || json.NewDecoder(strings.NewReader(rest)).Decode(&msg) != nil {
		return line
	}
	return msg
}

// truncate shortens s to n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
