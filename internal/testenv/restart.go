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
	env := newEnvironment()
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certs}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: data}
	e, err := startEnvironment(env)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	e.dir = dir
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
// on the same port, certificates and etcd, and returns once it serves
// jobstate's API again and enforces the admission policies (both come back
// from etcd, a moment after the process reports healthy).
func (e *Env) StartAPIServer(ctx context.Context) error {
	if e.dir == "" {
		return errNotRestartable
	}
	if err := e.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	if err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		return e.Client.List(ctx, &jobstatev1alpha1.EventStreamList{}, client.Limit(1)) == nil, nil
	}); err != nil {
		return fmt.Errorf("waiting for the restarted kube-apiserver to serve jobstate's API: %w", err)
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
