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
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// A line that looks like pkg/stream's (the CRD's pattern lets it through)
// but is not JSON.
func badLine(position int64) string {
	return fmt.Sprintf(`{"position":%d,"id":"x","type":"Forged","data":{,"time":"t"}`+"\n", position)
}

// TestMalformedStreamDoesNotStopTheManager: streams whose head text a
// worker-role client made undecodable — one stored before the manager
// starts, one broken while it runs — are reported on themselves, and the
// manager (a process, restarted in between) keeps initializing JobStates
// and writing other streams' status in every namespace.
func TestMalformedStreamDoesNotStopTheManager(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	root, dir := testenv.RepoRoot(), t.TempDir()
	kubeconfig := writeKubeConfig(t, dir, testenv.SealerUser)
	manager := build(t, root, dir, "./cmd/manager")
	bad, other := env.Namespace(t), env.Namespace(t)
	worker := env.ClientAs(t, bad, "worker", "worker_role.yaml")
	// One Client for both namespaces.
	streams, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	orders := client.ObjectKey{Namespace: other, Name: "orders"}
	appendTo := func(key client.ObjectKey, n int) {
		t.Helper()
		for i := range n {
			if _, err := streams.Append(ctx, key, []stream.EventData{{Type: "Ticked", Data: map[string]int{"i": i}}}, stream.AppendOptions{}); err != nil {
				t.Fatalf("append to %s: %v", key, err)
			}
		}
	}

	// Stored before the manager starts: a malformed head, sent as the
	// YAML a person would apply.
	created := &unstructured.Unstructured{Object: map[string]any{"head": map[string]any{"version": int64(0), "events": badLine(0)}}}
	created.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind("EventStream"))
	created.SetNamespace(bad)
	created.SetName("created-bad")
	if err := worker.Create(ctx, created); err != nil {
		t.Fatal(err)
	}
	appendTo(client.ObjectKey{Namespace: bad, Name: "broken-later"}, 10)

	runManager := func() (stop func()) {
		mctx, mcancel := context.WithCancel(ctx)
		start(mctx, t, manager, "--kubeconfig", kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=0")
		return mcancel
	}
	serving := func(step string) {
		t.Helper()
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: step}}
		if err := env.Client.Create(ctx, js); err != nil {
			t.Fatal(err)
		}
		appendTo(orders, 3)
		version, _, err := streams.Version(ctx, orders)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, step+": the new JobState is initialized and the other stream's status is current", func() (bool, error) {
			es := &jobstatev1alpha1.EventStream{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(js), js); err != nil {
				return false, err
			}
			if err := env.Client.Get(ctx, orders, es); err != nil {
				return false, err
			}
			return js.Status.Phase == jobstatev1alpha1.PhasePending && es.Status.Version == version, nil
		})
	}
	reported := func(name, want string) {
		t.Helper()
		waitFor(ctx, t, name+" shows WellFormed False", func() (bool, error) {
			es := &jobstatev1alpha1.EventStream{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: bad, Name: name}, es); err != nil {
				return false, err
			}
			c := meta.FindStatusCondition(es.Status.Conditions, jobstatev1alpha1.ConditionWellFormed)
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == jobstatev1alpha1.ReasonMalformedText && c.Message == want, nil
		})
	}

	stop := runManager()
	serving("started-after-the-bad-stream")
	reported("created-bad", "stream created-bad is malformed: head.events line 1 of EventStream created-bad: invalid character ',' looking for beginning of object key string")

	// Broken while the manager runs: a bad line appended by hand.
	live := &jobstatev1alpha1.EventStream{}
	if err := worker.Get(ctx, client.ObjectKey{Namespace: bad, Name: "broken-later"}, live); err != nil {
		t.Fatal(err)
	}
	text, _ := live.Head.Events.Text()
	live.Head.Version = 10
	live.Head.Events = jobstatev1alpha1.EventLog{Malformed: &jobstatev1alpha1.MalformedLog{Text: text + badLine(10)}}
	live.Head.Unstamped = jobstatev1alpha1.Unstamped{From: 11, Base: "forged"}
	if err := worker.Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	serving("while-a-stream-breaks")
	reported("broken-later", "stream broken-later is malformed: head.events line 11 of EventStream broken-later: invalid character ',' looking for beginning of object key string")

	stop()
	stop = runManager()
	defer stop()
	serving("after-a-restart")
}

// waitFor waits up to 30s for done, and fails the test naming what it
// waited for if it does not come.
func waitFor(ctx context.Context, t *testing.T, what string, done func() (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := until(ctx, what, func(context.Context) (bool, error) { return done() }); err != nil {
		t.Fatal(err)
	}
}
