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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestSamplesRunToCompletion: the manager and the demo worker, as processes
// authenticated as the ServiceAccounts config/default made and a worker's
// bound to its worker role (so they have exactly the RBAC a cluster gives
// them), take the samples to Succeeded: the event-sourced ledger-rebuild and
// the Lease-locked migrate-schema too; flaky-export fails its first attempt
// and succeeds on the second. Then kubectl cannot move a finished job back.
func TestSamplesRunToCompletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	root := testenv.RepoRoot()
	dir := t.TempDir()
	kubeconfig := writeKubeConfig(t, dir, "developer")
	kubectl := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(testenv.AssetsDir(), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// kubectl apply of config/default (envtest installed the CRDs
	// already: this is an update, as on a cluster being upgraded) and of
	// the samples.
	managerConfig := managerKubeConfig(ctx, t, dir)
	ns := env.Namespace(t)
	if out, err := kubectl("apply", "-n", ns, "-k", filepath.Join(root, "config", "samples")); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, out)
	}

	start(ctx, t, build(t, root, dir, "./cmd/manager"),
		"--kubeconfig", managerConfig, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	start(ctx, t, build(t, root, dir, "./examples/worker"),
		"--kubeconfig", workerKubeConfig(ctx, t, dir, ns), "--namespace", ns, "--identity", "e2e-worker", "--steps", "3", "--interval", "300ms")

	var list jobstatev1alpha1.JobStateList
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, js := range list.Items {
			if js.Status.Phase != jobstatev1alpha1.PhaseSucceeded {
				return false, nil
			}
		}
		return len(list.Items) == 5, nil
	})
	if err != nil {
		out, _ := kubectl("get", "js", "-n", ns)
		t.Fatalf("samples did not all succeed: %v\n%s", err, out)
	}
	for _, js := range list.Items {
		want := int32(1)
		if js.Name == "flaky-export" {
			want = 2
		}
		if js.Status.Attempt != want || js.Status.Holder != "e2e-worker" || js.Status.Progress != 100 {
			t.Errorf("%s: attempt %d holder %q progress %d, want attempt %d by e2e-worker at 100", js.Name, js.Status.Attempt, js.Status.Holder, js.Status.Progress, want)
		}
	}

	// The event-sourced sample was projected from the events the worker
	// appended: Claimed, 3 Heartbeats, Succeeded, none rejected.
	ledger := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ledger-rebuild"}, ledger); err != nil {
		t.Fatal(err)
	}
	if p := ledger.Status.Projection; p == nil || p.Position == nil || *p.Position != 4 || p.RejectedCount != 0 {
		t.Errorf("ledger-rebuild projection = %+v, want position 4 and nothing rejected", p)
	}
	// The Lease-locked sample was written under its Lease, fenced.
	migrate := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "migrate-schema"}, migrate); err != nil {
		t.Fatal(err)
	}
	lock := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: jobstate.LeaseName("migrate-schema")}, lock); err != nil {
		t.Errorf("migrate-schema's Lease: %v", err)
	}
	if migrate.Status.LockToken < 1 {
		t.Errorf("migrate-schema status.lockToken = %d, want a fencing token", migrate.Status.LockToken)
	}
	out, err := kubectl("get", "es", "-n", ns, "ledger-rebuild-events")
	if err != nil || !strings.Contains(out, "VERSION") || !strings.Contains(out, " 4 ") {
		t.Errorf("kubectl get es: %v\n%s", err, out)
	}
	// Nobody can rewrite the history, kubectl included.
	out, err = kubectl("patch", "es", "ledger-rebuild-events", "-n", ns, "--type=merge", "-p", `{"head":{"events":"{\"position\":0,\"type\":\"Forged\"}\n"}}`)
	if err == nil || !strings.Contains(out, "committed events are immutable") {
		t.Errorf("kubectl patch of a committed event: err %v, output:\n%s", err, out)
	}

	// The printer columns a user sees.
	out, err = kubectl("get", "js", "-n", ns, "flaky-export")
	if err != nil || !strings.Contains(out, "PHASE") || !strings.Contains(out, "Succeeded") || !strings.Contains(out, "e2e-worker") {
		t.Errorf("kubectl get js: %v\n%s", err, out)
	}
	// A person cannot move a finished job back, and is told why.
	out, err = kubectl("patch", "js", "nightly-import", "-n", ns, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Running"}}`)
	if err == nil || !strings.Contains(out, "status.phase is terminal") {
		t.Errorf("kubectl patch of a Succeeded job back to Running: err %v, output:\n%s", err, out)
	}
	js := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nightly-import"}, js); err != nil || js.Status.Phase != jobstatev1alpha1.PhaseSucceeded {
		t.Errorf("after the refused patch: phase %s, err %v; want Succeeded", js.Status.Phase, err)
	}
}

// writeKubeConfig writes a kubeconfig for user (an admin) into dir and
// returns its path. A person is "developer"; the manager is the sealer,
// testenv.SealerUser.
func writeKubeConfig(t *testing.T, dir, user string) string {
	t.Helper()
	data, err := env.KubeConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(user, ":", "_")+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// build compiles pkg into dir and returns the binary's path.
func build(t *testing.T, root, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// process is a binary a test started, with its output so far.
type process struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{} // closed when it has exited
	halted sync.Once
	mu     sync.Mutex
	out    bytes.Buffer
}

// Write collects the process's stdout and stderr.
func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what the process has written so far.
func (p *process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitFor waits up to timeout for the output to contain s, and says
// whether it does.
func (p *process) WaitFor(ctx context.Context, s string, timeout time.Duration) bool {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return strings.Contains(p.Output(), s), nil
	})
	return err == nil
}

// Kill sends SIGKILL: the process dies without releasing anything.
func (p *process) Kill() error { return p.cmd.Process.Kill() }

// stop interrupts the process (a leader releases its lease), waits for it
// to exit, and kills it after 10s. Only the first call does anything.
func (p *process) stop() {
	p.halted.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// launch starts bin with env added to its environment. It runs until stop,
// or until the test ends; its output is logged if the test fails.
func launch(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: filepath.Base(bin), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s %v output:\n%s", p.name, args, p.Output())
		}
	})
	return p
}

// start is launch, stopping the process when ctx ends too.
func start(ctx context.Context, t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := launch(t, nil, bin, args...)
	go func() {
		select {
		case <-ctx.Done():
			p.stop()
		case <-p.done:
		}
	}()
	return p
}

// TestDefaultConfigInstallsTheSealerPolicies: `kubectl apply -k
// config/default` ships the admission policies, bound under the prefixed
// names, with the username of the ServiceAccount the manager runs as.
func TestDefaultConfigInstallsTheSealerPolicies(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), filepath.Join(testenv.AssetsDir(), "kubectl"), "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	for _, want := range []string{
		"kind: ValidatingAdmissionPolicy\nmetadata:\n  labels:\n    app.kubernetes.io/name: jobstate\n  name: jobstate-eventstream-sealer",
		"policyName: jobstate-eventstream-sealer",
		"policyName: jobstate-eventsegment-sealer",
		"policyName: jobstate-eventstream-lifetime",
		// Cluster-scoped: no namespace (kustomize would give it one).
		"kind: MutatingAdmissionPolicy\nmetadata:\n  labels:\n    app.kubernetes.io/name: jobstate\n  name: jobstate-eventstream-stamp\nspec:",
		"kind: MutatingAdmissionPolicyBinding\nmetadata:\n  labels:\n    app.kubernetes.io/name: jobstate\n  name: jobstate-eventstream-stamp\nspec:\n  policyName: jobstate-eventstream-stamp",
		"serviceAccountName: jobstate-controller-manager",
		"namespace: jobstate-system",
		"serviceAccountName: jobstate-gateway",
		// The two sealers (kustomize folds the line between them).
		"request.userInfo.username in ['" + testenv.SealerUser + "',",
		"'" + testenv.GatewayUser + "']",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config/default has no %q", want)
		}
	}
}
