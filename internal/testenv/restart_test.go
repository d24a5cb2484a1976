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
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// TestRestartAPIServer: a restarted kube-apiserver serves the objects
// stored before the restart, to the clients made before it, and takes new
// writes; the admission policies are enforced again. Stop removes the
// directory.
func TestRestartAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	e, err := StartRestartable()
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = e.Stop()
		}
	})
	dir := e.Dir()
	if dir == "" {
		t.Fatal("a restartable control plane has no Dir")
	}
	worker, err := e.ConfigFor("worker")
	if err != nil {
		t.Fatal(err)
	}
	workerClient, err := client.New(worker, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	before := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "before"}, Data: map[string]string{"k": "v"}}
	if err := e.Client.Create(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := e.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(before), &corev1.ConfigMap{}); err == nil {
		t.Fatal("Get succeeded while the API server was stopped")
	}
	start := time.Now()
	if err := e.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver started again in %s", time.Since(start).Round(time.Millisecond))

	got := &corev1.ConfigMap{}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(before), got); err != nil || got.Data["k"] != "v" || got.UID != before.UID {
		t.Fatalf("after the restart: %v, %+v; want the ConfigMap stored before it", err, got)
	}
	// A client made before the restart, for another user, is still
	// authenticated (same client CA) and authorized as before (RBAC in etcd:
	// nothing).
	if err := workerClient.Get(ctx, client.ObjectKeyFromObject(before), &corev1.ConfigMap{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("worker's Get after the restart: %v, want forbidden", err)
	}
	if err := e.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "after"}}); err != nil {
		t.Errorf("create after the restart: %v", err)
	}
	probe := &jobstatev1alpha1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "claims-sealed"},
		Head:       &jobstatev1alpha1.EventStreamHead{Version: 0, First: 1},
	}
	if err := e.AdminAs(t, "someone").Create(ctx, probe, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "only the EventStream sealer") {
		t.Errorf("an admin claiming sealed events after the restart: %v, want refused by config/admission", err)
	}

	stopped = true
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v; want it removed", dir, err)
	}
}

// TestStartIsNotRestartable: the API server of a plain Start cannot be
// stopped alone (envtest would give it new certificates).
func TestStartIsNotRestartable(t *testing.T) {
	e := &Env{}
	if err := e.StopAPIServer(); !errors.Is(err, errNotRestartable) {
		t.Errorf("StopAPIServer: %v, want errNotRestartable", err)
	}
	if err := e.RestartAPIServer(t.Context()); !errors.Is(err, errNotRestartable) {
		t.Errorf("RestartAPIServer: %v, want errNotRestartable", err)
	}
}
