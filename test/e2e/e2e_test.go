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
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestSamplesRunToCompletion: manager and worker processes take the three
// samples to Succeeded; flaky-export fails its first attempt and succeeds on
// the second. Then kubectl cannot move a finished job back.
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

	// kubectl apply of the CRDs (envtest installed them already: this is
	// an update, as on a cluster being upgraded) and of the samples.
	if out, err := kubectl("apply", "--server-side", "--force-conflicts", "-k", filepath.Join(root, "config", "crd")); err != nil {
		t.Fatalf("kubectl apply -k config/crd: %v\n%s", err, out)
	}
	ns := env.Namespace(t)
	if out, err := kubectl("apply", "-n", ns, "-k", filepath.Join(root, "config", "samples")); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, out)
	}

	start(ctx, t, build(t, root, dir, "./cmd/manager"),
		"--kubeconfig", writeKubeConfig(t, dir, testenv.SealerUser), "--metrics-bind-address=0", "--health-probe-bind-address=0")
	start(ctx, t, build(t, root, dir, "./examples/worker"),
		"--kubeconfig", kubeconfig, "--namespace", ns, "--identity", "e2e-worker", "--steps", "3", "--interval", "300ms")

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
		return len(list.Items) == 4, nil
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

// start runs bin until the test ends; its output is logged if the test
// fails.
func start(ctx context.Context, t *testing.T, bin string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
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
