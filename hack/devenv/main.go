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

// Command devenv is `make run`: it runs the jobstate manager against the
// cluster of the current kubeconfig, or, when none is reachable, against a
// local control plane it starts itself (kube-apiserver and etcd built by
// hack/envtest-assets.sh), with the CRDs installed, config/samples applied
// and the demo worker (examples/worker) working on the sample jobs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/controllers"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

func main() {
	exitAfter := flag.Duration("exit-after", 0, "Stop after this long and print the final JobStates (0: run until Ctrl-C).")
	local := flag.Bool("local", false, "Always start a local control plane, even if a kubeconfig points at a cluster.")
	namespace := flag.String("namespace", "default", "Namespace for the samples, the demo worker and the gateway's token (local mode).")
	gatewayAddr := flag.String("gateway-address", "127.0.0.1:8080", "Where the EventoDB gateway listens (local mode); empty: no gateway.")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *exitAfter)
		defer cancel()
	}
	if err := run(ctx, *local, *namespace, *gatewayAddr); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, forceLocal bool, namespace, gatewayAddr string) error {
	if cfg, err := ctrl.GetConfig(); err == nil && !forceLocal && reachable(cfg) {
		fmt.Printf("Using the cluster at %s (current kubeconfig). Install the CRDs with `make install`;\n"+
			"run a worker with `go run ./examples/worker --namespace NS`.\n", cfg.Host)
		return runManager(ctx, cfg)
	}

	fmt.Println("No reachable cluster in the kubeconfig: starting a local control plane (kube-apiserver + etcd on 127.0.0.1)...")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	root := testenv.RepoRoot()
	kubeconfig := filepath.Join(root, "bin", "jobstate-dev.kubeconfig")
	kubectl := filepath.Join(testenv.AssetsDir(), "kubectl")
	if err := writeKubeConfig(env, kubeconfig, "developer"); err != nil {
		return err
	}
	apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-n", namespace, "-k", filepath.Join(root, "config", "samples"))
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("applying config/samples: %w", err)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if err := runManager(ctx, env.Config); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	})
	wg.Go(func() {
		if err := runWorker(ctx, root, kubeconfig, namespace); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
	})
	gatewayNote, err := runGateway(ctx, &wg, env, root, gatewayAddr, namespace)
	if err != nil {
		return err
	}

	fmt.Printf(`
==========================================================================
 jobstate is running: manager + demo worker against a local API server.
 Watch the sample jobs move through their phases in another terminal:

   export KUBECONFIG=%s
   %s get js -n %s -w

 flaky-export fails its first attempt on purpose and is retried.
 Cancel a job:  kubectl patch js reindex-search -n %s --type=merge -p '{"spec":{"cancel":true}}'
%s Ctrl-C stops everything.
==========================================================================

`, kubeconfig, kubectl, namespace, namespace, gatewayNote)

	<-ctx.Done()
	printJobStates(env.Client, namespace)
	return nil
}

// reachable reports whether the API server of cfg answers within 3s.
func reachable(cfg *rest.Config) bool {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 3 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false
	}
	_, err = dc.ServerVersion()
	return err == nil
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

// runManager runs the same controllers as cmd/manager, without leader
// election and with metrics and probes off (no ports to collide with).
func runManager(ctx context.Context, cfg *rest.Config) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	if err := (&controllers.JobStateReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&controllers.EventStreamReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// runWorker builds examples/worker and runs it as its own process, as a
// worker pod would run.
func runWorker(ctx context.Context, root, kubeconfig, namespace string) error {
	bin := filepath.Join(root, "bin", "worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/worker")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building examples/worker: %w", err)
	}
	worker := exec.CommandContext(ctx, bin, "--kubeconfig", kubeconfig, "--namespace", namespace, "--identity", "demo-worker-1", "--steps", "30")
	worker.Stdout, worker.Stderr = os.Stdout, os.Stderr
	worker.Cancel = func() error { return worker.Process.Signal(os.Interrupt) }
	worker.WaitDelay = 5 * time.Second
	return worker.Run()
}

func printJobStates(c client.Client, namespace string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list jobstatev1alpha1.JobStateList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		fmt.Fprintln(os.Stderr, "listing JobStates:", err)
		return
	}
	fmt.Println("\nJobStates at exit:")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tATTEMPT\tHOLDER\tPROGRESS\tREASON")
	for _, js := range list.Items {
		s := js.Status
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", js.Name, s.Phase, s.Attempt, s.Holder, s.Progress, s.Reason)
	}
	_ = tw.Flush()
}
