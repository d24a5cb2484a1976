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

package faults

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

var env *testenv.Env

// TestMain runs the tests against one restartable control plane; started
// as a helper process by a test (helperEnv set), it is that helper.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	// The libraries log through controller-runtime; the tests report.
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	testenv.MainRestartable(m, &env)
}

// binDir is where the tests' binaries and kubeconfigs go: under the
// control plane's directory, removed with it, so that every process a test
// starts has it in its command line.
func binDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(env.Dir(), "bin")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	buildOnce   sync.Once
	managerPath string
	buildErr    error
)

// managerBinary builds cmd/manager once per test binary.
func managerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		managerPath = filepath.Join(binDir(t), "manager")
		cmd := exec.Command("go", "build", "-o", managerPath, "./cmd/manager")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("go build ./cmd/manager:\n%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/manager: %v", buildErr)
	}
	return managerPath
}

// kubeconfig writes a kubeconfig for user (an admin) and returns its path.
func kubeconfig(t *testing.T, user string) string {
	t.Helper()
	data, err := env.KubeConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(binDir(t), strings.ReplaceAll(user, ":", "_")+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// process is a child process of a test.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // after done
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newProcess prepares bin with args, and extraEnv added to the test's
// environment; its output goes to out unless the caller changes it.
func newProcess(name, bin string, extraEnv []string, args ...string) *process {
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), extraEnv...)
	return p
}

// start starts the process; when the test ends it is killed if still
// running, and its output logged if the test failed.
func (p *process) start(t *testing.T) {
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
}

// startProcess starts bin (see newProcess and start).
func startProcess(t *testing.T, name, bin string, extraEnv []string, args ...string) *process {
	t.Helper()
	p := newProcess(name, bin, extraEnv, args...)
	p.start(t)
	return p
}

// startManager runs the manager as the sealer identity, as config/default
// deploys it, without leader election: --leader-elect needs a namespace
// for its Lease, which controller-runtime finds only inside a cluster (the
// manager has no flag for it).
func startManager(t *testing.T, name string) *process {
	t.Helper()
	return startProcess(t, name, managerBinary(t), nil,
		"--kubeconfig", kubeconfig(t, testenv.SealerUser), "--metrics-bind-address=0", "--health-probe-bind-address=0")
}

// kill sends SIGKILL (and SIGCONT, in case it is stopped) and waits for
// the process to exit.
func (p *process) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
