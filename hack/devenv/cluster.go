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
	"flag"
	"fmt"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// pickCluster is the cluster of the kubeconfig if one is configured and
// answers, else nil (a local control plane), with the line that says which
// and why. The kubeconfig is read as controller-runtime's GetConfig reads it
// (--kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config), but without
// GetConfig's error log of a missing in-cluster config: no kubeconfig is
// the usual case here, not an error. A kubeconfig that cannot be read is
// one, and is printed.
func pickCluster(scr *screen, forceLocal bool) (*rest.Config, string) {
	const local = "starting a local control plane (kube-apiserver and etcd on 127.0.0.1)"
	if forceLocal {
		return nil, "--local: " + local
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f := flag.Lookup("kubeconfig"); f != nil { // registered by controller-runtime
		rules.ExplicitPath = f.Value.String()
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err):
		return nil, "No cluster in the kubeconfig; " + local
	case err != nil:
		scr.errorf("make run: reading the kubeconfig: %v", err)
		return nil, "Not using the kubeconfig; " + local
	}
	if cfg.QPS == 0 {
		// As GetConfig: no client-side rate limit, API priority and
		// fairness is the server's.
		cfg.QPS = -1
	}
	if err := reachable(cfg); err != nil {
		return nil, fmt.Sprintf("The kubeconfig's cluster %s does not answer (%v); %s", cfg.Host, err, local)
	}
	return cfg, fmt.Sprintf("Using the cluster at %s (current kubeconfig).", cfg.Host)
}

// reachable is nil if the API server of cfg answers within 3s.
func reachable(cfg *rest.Config) error {
	_, err := serverVersion(cfg)
	return err
}

// serverVersion is the API server's version (kube-apiserver v1.37.2), as
// `kubectl version` shows it.
func serverVersion(cfg *rest.Config) (string, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 3 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// runOnCluster runs the manager against the kubeconfig's cluster, showing
// its JobStates, until ctx is done.
func runOnCluster(parent context.Context, scr *screen, logs *logs, cfg *rest.Config) error {
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	s := newSession(parent, scr)
	defer s.cancel(nil)
	view := newJobView(scr)
	s.goRun("manager", logs.manager, func(ctx context.Context) error { return runManager(ctx, cfg, view) })
	scr.item("Manager", "JobState and EventStream controllers, in this process (log: %s)", logs.base(logs.manager))
	scr.linef("\nInstall the CRDs with `make install`; run a worker with `go run ./examples/worker --namespace NS`.\nCtrl-C stops the manager.\n")
	view.show()
	err = s.wait()
	view.finish()
	printFinal(scr, c)
	return err
}
