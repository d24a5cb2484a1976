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

package jobstate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// config/rbac/worker_role.yaml is enough for a worker's whole job, with
// either lock policy and on an event-sourced job, and no more than that.
func TestWorkerRole(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "worker_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	role.Name = "worker-role-" + ns
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "worker-" + ns}},
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.ConfigFor("worker-" + ns)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	for _, policy := range []jobstatev1alpha1.LockPolicy{jobstatev1alpha1.LockPolicyOptimistic, jobstatev1alpha1.LockPolicyLease} {
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "job-" + strings.ToLower(string(policy))}, Spec: jobstatev1alpha1.JobStateSpec{LockPolicy: policy}}
		if err := env.Client.Create(ctx, js); err != nil {
			t.Fatal(err)
		}
		if err := lifecycle.DoInitialize(js, t0); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Status().Update(ctx, js); err != nil {
			t.Fatal(err)
		}
		worker, err := jobstate.New(c, jobstate.Options{Identity: "worker-1"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := worker.Claim(ctx, client.ObjectKeyFromObject(js))
		if err != nil {
			t.Fatalf("%s: claim with the worker role: %v", policy, err)
		}
		if err := worker.Heartbeat(ctx, a, 50, map[string]any{"cursor": "p-1"}); err != nil {
			t.Fatalf("%s: heartbeat: %v", policy, err)
		}
		if err := worker.Succeed(ctx, a, "done"); err != nil {
			t.Fatalf("%s: succeed: %v", policy, err)
		}
	}

	streams, err := stream.New(c, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jobEvents := client.ObjectKey{Namespace: ns, Name: "job-events"}
	for i := range 60 { // past the sealing size
		if _, err := streams.Append(ctx, jobEvents, []stream.EventData{{Type: "Heartbeat", Data: map[string]int{"i": i}}}, stream.AppendOptions{}); err != nil {
			t.Fatalf("append %d with the worker role: %v", i, err)
		}
	}
	// The sealer (the manager's identity) seals; the worker reads across
	// the segment.
	sealer, err := stream.New(env.Client, stream.Options{Sealer: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, wrote, err := sealer.Seal(ctx, jobEvents); err != nil || !wrote {
		t.Fatalf("seal: wrote %v, %v", wrote, err)
	}
	if events, err := streams.Read(ctx, jobEvents, 0, 100); err != nil || len(events) != 60 {
		t.Fatalf("read with the worker role: %d events, %v", len(events), err)
	}

	// No more than that: no spec edits, no deletes.
	js := &jobstatev1alpha1.JobState{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "job-optimistic"}, js); err != nil {
		t.Fatal(err)
	}
	js.Spec.Cancel = true
	if err := c.Update(ctx, js); !apierrors.IsForbidden(err) {
		t.Errorf("spec update with the worker role: %v, want Forbidden", err)
	}
	if err := c.Delete(ctx, js); !apierrors.IsForbidden(err) {
		t.Errorf("delete with the worker role: %v, want Forbidden", err)
	}
}
