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

// Command gateway serves EventoDB's HTTP protocol (POST /rpc, GET
// /subscribe) on EventStreams: any EventoDB client, pointed at it with a
// token, reads and writes streams stored in the Kubernetes API.
//
// It is its own binary, not a flag of the manager: it scales with its
// clients (every replica serves; it is stateless) while the manager is a
// leader-elected singleton, and it needs RBAC the manager must not have
// (TokenReviews, SubjectAccessReviews, the token Secrets).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway"
	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// version is stamped by the build (-ldflags "-X main.version=..."); a
// semantic version, as EventoDB's clients expect of sys.version.
var version = "0.1.0-dev"

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(jobstatev1alpha1.AddToScheme(scheme))
}

// flags are the command line.
type flags struct {
	bind, metrics, cert, key, adminTokenFile, tokenNamespace string
	maxBody                                                  int64
	readTimeout, writeTimeout, shutdownTimeout, authCacheTTL time.Duration
	qps                                                      float64
	burst                                                    int
}

func parseFlags() (flags, zap.Options) {
	var f flags
	flag.StringVar(&f.bind, "bind-address", ":8080", "The address the EventoDB API (POST /rpc, GET /subscribe, /health, /version) listens on.")
	flag.StringVar(&f.metrics, "metrics-bind-address", "0", "The address the metrics endpoint binds to (HTTPS, authenticated and authorized as the manager's), e.g. :8443; 0 disables it.")
	flag.StringVar(&f.cert, "tls-cert-file", "", "Serve the API over HTTPS with this certificate (PEM); needs --tls-private-key-file.")
	flag.StringVar(&f.key, "tls-private-key-file", "", "The private key (PEM) of --tls-cert-file.")
	flag.Int64Var(&f.maxBody, "max-body-bytes", gateway.DefaultMaxBodyBytes, "Refuse request bodies larger than this with 413.")
	flag.DurationVar(&f.readTimeout, "read-timeout", 30*time.Second, "How long reading a request may take, body included.")
	flag.DurationVar(&f.writeTimeout, "write-timeout", 60*time.Second, "How long writing a response may take (not GET /subscribe's stream).")
	flag.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "How long calls in flight may take to finish on SIGTERM.")
	flag.StringVar(&f.adminTokenFile, "admin-token-file", "", "A file holding the admin token, which may call ns.create, ns.delete and ns.list (mount it from a Secret); empty: only Kubernetes identities allowed to create namespaces may.")
	flag.StringVar(&f.tokenNamespace, "token-namespace", auth.DefaultTokenNamespace, "The namespace whose Secrets hold the EventoDB namespace tokens' hashes.")
	flag.DurationVar(&f.authCacheTTL, "auth-cache-ttl", 10*time.Second, "How long a TokenReview's or SubjectAccessReview's answer is reused (an RBAC change takes effect that much later).")
	flag.Float64Var(&f.qps, "kube-api-qps", 500, "Requests per second to the API server (client-go's limiter; a hot stream's group commit needs far more than its default 5).")
	flag.IntVar(&f.burst, "kube-api-burst", 1000, "Burst of requests to the API server above --kube-api-qps.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	return f, opts
}

// check refuses flags that cannot work, saying which and why.
func (f flags) check() error {
	switch {
	case (f.cert == "") != (f.key == ""):
		return fmt.Errorf("--tls-cert-file and --tls-private-key-file go together")
	case f.maxBody <= 0:
		return fmt.Errorf("--max-body-bytes must be > 0, got %d", f.maxBody)
	case f.readTimeout <= 0 || f.writeTimeout <= 0 || f.shutdownTimeout <= 0:
		return fmt.Errorf("--read-timeout, --write-timeout and --shutdown-timeout must be > 0")
	case f.authCacheTTL < 0:
		return fmt.Errorf("--auth-cache-ttl must be >= 0, got %s", f.authCacheTTL)
	case f.qps <= 0 || f.burst <= 0:
		return fmt.Errorf("--kube-api-qps and --kube-api-burst must be > 0")
	}
	return nil
}

func main() {
	f, zopts := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("gateway")
	if err := f.check(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	if err := run(f); err != nil {
		log.Error(err, "Gateway failed")
		os.Exit(1)
	}
}

// run wires the parts into one manager and runs it until SIGTERM.
func run(f flags) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(f.qps), f.burst
	adminFile := f.adminTokenFile
	if _, err := os.Stat(adminFile); adminFile != "" && errors.Is(err, fs.ErrNotExist) {
		// config/gateway mounts the admin Secret optionally.
		ctrl.Log.WithName("gateway").Info("No admin token: the file does not exist; ns.create, ns.delete and ns.list are for Kubernetes identities allowed to create namespaces", "file", adminFile)
		adminFile = ""
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress: f.metrics, SecureServing: true, FilterProvider: filters.WithAuthenticationAndAuthorization,
		},
	})
	if err != nil {
		return err
	}
	authz, err := auth.New(auth.Options{
		Config: cfg, TokenNamespace: f.tokenNamespace, AdminTokenFile: adminFile,
		AuthenticationCacheTTL: f.authCacheTTL, AuthorizationCacheTTL: f.authCacheTTL,
	})
	if err != nil {
		return err
	}
	srv, err := newServer(mgr, cfg, f, authz)
	if err != nil {
		return err
	}
	if err := mgr.Add(authz); err != nil {
		return err
	}
	if err := mgr.Add(&gateway.Listener{
		Addr: f.bind, CertFile: f.cert, KeyFile: f.key, Handler: srv.Handler(), Log: ctrl.Log.WithName("gateway"),
		ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, ShutdownTimeout: f.shutdownTimeout, OnShutdown: srv.Close,
	}); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// newServer is the gateway's Server, writing live as the gateway's
// identity and following the manager cache's informer for subscriptions.
func newServer(mgr ctrl.Manager, cfg *rest.Config, f flags, authz *auth.Authorizer) (*gateway.Server, error) {
	// Live reads and writes: a client reads its own writes.
	live, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	// Subscriptions follow one shared informer on EventStreams, started
	// with the manager's cache.
	watch, err := mgr.GetCache().GetInformer(context.Background(), &jobstatev1alpha1.EventStream{})
	if err != nil {
		return nil, err
	}
	srv, err := gateway.New(gateway.Options{
		Client: live, Auth: authz, Tokens: authz.Tokens(), Ready: authz.HasSynced,
		// The gateway seals the heads its appends fill (it is a sealer
		// identity in config/admission): a hot stream never waits for the
		// controller.
		Stream:       stream.Options{Sealer: true},
		Subscribe:    gateway.SubscribeOptions{Watch: watch},
		MaxBodyBytes: f.maxBody, Version: version, Log: ctrl.Log.WithName("gateway"), Metrics: metrics.Registry,
	})
	if err != nil {
		return nil, err
	}
	return srv, nil
}
