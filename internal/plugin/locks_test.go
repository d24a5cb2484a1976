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

package plugin_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lease"
)

// timestamps are the RFC 3339 times describe prints, which golden files
// cannot hold.
var timestamps = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

// lockedNamespace is a fresh namespace with three Leases: the Lease of the
// JobState "report", held through pkg/lease as pkg/jobstate takes it; the
// Lease of the JobState "done", released; the Lease of the JobState
// "stale", whose holder stopped renewing an hour ago;
// and a leader election's Lease that jobstate did not make.
func lockedNamespace(t *testing.T) string {
	t.Helper()
	ns := env.Namespace(t)
	report := newLeaseJob(t, ns, "report")
	locks, err := lease.New(env.Client, lease.Options{Identity: "worker-1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := locks.Acquire(t.Context(), client.ObjectKey{Namespace: ns, Name: jobstate.LeaseName("report")}, lease.WithOwner(report))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Release(t.Context()) })
	done, err := locks.Acquire(t.Context(), client.ObjectKey{Namespace: ns, Name: jobstate.LeaseName("done")}, lease.WithOwner(newLeaseJob(t, ns, "done")))
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Release(t.Context()); err != nil {
		t.Fatal(err)
	}

	stale := newLeaseJob(t, ns, "stale")
	gvk := jobstatev1alpha1.GroupVersion.WithKind("JobState")
	hourAgo := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	for _, l := range []*coordinationv1.Lease{{
		ObjectMeta: metav1.ObjectMeta{
			Name: jobstate.LeaseName("stale"), Namespace: ns,
			Labels:          map[string]string{lease.OwnerKindLabel: "JobState", lease.OwnerUIDLabel: string(stale.UID)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(stale, gvk)},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To("worker-gone"), LeaseDurationSeconds: ptr.To[int32](15),
			AcquireTime: &hourAgo, RenewTime: &hourAgo, LeaseTransitions: ptr.To[int32](4),
		},
	}, {
		ObjectMeta: metav1.ObjectMeta{Name: "some-controller-leader", Namespace: ns},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("pod-1"), LeaseDurationSeconds: ptr.To[int32](15)},
	}} {
		if err := env.Client.Create(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// realign lines up a normalized table again: an age's width (0s, 60m)
// sets the width of its column, which AGE no longer has.
func realign(table string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	for _, l := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		fmt.Fprintln(tw, strings.Join(columnGap.Split(l, -1), "\t"))
	}
	_ = tw.Flush()
	return normalize(b.String())
}

var columnGap = regexp.MustCompile(` {2,}`)

func newLeaseJob(t *testing.T, ns, name string) *jobstatev1alpha1.JobState {
	t.Helper()
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease},
	}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return js
}

// TestLocks: list and describe show jobstate's Leases — a held one, a
// released one and an expired one — and not a Lease jobstate did not make.
func TestLocks(t *testing.T) {
	ns := lockedNamespace(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"locks_list", []string{"locks", "list", "-n", ns}},
		{"locks_list_wide", []string{"locks", "list", "-n", ns, "-o", "wide"}},
		{"locks_describe_held", []string{"locks", "describe", "-n", ns, "jobstate.report"}},
		{"locks_describe_released", []string{"locks", "describe", "-n", ns, "jobstate.done"}},
		{"locks_describe_expired", []string{"locks", "describe", "-n", ns, "jobstate.stale"}},
		{"locks_describe_foreign", []string{"locks", "describe", "-n", ns, "some-controller-leader"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kubectlJobstate(t, tc.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			got := timestamps.ReplaceAllString(normalize(r.stdout, ns), "TIME")
			if strings.HasPrefix(tc.name, "locks_list") {
				got = realign(got)
			}
			golden(t, tc.name, got)
		})
	}

	t.Run("name", func(t *testing.T) {
		r := kubectlJobstate(t, "locks", "list", "-n", ns, "-o", "name")
		want := "lease.coordination.k8s.io/jobstate.done\nlease.coordination.k8s.io/jobstate.report\nlease.coordination.k8s.io/jobstate.stale\n"
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit %d, stdout %q, want %q; stderr %q", r.code, r.stdout, want, r.stderr)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := kubectlJobstate(t, "locks", "list", "-n", ns, "-o", "json")
		var list struct {
			Kind  string
			Items []coordinationv1.Lease
		}
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if list.Kind != "List" || len(list.Items) != 3 || list.Items[1].Kind != "Lease" || *list.Items[1].Spec.HolderIdentity != "worker-1" {
			t.Fatalf("want a List of the 3 jobstate Leases, report's held by worker-1:\n%s", r.stdout)
		}
		r = kubectlJobstate(t, "locks", "describe", "-n", ns, "jobstate.stale", "-o", "yaml")
		if r.code != 0 || !strings.Contains(r.stdout, "kind: Lease\n") || !strings.Contains(r.stdout, "holderIdentity: worker-gone\n") {
			t.Fatalf("describe -o yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("all namespaces", func(t *testing.T) {
		r := kubectlJobstate(t, "locks", "list", "-A")
		if r.code != 0 || !strings.Contains(r.stdout, "NAMESPACE") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, ns+" ") && strings.Contains(l, "some-controller-leader") {
				t.Fatalf("listed a Lease jobstate did not make:\n%s", r.stdout)
			}
		}
		if !regexp.MustCompile(`(?m)^` + ns + ` +jobstate\.report +worker-1 +1 `).MatchString(r.stdout) {
			t.Fatalf("no row for %s/jobstate.report:\n%s", ns, r.stdout)
		}
	})

	t.Run("selector", func(t *testing.T) {
		r := kubectlJobstate(t, "locks", "list", "-n", ns, "-l", lease.OwnerUIDLabel+"!="+"none", "-o", "name")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 4 {
			t.Fatalf("-l selecting every Lease: exit %d, want 4 names:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestLocksErrors: bad usage exits 2 and prints nothing on stdout; a
// missing lock exits 1 saying where to look.
func TestLocksErrors(t *testing.T) {
	ns := env.Namespace(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"locks", "describe", "-n", ns}, 2, "kubectl jobstate locks describe takes one argument, the Lease's name, got 0"},
		{[]string{"locks", "list", "-n", ns, "-o", "bogus"}, 2, "-o bogus"},
		{[]string{"locks", "list", "-n", ns, "-l", "a in ("}, 2, `-l "a in ("`},
		{[]string{"locks", "list", "extra"}, 2, "unknown command"},
		{[]string{"locks", "describe", "-n", ns, "nope"}, 1, "lock nope not found in namespace " + ns + ": see the locks there with kubectl jobstate locks list -n " + ns},
		{[]string{"locks", "list", "-n", ns}, 0, "No resources found."},
	} {
		r := kubectlJobstate(t, tc.args...)
		if r.code != tc.code || r.stdout != "" || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want it to contain %q)", tc.args, r.code, tc.code, r.stdout, r.stderr, tc.stderr)
		}
	}
}
