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
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// permission is one verb on one resource of one of the manager's roles.
type permission struct {
	role     client.ObjectKey // a ClusterRole if Namespace is ""
	group    string
	resource string
	verb     string
}

func (p permission) String() string {
	where := "ClusterRole " + p.role.Name
	if p.role.Namespace != "" {
		where = "Role " + p.role.String()
	}
	return fmt.Sprintf("%s: %s %s.%s", where, p.verb, p.resource, p.group)
}

func (p permission) id() string { return p.verb + " " + p.resource + "." + p.group }

// unexercised are the permissions the manager holds that no workload can
// make it use on demand, and why it holds them anyway. The test checks
// that the workload indeed completes without them.
var unexercised = map[string]string{
	// client-go's recorders turn an Event repeated on the same object at
	// the same resourceVersion into a series, a PATCH; the manager emits
	// its Events after writes (a new resourceVersion), so only a retried
	// reconcile of an unchanged object repeats one. Without patch that
	// retry logs a refusal and the Event's count stays 1.
	"patch events.events.k8s.io": "an Event repeated on an unchanged object becomes a series, a patch",
	"patch events.":              "the leader-election Event, repeated, becomes a series, a patch",
}

// managerRoles are the roles config/default binds to the manager's
// ServiceAccount.
var managerRoles = []client.ObjectKey{
	{Name: "jobstate-manager-role"},
	{Namespace: systemNamespace, Name: "jobstate-leader-election-role"},
	{Name: "jobstate-metrics-auth-role"},
}

// TestManagerLeastPrivilege: the manager, running as its ServiceAccount with
// the roles config/default binds to it, does everything it does (a
// workload that takes every path that calls the API server: see
// managerWorkload) — and with any single verb on any single resource
// dropped from any of those roles, it is refused something and the
// workload does not complete. Every permission the manager holds is
// needed; the log names what each one is for.
func TestManagerLeastPrivilege(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	dir := t.TempDir()
	kubeconfig := managerKubeConfig(ctx, t, dir)
	manager := build(t, testenv.RepoRoot(), dir, "./cmd/manager")
	scraper := metricsScraper(ctx, t, dir)

	began := time.Now()
	if run := runManagerWorkload(ctx, t, time.Minute, manager, kubeconfig, scraper); run.err != nil || run.refused != "" {
		t.Fatalf("with the shipped roles: refused %q, workload: %v\nmanager output:\n%s", run.refused, run.err, run.output)
	}
	baseline := time.Since(began)
	t.Logf("with the shipped roles, the workload ran in %s", baseline.Round(time.Millisecond))
	// A run without a permission the workload needs ends at the manager's
	// first refusal, or else at this timeout: several times the baseline
	// (4.8s on a quiet machine), so a loaded one does not pass for broken.
	timeout := max(20*time.Second, 4*baseline)
	for _, p := range managerPermissions(ctx, t) {
		restore := drop(ctx, t, p)
		run := runManagerWorkload(ctx, t, timeout, manager, kubeconfig, scraper)
		restore()
		switch {
		case run.err == nil && unexercised[p.id()] != "":
			t.Logf("%s: kept, though the workload completed without it: %s", p, unexercised[p.id()])
		case run.err == nil:
			t.Errorf("%s: not needed (the workload completed without it): delete it", p)
		case unexercised[p.id()] != "":
			t.Errorf("%s: needed (%v, refused %q): take it out of unexercised", p, run.err, run.refused)
		case run.refused != "":
			t.Logf("%s: needed; the manager was refused: %s", p, run.refused)
		default:
			t.Logf("%s: needed; the workload failed: %v", p, run.err)
		}
	}
}

// managerPermissions lists every (resource, verb) of the manager's roles as
// installed.
func managerPermissions(ctx context.Context, t *testing.T) []permission {
	t.Helper()
	var perms []permission
	for _, key := range managerRoles {
		for _, rule := range roleRules(ctx, t, key) {
			if len(rule.NonResourceURLs) > 0 || len(rule.ResourceNames) > 0 || len(rule.APIGroups) != 1 {
				t.Fatalf("%s: rule %+v: the test handles one API group and no resourceNames or URLs", key, rule)
			}
			for _, resource := range rule.Resources {
				for _, verb := range rule.Verbs {
					perms = append(perms, permission{role: key, group: rule.APIGroups[0], resource: resource, verb: verb})
				}
			}
		}
	}
	return perms
}

func roleObject(key client.ObjectKey) client.Object {
	if key.Namespace == "" {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: key.Name}}
	}
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
}

func roleRules(ctx context.Context, t *testing.T, key client.ObjectKey) []rbacv1.PolicyRule {
	t.Helper()
	obj := roleObject(key)
	get(ctx, t, key, obj)
	return rulesOf(obj)
}

func rulesOf(obj client.Object) []rbacv1.PolicyRule {
	if r, ok := obj.(*rbacv1.ClusterRole); ok {
		return r.Rules
	}
	return obj.(*rbacv1.Role).Rules
}

func setRules(obj client.Object, rules []rbacv1.PolicyRule) {
	if r, ok := obj.(*rbacv1.ClusterRole); ok {
		r.Rules = rules
		return
	}
	obj.(*rbacv1.Role).Rules = rules
}

// drop removes p from its role, waits until the manager's ServiceAccount
// is denied it (unless another role grants it too), and returns a func
// that puts the role back as it was.
func drop(ctx context.Context, t *testing.T, p permission) (restore func()) {
	t.Helper()
	obj := roleObject(p.role)
	get(ctx, t, p.role, obj)
	original := slices.Clone(rulesOf(obj))
	var rules []rbacv1.PolicyRule
	for _, rule := range original {
		if !slices.Contains(rule.Resources, p.resource) || !slices.Contains(rule.Verbs, p.verb) || rule.APIGroups[0] != p.group {
			rules = append(rules, rule)
			continue
		}
		// Split the rule: p's resource keeps the other verbs, the other
		// resources keep them all.
		if others := slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool { return r == p.resource }); len(others) > 0 {
			rules = append(rules, rbacv1.PolicyRule{APIGroups: rule.APIGroups, Resources: others, Verbs: rule.Verbs})
		}
		if verbs := slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v == p.verb }); len(verbs) > 0 {
			rules = append(rules, rbacv1.PolicyRule{APIGroups: rule.APIGroups, Resources: []string{p.resource}, Verbs: verbs})
		}
	}
	setRules(obj, rules)
	if err := env.Client.Update(ctx, obj); err != nil {
		t.Fatalf("dropping %s: %v", p, err)
	}
	waitAllowed(ctx, t, p, false)
	return func() {
		obj := roleObject(p.role)
		get(ctx, t, p.role, obj)
		setRules(obj, original)
		if err := env.Client.Update(ctx, obj); err != nil {
			t.Fatalf("restoring %s: %v", p.role, err)
		}
		waitAllowed(ctx, t, p, true)
	}
}

// waitAllowed waits until a SubjectAccessReview for the manager's
// ServiceAccount doing p says want; for a dropped permission another role
// still grants, it gives up after a second (the run then shows whether the
// manager misses it).
func waitAllowed(ctx context.Context, t *testing.T, p permission, want bool) {
	t.Helper()
	timeout := 10 * time.Second
	if !want {
		timeout = time.Second
	}
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   testenv.SealerUser,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: p.role.Namespace, Verb: p.verb, Group: p.group, Resource: strings.Split(p.resource, "/")[0],
				Subresource: subresource(p.resource),
			},
		}}
		if err := env.Client.Create(ctx, sar); err != nil {
			return false, err
		}
		return sar.Status.Allowed == want, nil
	})
}

func subresource(resource string) string {
	if _, sub, ok := strings.Cut(resource, "/"); ok {
		return sub
	}
	return ""
}

// forbidden matches the API server's refusal of a request, as client-go
// and controller-runtime log it.
var forbidden = regexp.MustCompile(`\S+ (?:\\?"[^"\\]*\\?" )?is forbidden: User \\?"system:serviceaccount:[^"\\]+\\?" cannot [a-z]+ resource \\?"[^"\\]+\\?"[^"\\]*`)

// workloadRun is how a run of managerWorkload went: the first refusal the
// manager logged (the run stops there), the workload's error, and the
// manager's output.
type workloadRun struct {
	refused string
	err     error
	output  string
}

// runManagerWorkload starts the manager as its ServiceAccount (leader
// elected, metrics served securely on loopback), runs managerWorkload in a
// new namespace for up to timeout, and stops the manager.
func runManagerWorkload(ctx context.Context, t *testing.T, timeout time.Duration, manager, kubeconfig string, scraper *scraper) (run workloadRun) {
	return runManagerWorkloadThen(ctx, t, timeout, manager, kubeconfig, scraper, nil)
}

// runManagerWorkloadThen is runManagerWorkload, calling then with the
// manager's metrics URL after a workload that completed, before it stops
// the manager.
func runManagerWorkloadThen(ctx context.Context, t *testing.T, timeout time.Duration, manager, kubeconfig string, scraper *scraper, then func(ctx context.Context, url string)) (run workloadRun) {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the workload did not complete in %s", timeout.Round(time.Second)))
	defer cancel()
	ns := env.Namespace(t)
	addr := freeAddr(t)
	p := launch(t, []string{watchListOff}, manager, "--kubeconfig", kubeconfig, "--leader-elect", "--leader-election-namespace", systemNamespace,
		"--metrics-bind-address", addr, "--health-probe-bind-address=0")
	defer p.stop()
	// Stop the workload at the manager's first refusal.
	go func() {
		for ctx.Err() == nil {
			if m := forbidden.FindString(p.Output()); m != "" {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	run.err = managerWorkload(ctx, t, ns, "https://"+addr, scraper)
	if run.err == nil && then != nil {
		then(ctx, "https://"+addr)
	}
	run.output = p.Output()
	if m := forbidden.FindString(run.output); m != "" {
		run.refused = strings.ReplaceAll(m, `\"`, `"`)
	}
	return run
}

// watchListOff makes client-go's informers LIST and then WATCH, as they
// do against an API server without streaming lists, instead of only
// WATCH: the manager's roles must work either way.
const watchListOff = "KUBE_FEATURE_WatchListClient=false"

// managerWorkload makes the manager take every path on which it calls the
// API server, in namespace ns, and waits for each result:
//   - a new JobState is initialized (status write, Event);
//   - a lockPolicy Lease one is initialized under its Lease (the Lease
//     created, owned by the JobState, and released); another waits for
//     its Lease, held by someone else, and takes it when it is released;
//   - a claimed job whose holder stops heartbeating is taken back;
//   - spec.cancel cancels a job;
//   - a finished job with ttlSecondsAfterFinished 0 is deleted;
//   - an event-sourced job is cancelled through its stream (the manager
//     appends, creating the stream) and projected;
//   - a stream appended past its head's size is sealed into segments, and
//     a JobState created on it afterwards projects it from the segments;
//   - another's retention deletes its oldest segments;
//   - a malformed stream is reported with a Warning;
//   - the leader-election Lease is held, and the metrics endpoint
//     authenticates and authorizes a scraper.
func managerWorkload(ctx context.Context, t *testing.T, ns, metricsURL string, s *scraper) error {
	t.Helper()
	admin := env.AdminAs(t, "workload")
	jobs, err := jobstate.New(admin, jobstate.Options{Identity: "workload"})
	if err != nil {
		return err
	}
	streams, err := stream.New(admin, stream.Options{})
	if err != nil {
		return err
	}
	locks, err := lease.New(admin, lease.Options{Identity: "workload"})
	if err != nil {
		return err
	}
	w := &workload{ns: ns, c: admin, jobs: jobs, streams: streams}
	held, err := locks.Acquire(ctx, w.key(jobstate.LeaseName("contended")))
	if err != nil {
		return err
	}
	return errors.Join(
		w.fillStream(ctx, "history", nil),
		w.create(ctx, "plain", jobstatev1alpha1.JobStateSpec{}),
		w.create(ctx, "locked", jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease}),
		w.create(ctx, "contended", jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease}),
		w.create(ctx, "lost", jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](1)}),
		w.create(ctx, "cancelled", jobstatev1alpha1.JobStateSpec{}),
		w.create(ctx, "ttl", jobstatev1alpha1.JobStateSpec{TTLSecondsAfterFinished: ptr.To[int32](0)}),
		w.create(ctx, "sourced", jobstatev1alpha1.JobStateSpec{EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "sourced-events"}}),
		w.createMalformed(ctx, "malformed"),
		w.fillStream(ctx, "trimmed", &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](10)}),
		w.waitPhase(ctx, "plain", jobstatev1alpha1.PhasePending),
		w.waitEvent(ctx, "plain", jobstatev1alpha1.ReasonCreated, 1),
		w.waitPhase(ctx, "locked", jobstatev1alpha1.PhasePending),
		w.waitReleased(ctx, "locked"),
		held.Release(ctx),
		w.waitPhase(ctx, "contended", jobstatev1alpha1.PhasePending),
		w.waitReleased(ctx, "contended"),
		w.claimAndAbandon(ctx, "lost"),
		w.cancel(ctx, "cancelled", jobstatev1alpha1.PhaseCancelled),
		w.succeedAndWaitDeleted(ctx, "ttl"),
		w.cancel(ctx, "sourced", jobstatev1alpha1.PhaseCancelled),
		w.waitSealed(ctx, "history"),
		w.create(ctx, "replayed", jobstatev1alpha1.JobStateSpec{EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "history"}}),
		w.waitProjected(ctx, "replayed", 119),
		w.waitTrimmed(ctx, "trimmed"),
		w.waitEvent(ctx, "malformed", jobstatev1alpha1.ReasonMalformedText, 1),
		w.waitLeader(ctx),
		s.scrape(ctx, metricsURL, http.StatusOK),
	)
}

// workload is managerWorkload's state: an admin acting as a worker.
type workload struct {
	ns      string
	c       client.Client
	jobs    *jobstate.Client
	streams *stream.Client
}

func (w *workload) key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: w.ns, Name: name}
}

func (w *workload) create(ctx context.Context, name string, spec jobstatev1alpha1.JobStateSpec) error {
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}, Spec: spec}
	if err := w.c.Create(ctx, js); err != nil {
		return fmt.Errorf("creating JobState %s: %w", name, err)
	}
	return nil
}

// until polls cond every 50ms until it holds or ctx ends; what names the
// wait in the error.
func until(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, cond)
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx) // why the wait ended: a deadline, a refusal
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (w *workload) waitPhase(ctx context.Context, name string, phase jobstatev1alpha1.JobPhase) error {
	return until(ctx, fmt.Sprintf("JobState %s to be %s", name, phase), func(ctx context.Context) (bool, error) {
		js := &jobstatev1alpha1.JobState{}
		if err := w.c.Get(ctx, w.key(name), js); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return js.Status.Phase == phase, nil
	})
}

// waitEvent waits for the manager's Event with reason on the object name
// to have been seen count times.
func (w *workload) waitEvent(ctx context.Context, name, reason string, count int32) error {
	return until(ctx, fmt.Sprintf("a %s Event on %s, %d times", reason, name, count), func(ctx context.Context) (bool, error) {
		counts, err := eventCounts(ctx, w.ns, "")
		return counts[name][reason] >= count, err
	})
}

// eventCounts counts the events.k8s.io Events in ns that controller
// reported (any controller if ""), by the name of the object they regard
// and their reason; an Event series counts as its count.
func eventCounts(ctx context.Context, ns, controller string) (map[string]map[string]int32, error) {
	var list eventsv1.EventList
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	counts := map[string]map[string]int32{}
	for _, e := range list.Items {
		if controller != "" && e.ReportingController != controller {
			continue
		}
		if counts[e.Regarding.Name] == nil {
			counts[e.Regarding.Name] = map[string]int32{}
		}
		n := int32(1)
		if e.Series != nil {
			n = e.Series.Count
		}
		counts[e.Regarding.Name][e.Reason] += n
	}
	return counts, nil
}

// waitReleased waits for the Lease of JobState name to have no holder.
func (w *workload) waitReleased(ctx context.Context, name string) error {
	return until(ctx, "the Lease of "+name+" to be released", func(ctx context.Context) (bool, error) {
		l := &coordinationv1.Lease{}
		if err := w.c.Get(ctx, w.key(jobstate.LeaseName(name)), l); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return ptr.Deref(l.Spec.HolderIdentity, "") == "", nil
	})
}

// createMalformed stores stream name with a head that does not decode.
func (w *workload) createMalformed(ctx context.Context, name string) error {
	es := &unstructured.Unstructured{Object: map[string]any{"head": map[string]any{"version": int64(0), "events": badLine(0)}}}
	es.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind("EventStream"))
	es.SetNamespace(w.ns)
	es.SetName(name)
	if err := w.c.Create(ctx, es); err != nil {
		return fmt.Errorf("creating the malformed EventStream %s: %w", name, err)
	}
	return nil
}

// claimAndAbandon claims name and never heartbeats: the manager must take
// it back (HeartbeatTimeout) and record a Warning.
func (w *workload) claimAndAbandon(ctx context.Context, name string) error {
	if err := w.waitPhase(ctx, name, jobstatev1alpha1.PhasePending); err != nil {
		return err
	}
	if _, err := w.jobs.Claim(ctx, w.key(name)); err != nil {
		return fmt.Errorf("claiming %s: %w", name, err)
	}
	return errors.Join(
		until(ctx, name+" to be taken back from its lost holder", func(ctx context.Context) (bool, error) {
			js := &jobstatev1alpha1.JobState{}
			if err := w.c.Get(ctx, w.key(name), js); err != nil {
				return false, err
			}
			return js.Status.Reason == jobstatev1alpha1.ReasonHeartbeatTimeout, nil
		}),
		w.waitEvent(ctx, name, jobstatev1alpha1.ReasonHeartbeatTimeout, 1),
	)
}

// cancel sets spec.cancel on name once it is initialized and waits for
// phase.
func (w *workload) cancel(ctx context.Context, name string, phase jobstatev1alpha1.JobPhase) error {
	if err := until(ctx, name+" to be initialized", func(ctx context.Context) (bool, error) {
		js := &jobstatev1alpha1.JobState{}
		if err := w.c.Get(ctx, w.key(name), js); err != nil {
			return false, err
		}
		return js.Status.Phase != "", nil
	}); err != nil {
		return err
	}
	js := &jobstatev1alpha1.JobState{}
	if err := w.c.Get(ctx, w.key(name), js); err != nil {
		return err
	}
	patch := client.MergeFrom(js.DeepCopy())
	js.Spec.Cancel = true
	if err := w.c.Patch(ctx, js, patch); err != nil {
		return fmt.Errorf("cancelling %s: %w", name, err)
	}
	return w.waitPhase(ctx, name, phase)
}

func (w *workload) succeedAndWaitDeleted(ctx context.Context, name string) error {
	if err := w.waitPhase(ctx, name, jobstatev1alpha1.PhasePending); err != nil {
		return err
	}
	a, err := w.jobs.Claim(ctx, w.key(name))
	if err != nil {
		return fmt.Errorf("claiming %s: %w", name, err)
	}
	if err := w.jobs.Succeed(ctx, a, "done"); err != nil {
		return fmt.Errorf("finishing %s: %w", name, err)
	}
	return until(ctx, name+" to be deleted after its TTL", func(ctx context.Context) (bool, error) {
		err := w.c.Get(ctx, w.key(name), &jobstatev1alpha1.JobState{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}

// fillStream creates stream name with retention and appends 120 events to
// it, 10 at a time: more than a head holds, so the appends wait for the
// manager to seal.
func (w *workload) fillStream(ctx context.Context, name string, retention *jobstatev1alpha1.RetentionPolicy) error {
	es := &jobstatev1alpha1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
		Spec:       jobstatev1alpha1.EventStreamSpec{Retention: retention},
	}
	if err := w.c.Create(ctx, es); err != nil {
		return fmt.Errorf("creating EventStream %s: %w", name, err)
	}
	for range 12 {
		batch := make([]stream.EventData, 10)
		for i := range batch {
			batch[i] = stream.EventData{Type: "Filled", Data: map[string]any{"i": i}}
		}
		if _, err := w.streams.Append(ctx, w.key(name), batch, stream.AppendOptions{}); err != nil {
			return fmt.Errorf("appending to %s: %w", name, err)
		}
	}
	return nil
}

// waitStream waits for cond on the status of stream name.
func (w *workload) waitStream(ctx context.Context, name, what string, cond func(jobstatev1alpha1.EventStreamStatus) bool) error {
	return until(ctx, "EventStream "+name+" to be "+what, func(ctx context.Context) (bool, error) {
		es := &jobstatev1alpha1.EventStream{}
		if err := w.c.Get(ctx, w.key(name), es); err != nil {
			return false, err
		}
		return cond(es.Status), nil
	})
}

// waitSealed: the status counts the stream's 120 events, some in segments.
func (w *workload) waitSealed(ctx context.Context, name string) error {
	return w.waitStream(ctx, name, "sealed", func(s jobstatev1alpha1.EventStreamStatus) bool {
		return s.Version == 119 && s.Segments > 0
	})
}

// waitTrimmed: the status counts the stream's 120 events, and retention
// deleted the oldest (sealed) ones.
func (w *workload) waitTrimmed(ctx context.Context, name string) error {
	return w.waitStream(ctx, name, "trimmed by retention", func(s jobstatev1alpha1.EventStreamStatus) bool {
		return s.Version == 119 && s.FirstPosition > 0
	})
}

// waitProjected waits for event-sourced JobState name to have projected
// its stream up to position.
func (w *workload) waitProjected(ctx context.Context, name string, position int64) error {
	return until(ctx, fmt.Sprintf("JobState %s to be projected up to %d", name, position), func(ctx context.Context) (bool, error) {
		js := &jobstatev1alpha1.JobState{}
		if err := w.c.Get(ctx, w.key(name), js); err != nil {
			return false, err
		}
		return jobstate.ProjectedPosition(js) == position, nil
	})
}

// waitLeader waits for the manager to hold the leader-election Lease and
// to have said so with an Event.
func (w *workload) waitLeader(ctx context.Context) error {
	return until(ctx, "the leader-election Lease and its Event", func(ctx context.Context) (bool, error) {
		l := &coordinationv1.Lease{}
		if err := w.c.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: leaderLease}, l); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		holder := ptr.Deref(l.Spec.HolderIdentity, "")
		var list corev1.EventList
		if err := w.c.List(ctx, &list, client.InNamespace(systemNamespace)); err != nil {
			return false, err
		}
		return holder != "" && slices.ContainsFunc(list.Items, func(e corev1.Event) bool {
			return e.Reason == "LeaderElection" && e.InvolvedObject.Name == leaderLease && e.Message == holder+" became leader"
		}), nil
	})
}

// leaderLease is the manager's leader-election Lease in systemNamespace.
const leaderLease = "jobstate-manager.state.jobstate.dev"

// scraper holds a token with config/default's metrics-reader ClusterRole,
// and one without it.
type scraper struct {
	reader, stranger string
	client           *http.Client
}

// metricsScraper makes ServiceAccounts "scraper" (bound to
// jobstate-metrics-reader) and "stranger" (bound to nothing) in a new
// namespace.
func metricsScraper(ctx context.Context, t *testing.T, dir string) *scraper {
	t.Helper()
	ns := env.Namespace(t)
	for _, name := range []string{"scraper", "stranger"} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := env.Client.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scraper-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "jobstate-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), binding) })
	return &scraper{
		reader:   serviceAccountToken(ctx, t, ns, "scraper"),
		stranger: serviceAccountToken(ctx, t, ns, "stranger"),
		// The manager serves a self-signed certificate.
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
}

// scrape GETs url/metrics with the reader's token until it answers want,
// and returns the body.
func (s *scraper) scrape(ctx context.Context, url string, want int) error {
	_, err := s.get(ctx, url, s.reader, want)
	return err
}

// get GETs url/metrics with token until the answer is want (the endpoint
// is up when the manager leads), and returns the body.
func (s *scraper) get(ctx context.Context, url, token string, want int) (string, error) {
	var last string
	var body string
	err := until(ctx, "GET "+url+"/metrics to answer "+http.StatusText(want), func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		body, last = b.String(), resp.Status
		return resp.StatusCode == want, nil
	})
	if err != nil {
		return "", fmt.Errorf("%w (last answer: %s)", err, last)
	}
	return body, nil
}
