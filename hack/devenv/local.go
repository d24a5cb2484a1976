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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/controllers"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// workerIdentity is the demo worker's status.holder.
const workerIdentity = "demo-worker-1"

// runLocal starts a local control plane and everything on it, shows the
// JobStates until ctx is done, and stops it all.
func runLocal(ctx context.Context, scr *screen, logs *logs, o options) error {
	built := buildBinaries(ctx, o.dir) // while the control plane starts
	env, err := startControlPlane(scr, logs)
	if err != nil {
		return err
	}
	defer stopControlPlane(scr, env, logs)
	kubeconfig := filepath.Join(o.dir, "kubeconfig")
	if err := writeKubeConfig(env, kubeconfig, "developer"); err != nil {
		return err
	}
	if err := applySamples(ctx, scr, env, kubeconfig, o.namespace); err != nil {
		return err
	}
	bins, err := built()
	if err != nil {
		return err
	}

	s := newSession(ctx, scr)
	defer s.cancel(nil)
	view := newJobView(scr)
	s.goRun("manager", logs.manager, func(ctx context.Context) error { return runManager(ctx, env.Config, view) })
	scr.item("Manager", "JobState and EventStream controllers, in this process (log: %s)", logs.base(logs.manager))
	s.goRun("worker", logs.worker, func(ctx context.Context) error { return runWorker(ctx, bins.worker, kubeconfig, o, logs.worker) })
	scr.item("Worker", "examples/worker as %s, a heartbeat every %s (log: %s)", workerIdentity, o.workerInterval, logs.base(logs.worker))
	gw, err := startGateway(s, env, bins.gateway, o, logs.gateway)
	if err != nil {
		s.cancel(err)
		s.wg.Wait()
		return err
	}
	printHowTo(scr, kubeconfig, o.namespace, gw)
	view.show()
	err = s.wait()
	view.finish()
	printFinal(scr, env.Client)
	return err
}

// startControlPlane starts kube-apiserver and etcd, their output in the
// log directory.
func startControlPlane(scr *screen, logs *logs) (*testenv.Env, error) {
	env, err := testenv.StartLogged(logs.apiserver, logs.etcd)
	if err != nil {
		return nil, fmt.Errorf("%w (logs: %s, %s, %s)", err, displayPath(logs.manager.Name()), logs.base(logs.apiserver), logs.base(logs.etcd))
	}
	version, err := serverVersion(env.Config)
	if err != nil {
		version = "(version unknown: " + err.Error() + ")"
	}
	scr.item("Control plane", "kube-apiserver %s and etcd at %s (logs: %s, %s)", version, strings.TrimSuffix(env.Config.Host, "/"), logs.base(logs.apiserver), logs.base(logs.etcd))
	return env, nil
}

func stopControlPlane(scr *screen, env *testenv.Env, logs *logs) {
	if err := env.Stop(); err != nil {
		scr.errorf("make run: stopping the control plane: %v (logs: %s, %s)", err, displayPath(logs.apiserver.Name()), logs.base(logs.etcd))
	}
}

// applySamples applies config/samples with kubectl, as a person would.
func applySamples(ctx context.Context, scr *screen, env *testenv.Env, kubeconfig, namespace string) error {
	kubectl := filepath.Join(testenv.AssetsDir(), "kubectl")
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-n", namespace, "-k", filepath.Join(testenv.RepoRoot(), "config", "samples")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("applying config/samples: %w\n%s", err, out)
	}
	var jobs jobstatev1alpha1.JobStateList
	var streams jobstatev1alpha1.EventStreamList
	if err := env.Client.List(ctx, &jobs, client.InNamespace(namespace)); err != nil {
		return err
	}
	if err := env.Client.List(ctx, &streams, client.InNamespace(namespace)); err != nil {
		return err
	}
	scr.item("Samples", "config/samples in namespace %s: %s, %s", namespace, count(len(jobs.Items), "JobState"), count(len(streams.Items), "EventStream"))
	return nil
}

// binaries are the programs make run runs as their own processes.
type binaries struct{ worker, gateway string }

// buildBinaries builds examples/worker and cmd/gateway into dir in the
// background; the function it returns waits for them.
func buildBinaries(ctx context.Context, dir string) func() (binaries, error) {
	done := make(chan error, 1)
	go func() {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./examples/worker", "./cmd/gateway")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			done <- fmt.Errorf("building examples/worker and cmd/gateway: %w\n%s", err, strings.TrimSpace(string(out)))
		}
		close(done)
	}()
	return func() (binaries, error) {
		return binaries{worker: filepath.Join(dir, "worker"), gateway: filepath.Join(dir, "gateway")}, <-done
	}
}

// runWorker runs the demo worker as its own process, as a worker pod
// would run, until ctx is done.
func runWorker(ctx context.Context, bin, kubeconfig string, o options, log *os.File) error {
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kubeconfig, "--namespace", o.namespace,
		"--identity", workerIdentity, "--steps", "30", "--interval", o.workerInterval.String())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}

// runManager runs the same controllers as cmd/manager, without leader
// election and with metrics and probes off (no ports to collide with), and
// view on the manager's cache, until ctx is done.
func runManager(ctx context.Context, cfg *rest.Config, view *jobView) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(),
	})
	if err != nil {
		return err
	}
	if err := controllers.SetupWithManager(mgr, 0); err != nil {
		return err
	}
	if err := mgr.Add(view.watch(mgr.GetCache())); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

func writeKubeConfig(env *testenv.Env, path, user string) error {
	data, err := env.KubeConfig(user)
	if err != nil {
		return fmt.Errorf("making a kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// printHowTo prints what to try in another terminal.
func printHowTo(scr *screen, kubeconfig, namespace string, gw *gatewayProcess) {
	kubectl := filepath.Join(testenv.AssetsDir(), "kubectl")
	if home, err := os.UserHomeDir(); err == nil && strings.HasPrefix(kubectl, home+string(filepath.Separator)) {
		kubectl = "~" + kubectl[len(home):]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nIn another terminal (kubectl: yours, or %s):\n", kubectl)
	fmt.Fprintf(&b, "  export KUBECONFIG=%s\n", kubeconfig)
	fmt.Fprintf(&b, "  kubectl get js -n %s -w\n", namespace)
	fmt.Fprintf(&b, "  kubectl patch js reindex-search -n %s --type=merge -p '{\"spec\":{\"cancel\":true}}'   # cancel a job\n", namespace)
	if gw != nil {
		fmt.Fprintf(&b, "  export TOKEN=%s\n", gw.token)
		fmt.Fprintf(&b, "  curl -s -X POST %s/rpc -H \"Authorization: Bearer $TOKEN\" -d '[\"stream.version\", \"account-123\"]'\n", gw.url)
		fmt.Fprintf(&b, "  URL=%s TOKEN=$TOKEN node examples/eventodb/bank-account.mjs\n", gw.url)
	}
	b.WriteString("flaky-export fails its first attempt on purpose and is retried. Ctrl-C stops everything.\n")
	scr.linef("%s", b.String())
}

// count is "1 JobState", "4 JobStates".
func count(n int, kind string) string {
	if n == 1 {
		return "1 " + kind
	}
	return fmt.Sprintf("%d %ss", n, kind)
}
