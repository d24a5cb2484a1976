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

// Command manager runs the jobstate controllers.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/controllers"
	// +kubebuilder:scaffold:imports
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(jobstatev1alpha1.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

func main() {
	mgrOpts, logOpts, workers := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(logOpts)))
	log := ctrl.Log.WithName("setup")
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), mgrOpts)
	if err != nil {
		log.Error(err, "Unable to create manager")
		os.Exit(1)
	}
	if err := controllers.SetupWithManager(mgr, workers); err != nil {
		log.Error(err, "Unable to create controllers")
		os.Exit(1)
	}
	// +kubebuilder:scaffold:builder

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up ready check")
		os.Exit(1)
	}
	log.Info("Starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Problem running manager")
		os.Exit(1)
	}
}

// defaultConcurrentReconciles is --max-concurrent-reconciles' default. A
// reconcile spends its time waiting on API round trips, not on the CPU, so
// the number is not tied to GOMAXPROCS: 8 concurrent writers on distinct
// objects is what one API server on 2 cores serves at its best (about
// 1000 writes/s). test/bench's scale section: 8000 new JobStates were all
// Pending 65 s after the first create with 8 workers, 101 s with one
// (different runs on a loaded machine; see README, At scale).
const defaultConcurrentReconciles = 8

// parseFlags parses the command line into the manager's options, the
// logger's, and the reconciles each controller may run at once.
func parseFlags() (ctrl.Options, *zap.Options, int) {
	var metricsAddr, probeAddr, leaderElectionNamespace string
	var leaderElect, secureMetrics bool
	var workers int
	var leaseDuration, renewDeadline, retryPeriod time.Duration
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Enable leader election for controller manager. "+
		"Enabling this will ensure there is only one active controller manager.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "The namespace of the leader election Lease. "+
		"Default: the namespace the manager's pod runs in; required outside a cluster.")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a standby waits after the "+
		"leader's last renewal before it takes the lease: the longest failover after a leader dies.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying "+
		"to renew before it gives up leadership and exits; less than --leader-election-lease-duration.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second, "How often the leader renews and a "+
		"standby tries to acquire.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "If set, the metrics endpoint is served securely via HTTPS "+
		"with authentication and authorization. Use --metrics-secure=false to use HTTP instead.")
	flag.IntVar(&workers, "max-concurrent-reconciles", defaultConcurrentReconciles, "How many objects each controller "+
		"(JobState, EventStream) reconciles at once; one object is never reconciled twice at once. A reconcile mostly "+
		"waits on the API server, so a few per core keep it busy; 1 reconciles one object at a time.")
	logOpts := &zap.Options{Development: true}
	logOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if workers < 1 {
		fmt.Fprintln(os.Stderr, "--max-concurrent-reconciles must be at least 1")
		os.Exit(2)
	}

	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "jobstate-manager.state.jobstate.dev",
		LeaderElectionNamespace: leaderElectionNamespace,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// The manager exits right after Start returns: a replica shut down
		// on purpose (a rollout, a drain) hands the lease over at once
		// instead of making the other wait out the lease duration.
		LeaderElectionReleaseOnCancel: true,
	}, logOpts, workers
}
