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

package plugin_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// update rewrites the golden files: go test ./internal/plugin -update.
var update = flag.Bool("update", false, "rewrite testdata/*.golden with what the commands print")

// built is the plugin binary, built once for the package's tests.
var built = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kubectl-jobstate-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kubectl-jobstate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-jobstate")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// kubeconfigs are written once per user.
var kubeconfigs sync.Map

// kubeconfig is a kubeconfig file for user (an admin of the control plane).
func kubeconfig(t *testing.T, user string) string {
	t.Helper()
	if path, ok := kubeconfigs.Load(user); ok {
		return path.(string)
	}
	data, err := env.KubeConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kubectl-jobstate-kubeconfig-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfigs.Store(user, path)
	return path
}

// result is what one run of the plugin did.
type result struct {
	stdout, stderr string
	code           int
}

// kubectlJobstate runs the built plugin as a person ("developer") with
// args, as `kubectl jobstate args...` would, and returns what it printed
// and its exit code. It fails the test only if the binary cannot run.
func kubectlJobstate(t *testing.T, args ...string) result {
	t.Helper()
	return runAs(t, "developer", args...)
}

// runAs is kubectlJobstate as user.
func runAs(t *testing.T, user string, args ...string) result {
	t.Helper()
	bin, err := built()
	if err != nil {
		t.Fatalf("building cmd/kubectl-jobstate: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig(t, user)}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running kubectl-jobstate %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustRun runs the plugin and fails unless it exits with code.
func mustRun(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := kubectlJobstate(t, args...)
	if r.code != code {
		t.Fatalf("kubectl jobstate %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// ages are kubectl's durations (5s, 3m2s, 4h, 2d), which golden files
// cannot hold.
var ages = regexp.MustCompile(`\b\d+(s|m\d*s?|h\d*m?|d\d*h?)\b`)

// normalize makes output comparable across runs: the test's namespace
// becomes NAMESPACE, ages become AGE, and the trailing spaces of table
// columns go.
func normalize(out string, namespaces ...string) string {
	for _, ns := range namespaces {
		out = strings.ReplaceAll(out, ns, "NAMESPACE")
	}
	out = ages.ReplaceAllString(out, "AGE")
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// golden compares got (normalized) with testdata/name.golden, or rewrites
// it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/plugin -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", t.Name(), path, got, want)
	}
}

// TestUsage: the plugin introduces itself as kubectl jobstate, and an
// unknown command is a usage error (exit 2) that says so.
func TestUsage(t *testing.T) {
	r := kubectlJobstate(t, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "kubectl jobstate") {
		t.Fatalf("--help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = kubectlJobstate(t, "bogus")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "bogus" for "kubectl jobstate"`) {
		t.Fatalf("bogus: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestKubectlFindsThePlugin: with kubectl-jobstate on PATH, `kubectl
// jobstate` (the kubectl that make envtest-assets builds) runs it; kubectl
// wants the flags after the plugin's name.
func TestKubectlFindsThePlugin(t *testing.T) {
	bin, err := built()
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	cmd := exec.CommandContext(t.Context(), filepath.Join(testenv.AssetsDir(), "kubectl"), "jobstate", "streams", "version", "nothing-here", "--kubeconfig", kubeconfig(t, "developer"), "-n", ns)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "none: the stream has no events") {
		t.Fatalf("kubectl jobstate streams version: %v\n%s", err, out)
	}
}
