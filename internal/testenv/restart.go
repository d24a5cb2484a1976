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

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// StartRestartable starts a control plane like Start whose kube-apiserver
// can be stopped and started again (StopAPIServer, StartAPIServer,
// RestartAPIServer) while etcd keeps running with its data: the same port,
// the same serving certificate and client CA, so every rest.Config and
// client made before a restart works after it, and every object stored
// before it is there after it.
//
// envtest regenerates certificates on a restart when it chose their
// directory itself (it deletes it on Stop), so here both the API server's
// certificate directory and etcd's data directory are under Dir, one
// temporary directory that Stop removes. Dir is in the command line of
// both processes: a test killed before its cleanup leaves processes that
// `pgrep -f <Dir>` finds.
func StartRestartable() (*Env, error) {
	dir, err := os.MkdirTemp("", "jobstate-testenv-")
	if err != nil {
		return nil, err
	}
	certs, data := filepath.Join(dir, "apiserver"), filepath.Join(dir, "etcd")
	for _, d := range []string{certs, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	// Its output, for a test to read when a restart goes wrong.
	apiserverLog, err := os.Create(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	env := newEnvironment()
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certs, Out: apiserverLog, Err: apiserverLog}
	configureAPIServer(env.ControlPlane.APIServer)
	// On SIGTERM kube-apiserver waits for its HTTP server to shut down,
	// which open watches (every informer's) held up for longer than envtest
	// waits before it kills the process (measured: over 20s, with a
	// manager running). With a grace period it ends the watches within it
	// (then it stopped in 1-4s).
	env.ControlPlane.APIServer.Configure().Set("shutdown-watch-termination-grace-period", "2s")
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: data}
	// A restart on a loaded machine took 17s to be healthy, close to
	// envtest's default of 20s.
	env.ControlPlaneStartTimeout, env.ControlPlaneStopTimeout = time.Minute, 30*time.Second
	e, err := startEnvironment(env)
	if err != nil {
		_ = apiserverLog.Close()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	e.dir, e.apiserverLog = dir, apiserverLog
	return e, nil
}

// Dir is the directory holding a restartable control plane's certificates
// and etcd data ("" for one made by Start).
func (e *Env) Dir() string { return e.dir }

// errNotRestartable: the control plane was made by Start.
var errNotRestartable = errors.New("testenv: the API server of a control plane made by Start cannot be restarted; use StartRestartable")

// StopAPIServer stops the kube-apiserver process (SIGTERM, then SIGKILL
// after envtest's stop timeout); etcd keeps running. Until StartAPIServer,
// every request fails to connect.
func (e *Env) StopAPIServer() error {
	if e.dir == "" {
		return errNotRestartable
	}
	if err := e.env.ControlPlane.APIServer.Stop(); err != nil {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	return nil
}

// StartAPIServer starts the kube-apiserver process stopped by StopAPIServer
// on the same port, certificates and etcd, and returns once it is ready
// (/readyz), serves jobstate's API again and enforces the admission
// policies (all come back from etcd a moment after the process reports
// healthy, which is all envtest waits for).
func (e *Env) StartAPIServer(ctx context.Context) error {
	if e.dir == "" {
		return errNotRestartable
	}
	if err := e.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	// envtest waits for /healthz; /readyz also waits for the informers
	// behind RBAC (until they sync, users that RBAC authorizes are
	// forbidden).
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		return err
	}
	var last string // what /readyz said last
	ready := func(ctx context.Context) bool {
		body, err := dc.RESTClient().Get().AbsPath("/readyz").Param("verbose", "").DoRaw(ctx)
		last = string(body)
		if err != nil {
			last = fmt.Sprintf("%v: %s", err, body)
		}
		return err == nil
	}
	if err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		return ready(ctx) && e.Client.List(ctx, &jobstatev1alpha1.EventStreamList{}, client.Limit(1)) == nil, nil
	}); err != nil {
		return fmt.Errorf("waiting for the restarted kube-apiserver to be ready and serve jobstate's API: %w; /readyz: %s", err, last)
	}
	if err := e.waitAdmission(ctx); err != nil {
		return fmt.Errorf("waiting for the restarted kube-apiserver to enforce config/admission: %w", err)
	}
	return nil
}

// RestartAPIServer is StopAPIServer and StartAPIServer.
func (e *Env) RestartAPIServer(ctx context.Context) error {
	if err := e.StopAPIServer(); err != nil {
		return err
	}
	return e.StartAPIServer(ctx)
}

// MainRestartable is Main with a control plane made by StartRestartable.
func MainRestartable(m *testing.M, env **Env) { run(m, env, StartRestartable) }

// APIServerLog is the file holding the output of a restartable control
// plane's kube-apiserver, every run of it ("" for one made by Start).
func (e *Env) APIServerLog() string {
	if e.apiserverLog == nil {
		return ""
	}
	return e.apiserverLog.Name()
}
