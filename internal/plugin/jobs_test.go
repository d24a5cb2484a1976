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
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/plugin"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

// agesAndPadding are ages with the spaces that pad them in a column.
var agesAndPadding = regexp.MustCompile(`\b\d+(s|m\d*s?|h\d*m?|d\d*h?)\b( *)`)

// normalizeJobs is normalize, keeping the width of the columns ages are
// in: a 2-digit age pads less than a 1-digit one, and AGE is one width.
func normalizeJobs(out string, namespaces ...string) string {
	out = agesAndPadding.ReplaceAllStringFunc(out, func(age string) string {
		padding := len(age) - len(strings.TrimRight(age, " "))
		return "AGE" + strings.Repeat(" ", max(len(age)-3, min(padding, 1)))
	})
	return normalize(out, namespaces...)
}

// newJob creates the JobState ns/name with spec and, unless uninitialized,
// gives it its first phase (Pending) as the controller would, through
// pkg/jobstate (no controller runs in this package's tests).
func newJob(t *testing.T, ns, name string, spec jobstatev1alpha1.JobStateSpec, initialize bool) client.ObjectKey {
	t.Helper()
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(js)
	if initialize {
		_, err := worker(t, "controller").Update(t.Context(), key, func(js *jobstatev1alpha1.JobState) error {
			return lifecycle.DoInitialize(js, time.Now())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return key
}

// worker is a pkg/jobstate Client acting as identity.
func worker(t *testing.T, identity string) *jobstate.Client {
	t.Helper()
	c, err := jobstate.New(env.Client, jobstate.Options{Identity: identity})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claimed is newJob, claimed by identity.
func claimed(t *testing.T, ns, name, identity string, spec jobstatev1alpha1.JobStateSpec) (client.ObjectKey, jobstate.Attempt) {
	t.Helper()
	key := newJob(t, ns, name, spec, true)
	a, err := worker(t, identity).Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return key, a
}

func getJob(t *testing.T, key client.ObjectKey) *jobstatev1alpha1.JobState {
	t.Helper()
	js := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, js); err != nil {
		t.Fatal(err)
	}
	return js
}

func data(t *testing.T, js *jobstatev1alpha1.JobState) map[string]any {
	t.Helper()
	d, err := jobstate.Data(js)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// jobsInPhases makes a JobState in every phase in ns (and one the
// controller has not initialized).
func jobsInPhases(t *testing.T, ns string) {
	t.Helper()
	ctx := t.Context()
	newJob(t, ns, "fresh", jobstatev1alpha1.JobStateSpec{}, false)
	newJob(t, ns, "pending", jobstatev1alpha1.JobStateSpec{}, true)
	_, a := claimed(t, ns, "running", "worker-1", jobstatev1alpha1.JobStateSpec{ActiveDeadlineSeconds: ptr.To[int64](3600)})
	if err := worker(t, "worker-1").Heartbeat(ctx, a, 40, map[string]any{"cursor": "page-4"}); err != nil {
		t.Fatal(err)
	}
	_, a = claimed(t, ns, "succeeded", "worker-2", jobstatev1alpha1.JobStateSpec{})
	if err := worker(t, "worker-2").Succeed(ctx, a, "imported 4 pages"); err != nil {
		t.Fatal(err)
	}
	_, a = claimed(t, ns, "failed", "worker-3", jobstatev1alpha1.JobStateSpec{BackoffLimit: ptr.To[int32](0)})
	if err := worker(t, "worker-3").Fail(ctx, a, "disk full"); err != nil {
		t.Fatal(err)
	}
	_, a = claimed(t, ns, "retrying", "worker-4", jobstatev1alpha1.JobStateSpec{})
	if err := worker(t, "worker-4").Fail(ctx, a, "connection reset"); err != nil {
		t.Fatal(err)
	}
	key := newJob(t, ns, "cancelled", jobstatev1alpha1.JobStateSpec{}, true)
	if err := worker(t, "operator").Cancel(ctx, key, ""); err != nil {
		t.Fatal(err)
	}
}

// TestJobsGet: the table of a namespace's JobStates, in every phase, as
// table, wide and name; one JobState; a missing one.
func TestJobsGet(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	jobsInPhases(t, ns)
	golden(t, "jobs_get", normalizeJobs(mustRun(t, 0, "jobs", "get", "-n", ns).stdout, ns))
	golden(t, "jobs_get_wide", normalizeJobs(mustRun(t, 0, "jobs", "get", "-n", ns, "-o", "wide").stdout, ns))
	golden(t, "jobs_get_name", normalizeJobs(mustRun(t, 0, "jobs", "get", "-n", ns, "-o", "name").stdout, ns))
	golden(t, "jobs_get_one", normalizeJobs(mustRun(t, 0, "jobs", "get", "-n", ns, "running").stdout, ns))

	r := mustRun(t, 0, "jobs", "get", "-n", ns, "running", "-o", "jsonpath={.status.holder}")
	if r.stdout != "worker-1" {
		t.Errorf("-o jsonpath: %q, want worker-1", r.stdout)
	}
	r = mustRun(t, 0, "jobs", "get", "-n", ns, "running", "-o", "json")
	var js jobstatev1alpha1.JobState
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || js.Kind != "JobState" || js.Status.Progress != 40 {
		t.Errorf("-o json: kind %q, progress %d, err %v\n%s", js.Kind, js.Status.Progress, err, r.stdout)
	}
	r = mustRun(t, 0, "jobs", "get", "-A")
	if !strings.Contains(r.stdout, ns) || !strings.HasPrefix(r.stdout, "NAMESPACE") {
		t.Errorf("-A lists no namespace column or not %s:\n%s", ns, r.stdout)
	}
	r = mustRun(t, 1, "jobs", "get", "-n", ns, "missing")
	if want := "jobstate missing not found in namespace " + ns; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want it to say %q", r.stderr, want)
	}
	r = mustRun(t, 0, "jobs", "get", "-n", env.Namespace(t))
	if r.stdout != "" || !strings.Contains(r.stderr, "No resources found") {
		t.Errorf("empty namespace: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// TestJobsDescribe: a running job under a Lease, with an Event, and an
// event-sourced job with rejected events.
func TestJobsDescribe(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := env.Namespace(t)
	key, a := claimed(t, ns, "nightly-import", "worker-1", jobstatev1alpha1.JobStateSpec{
		LockPolicy:            jobstatev1alpha1.LockPolicyLease,
		ActiveDeadlineSeconds: ptr.To[int64](3600),
	})
	if err := worker(t, "worker-1").Heartbeat(ctx, a, 40, map[string]any{"cursor": "page-4"}); err != nil {
		t.Fatal(err)
	}
	js := getJob(t, key)
	event := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly-import.claimed"},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: jobstatev1alpha1.GroupVersion.String(), Kind: "JobState", Namespace: ns, Name: js.Name, UID: js.UID,
		},
		Type: corev1.EventTypeNormal, Reason: jobstatev1alpha1.ReasonClaimed, Message: "Attempt 1 claimed by worker-1",
		Source: corev1.EventSource{Component: "jobstate-controller"}, LastTimestamp: metav1.Now(), Count: 1,
	}
	if err := env.Client.Create(ctx, event); err != nil {
		t.Fatal(err)
	}
	golden(t, "jobs_describe", normalizeJobs(mustRun(t, 0, "jobs", "describe", "-n", ns, "nightly-import").stdout, ns))

	key = newJob(t, ns, "sourced", jobstatev1alpha1.JobStateSpec{EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "sourced-events"}}, true)
	js = getJob(t, key)
	js.Status.Projection = &jobstatev1alpha1.ProjectionStatus{
		Position:      ptr.To[int64](3),
		RejectedCount: 1,
		Rejected: []jobstatev1alpha1.RejectedEvent{{
			Position: 2, Type: jobstate.EventSucceeded, Reason: jobstate.RejectedIllegalTransition, Message: "Succeed is not allowed from phase Pending",
		}},
	}
	if err := env.Client.Status().Update(ctx, js); err != nil {
		t.Fatal(err)
	}
	golden(t, "jobs_describe_sourced", normalizeJobs(mustRun(t, 0, "jobs", "describe", "-n", ns, "sourced").stdout, ns))

	r := mustRun(t, 1, "jobs", "describe", "-n", ns, "missing")
	if want := "jobstate missing not found in namespace " + ns; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want it to say %q", r.stderr, want)
	}
}

// TestJobsClaimHeartbeatSucceed drives a job through its life by hand.
func TestJobsClaimHeartbeatSucceed(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key := newJob(t, ns, "by-hand", jobstatev1alpha1.JobStateSpec{}, true)

	r := mustRun(t, 0, "jobs", "claim", "-n", ns, "by-hand")
	if !strings.Contains(r.stdout, "Claimed attempt 1 of jobstate by-hand as kubectl: heartbeat within 1m0s") {
		t.Errorf("claim printed %q", r.stdout)
	}
	if s := getJob(t, key).Status; s.Phase != jobstatev1alpha1.PhaseRunning || s.Attempt != 1 || s.Holder != "kubectl" {
		t.Fatalf("after claim: %s attempt %d holder %q", s.Phase, s.Attempt, s.Holder)
	}
	mustRun(t, 0, "jobs", "heartbeat", "-n", ns, "by-hand", "--progress", "50", "--set", "data.cursor=page-2")
	js := getJob(t, key)
	if s := js.Status; s.Progress != 50 || data(t, js)["cursor"] != "page-2" {
		t.Fatalf("after heartbeat: progress %d, data %v", s.Progress, data(t, js))
	}
	// Without --progress a heartbeat keeps the progress.
	mustRun(t, 0, "jobs", "heartbeat", "-n", ns, "by-hand")
	if p := getJob(t, key).Status.Progress; p != 50 {
		t.Fatalf("heartbeat without --progress: progress %d, want 50", p)
	}
	r = mustRun(t, 0, "jobs", "succeed", "-n", ns, "by-hand", "--message", "done by hand")
	if r.stderr != "" {
		t.Errorf("succeed warned: %s", r.stderr)
	}
	if !strings.Contains(r.stdout, "jobstate by-hand is Succeeded: attempt 1, holder kubectl, progress 100%") {
		t.Errorf("succeed printed %q", r.stdout)
	}
	s := getJob(t, key).Status
	if s.Phase != jobstatev1alpha1.PhaseSucceeded || s.Attempt != 1 || s.Progress != 100 || s.Message != "done by hand" || s.CompletionTime == nil {
		t.Fatalf("after succeed: %+v", s)
	}
	// The transitions made by hand are in the job's Events.
	r = mustRun(t, 0, "jobs", "describe", "-n", ns, "by-hand")
	for _, want := range []string{
		"Normal  Claimed    AGE  jobstate.dev/kubectl-jobstate  Attempt 1 claimed by kubectl",
		"Normal  Succeeded  AGE  jobstate.dev/kubectl-jobstate  done by hand (by kubectl)",
	} {
		if !strings.Contains(normalizeJobs(r.stdout), want) {
			t.Errorf("describe does not show the Event %q:\n%s", want, r.stdout)
		}
	}
}

// TestJobsFailForHolder: fail acts for the current holder by default, and
// the job goes back to Pending for a retry.
func TestJobsFailForHolder(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key, _ := claimed(t, ns, "stuck", "worker-9", jobstatev1alpha1.JobStateSpec{})
	mustRun(t, 0, "jobs", "fail", "-n", ns, "stuck", "--message", "node lost")
	s := getJob(t, key).Status
	if s.Phase != jobstatev1alpha1.PhasePending || s.Reason != jobstatev1alpha1.ReasonWorkerFailed || s.RetryAfter == nil || !strings.Contains(s.Message, "node lost") {
		t.Fatalf("after fail: %+v", s)
	}
	// Claiming during the backoff is refused, saying when to try again.
	r := mustRun(t, 4, "jobs", "claim", "-n", ns, "stuck")
	if !strings.Contains(r.stderr, "backing off after attempt 1") {
		t.Errorf("claim while backing off: %q", r.stderr)
	}
}

// TestJobsFenced: a heartbeat as another holder is refused with exit 4,
// says whose attempt it is, and writes nothing.
func TestJobsFenced(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key := newJob(t, ns, "contended", jobstatev1alpha1.JobStateSpec{}, true)
	mustRun(t, 0, "jobs", "claim", "-n", ns, "contended", "--identity", "A")
	before := getJob(t, key)
	r := mustRun(t, 4, "jobs", "heartbeat", "-n", ns, "contended", "--identity", "B", "--attempt", "1", "--progress", "10")
	for _, want := range []string{"heartbeat refused", "jobstate contended is Running: attempt 1, holder A", "--identity A --attempt 1"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	// A stale attempt of the right holder is fenced too.
	mustRun(t, 4, "jobs", "succeed", "-n", ns, "contended", "--identity", "A", "--attempt", "2")
	if after := getJob(t, key); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a fenced write changed the JobState: resourceVersion %s → %s\n%+v", before.ResourceVersion, after.ResourceVersion, after.Status)
	}
	// Claiming a running job is an illegal transition.
	r = mustRun(t, 4, "jobs", "claim", "-n", ns, "contended")
	if !strings.Contains(r.stderr, "Attempt 1 is held by A") {
		t.Errorf("claim of a running job: %q", r.stderr)
	}
}

// TestJobsIllegalTransition: succeeding a Pending job is refused with exit
// 4 and writes nothing.
func TestJobsIllegalTransition(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key := newJob(t, ns, "waiting", jobstatev1alpha1.JobStateSpec{}, true)
	before := getJob(t, key)
	r := mustRun(t, 4, "jobs", "succeed", "-n", ns, "waiting")
	for _, want := range []string{"succeed refused", "jobstate waiting is Pending", "claim one first"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	if after := getJob(t, key); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a refused write changed the JobState: resourceVersion %s → %s", before.ResourceVersion, after.ResourceVersion)
	}
}

// TestJobsBadFlags: bad flags and arguments are usage errors (exit 2) and
// write nothing.
func TestJobsBadFlags(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key, _ := claimed(t, ns, "busy", "worker-1", jobstatev1alpha1.JobStateSpec{})
	before := getJob(t, key)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"heartbeat", "busy", "--progress", "150"}, "--progress 150"},
		{[]string{"heartbeat", "busy", "--progress", "-1"}, "--progress -1"},
		{[]string{"heartbeat", "busy", "--attempt", "0"}, "--attempt 0"},
		{[]string{"heartbeat", "busy", "--identity", ""}, "--identity must not be empty"},
		{[]string{"heartbeat", "busy", "--set", "data.cursor"}, "has no '='"},
		{[]string{"update", "busy", "--set", "cursor=1"}, "only status.data can be set"},
		{[]string{"update", "busy", "--set", "data.a.b=1"}, "without dots"},
		{[]string{"update", "busy"}, "needs at least one --set"},
		{[]string{"succeed", "busy", "extra"}, "takes one argument"},
		{[]string{"fail", "busy", "--progress", "5"}, "unknown flag"},
		{[]string{"get", "busy", "-o", "bogus"}, "-o bogus"},
		{[]string{"get", "a", "b"}, "at most one argument"},
		{[]string{"get", "busy", "-A"}, "cannot be used with a name"},
		{[]string{"heartbeat", "busy", "-A"}, "-A cannot be used"},
	} {
		r := kubectlJobstate(t, append(append([]string{"jobs"}, tc.args...), "-n", ns)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("jobs %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
	if after := getJob(t, key); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a usage error changed the JobState: resourceVersion %s → %s", before.ResourceVersion, after.ResourceVersion)
	}
}

// TestJobsUpdate: --set values are JSON if they parse, else strings; null
// removes a key; other keys and the phase are kept.
func TestJobsUpdate(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key, a := claimed(t, ns, "import", "worker-1", jobstatev1alpha1.JobStateSpec{})
	if err := worker(t, "worker-1").Heartbeat(t.Context(), a, 10, map[string]any{"kept": true, "gone": 1}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 0, "jobs", "update", "-n", ns, "import",
		"--set", "data.cursor=page-9", "--set", "data.batch=50", "--set", `data.opts={"dry":false}`,
		"--set", `data.quoted="42"`, "--set", "data.gone=null")
	js := getJob(t, key)
	got, _ := json.Marshal(data(t, js))
	if want := `{"batch":50,"cursor":"page-9","kept":true,"opts":{"dry":false},"quoted":"42"}`; string(got) != want {
		t.Errorf("status.data = %s, want %s", got, want)
	}
	if s := js.Status; s.Phase != jobstatev1alpha1.PhaseRunning || s.Holder != "worker-1" || s.Progress != 10 {
		t.Errorf("update changed more than data: %s %q %d", s.Phase, s.Holder, s.Progress)
	}
}

// TestJobsCancel: cancel sets spec.cancel and finishes the job; a second
// cancel is refused.
func TestJobsCancel(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key, _ := claimed(t, ns, "obsolete", "worker-1", jobstatev1alpha1.JobStateSpec{})
	mustRun(t, 0, "jobs", "cancel", "-n", ns, "obsolete", "--message", "superseded")
	js := getJob(t, key)
	if !js.Spec.Cancel || js.Status.Phase != jobstatev1alpha1.PhaseCancelled || js.Status.Message != "superseded" {
		t.Fatalf("after cancel: spec.cancel %t, %s %q", js.Spec.Cancel, js.Status.Phase, js.Status.Message)
	}
	r := mustRun(t, 4, "jobs", "cancel", "-n", ns, "obsolete")
	if !strings.Contains(r.stderr, "It has finished") {
		t.Errorf("second cancel: %q", r.stderr)
	}
}

// TestJobsEventSourced: writes to an event-sourced job are refused (exit
// 4), pointing at the stream, and write nothing.
func TestJobsEventSourced(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key := newJob(t, ns, "sourced", jobstatev1alpha1.JobStateSpec{EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "sourced-events"}}, true)
	before := getJob(t, key)
	for _, args := range [][]string{{"claim", "sourced"}, {"cancel", "sourced"}, {"update", "sourced", "--set", "data.a=1"}} {
		r := mustRun(t, 4, append(append([]string{"jobs"}, args...), "-n", ns)...)
		if !strings.Contains(r.stderr, "is event-sourced") || !strings.Contains(r.stderr, "streams append sourced-events") {
			t.Errorf("jobs %s: %q", strings.Join(args, " "), r.stderr)
		}
	}
	if after := getJob(t, key); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a refused write changed the JobState: resourceVersion %s → %s", before.ResourceVersion, after.ResourceVersion)
	}
}

// TestJobsLease: the plugin writes a JobState with lockPolicy Lease under
// its Lease, like a worker, and describe shows the Lease.
func TestJobsLease(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	key := newJob(t, ns, "locked", jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease}, true)
	before := getJob(t, key).Status.LockToken
	mustRun(t, 0, "jobs", "claim", "-n", ns, "locked", "--identity", "alice")
	mustRun(t, 0, "jobs", "heartbeat", "-n", ns, "locked", "--progress", "30")
	js := getJob(t, key)
	if s := js.Status; s.Phase != jobstatev1alpha1.PhaseRunning || s.Holder != "alice" || s.Progress != 30 || s.LockToken <= before {
		t.Fatalf("after claim and heartbeat: %s %q %d%%, lockToken %d (was %d)", s.Phase, s.Holder, s.Progress, s.LockToken, before)
	}
	r := mustRun(t, 0, "jobs", "describe", "-n", ns, "locked")
	if !strings.Contains(r.stdout, "Lease:       jobstate.locked") || !strings.Contains(r.stdout, "Expired:   released") {
		t.Errorf("describe does not show the released Lease:\n%s", r.stdout)
	}
}

// TestPrintJobsIsJobsGet: PrintJobs (make run's table) prints what `jobs
// get` prints, -o wide included.
func TestPrintJobsIsJobsGet(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	jobsInPhases(t, ns)
	var list jobstatev1alpha1.JobStateList
	if err := env.Client.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, wide := range []bool{false, true} {
		args := []string{"jobs", "get", "-n", ns}
		if wide {
			args = append(args, "-o", "wide")
		}
		want := mustRun(t, 0, args...).stdout
		var got strings.Builder
		if err := plugin.PrintJobs(&got, list.Items, time.Now(), plugin.TableOptions{Wide: wide}); err != nil {
			t.Fatal(err)
		}
		if normalizeJobs(got.String(), ns) != normalizeJobs(want, ns) {
			t.Errorf("wide %v: PrintJobs printed\n%s\nkubectl jobstate %s printed\n%s", wide, got.String(), strings.Join(args, " "), want)
		}
	}
}
