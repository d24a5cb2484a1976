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

package v1alpha1_test

// These tests run against a real kube-apiserver (envtest) with the generated
// CRD installed. They prove that the invariants of a JobState are enforced by
// the API server itself — OpenAPI bounds and CEL x-kubernetes-validations —
// so they hold for every client: the update library, the controller, and a
// human with kubectl. No webhook and no client-side check is involved.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// Messages of the CEL rules in jobstate_types.go. The tests match them
// verbatim, so a reworded rule message shows up here.
const (
	msgPhaseRemoved    = "status.phase cannot be removed once set"
	msgPhaseTerminal   = "status.phase is terminal (Succeeded, Failed or Cancelled) and cannot change"
	msgRunningRequires = "status.holder and status.attempt >= 1 are required while status.phase is Running"
	msgAttemptDecrease = "status.attempt may not decrease"
	msgLockToken       = "status.lockToken may not decrease: a newer lock holder has written this JobState"
	msgLockTokenGone   = "status.lockToken cannot be removed once set"
	msgLockPolicy      = "spec.lockPolicy is immutable"
	msgCancelRevert    = "spec.cancel cannot be reverted once set"
)

// Status values used to bring a JobState to a legal starting state.
var (
	stPending   = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhasePending, Reason: jobstatev1alpha1.ReasonCreated}
	stRunning1  = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, Holder: "w1", Attempt: 1, Reason: jobstatev1alpha1.ReasonClaimed}
	stPending1  = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhasePending, Attempt: 1, Reason: jobstatev1alpha1.ReasonWorkerFailed}
	stRunning2  = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, Holder: "w2", Attempt: 2, Reason: jobstatev1alpha1.ReasonClaimed}
	stSucceeded = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Holder: "w1", Attempt: 1, Progress: 100, Reason: jobstatev1alpha1.ReasonSucceeded}
	stFailed    = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseFailed, Holder: "w1", Attempt: 1, Reason: jobstatev1alpha1.ReasonBackoffLimitExceeded}
	stCancelled = jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseCancelled, Holder: "w1", Attempt: 1, Reason: jobstatev1alpha1.ReasonCancelled}
)

var allPhases = []jobstatev1alpha1.JobPhase{
	jobstatev1alpha1.PhasePending,
	jobstatev1alpha1.PhaseRunning,
	jobstatev1alpha1.PhaseSucceeded,
	jobstatev1alpha1.PhaseFailed,
	jobstatev1alpha1.PhaseCancelled,
}

// terminalSetup is the legal path to each terminal phase.
var terminalSetup = map[jobstatev1alpha1.JobPhase][]jobstatev1alpha1.JobStateStatus{
	jobstatev1alpha1.PhaseSucceeded: {stPending, stRunning1, stSucceeded},
	jobstatev1alpha1.PhaseFailed:    {stPending, stRunning1, stFailed},
	jobstatev1alpha1.PhaseCancelled: {stPending, stRunning1, stCancelled},
}

// write is one attempted write to the stored object js (a private copy).
type write func(ctx context.Context, c client.Client, js *jobstatev1alpha1.JobState) error

// updateStatus writes js with its status changed by mutate, through the
// status subresource.
func updateStatus(mutate func(*jobstatev1alpha1.JobStateStatus)) write {
	return func(ctx context.Context, c client.Client, js *jobstatev1alpha1.JobState) error {
		mutate(&js.Status)
		return c.Status().Update(ctx, js)
	}
}

// setStatus replaces the whole status.
func setStatus(s jobstatev1alpha1.JobStateStatus) write {
	return updateStatus(func(st *jobstatev1alpha1.JobStateStatus) { *st = s })
}

// updateSpec writes js with its spec changed by mutate, through the main
// resource.
func updateSpec(mutate func(*jobstatev1alpha1.JobStateSpec)) write {
	return func(ctx context.Context, c client.Client, js *jobstatev1alpha1.JobState) error {
		mutate(&js.Spec)
		return c.Update(ctx, js)
	}
}

// mergePatchStatus sends a JSON merge patch to the status subresource, as
// `kubectl patch js NAME --subresource=status --type=merge -p PATCH` does.
// The patch carries no resourceVersion, so there is no precondition.
func mergePatchStatus(patch string) write {
	return func(ctx context.Context, c client.Client, js *jobstatev1alpha1.JobState) error {
		return c.Status().Patch(ctx, js, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
}

// newJobState creates a JobState with spec in namespace ns and returns the
// stored object.
func newJobState(t *testing.T, ns, name string, spec jobstatev1alpha1.JobStateSpec) *jobstatev1alpha1.JobState {
	t.Helper()
	js := &jobstatev1alpha1.JobState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       spec,
	}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatalf("creating JobState %s/%s: %v", ns, name, err)
	}
	return js
}

// bringTo writes each status in steps in order through Status().Update;
// every step must be accepted and stored as written. It returns the stored
// object after the last step.
func bringTo(t *testing.T, js *jobstatev1alpha1.JobState, steps []jobstatev1alpha1.JobStateStatus) *jobstatev1alpha1.JobState {
	t.Helper()
	for i, st := range steps {
		js.Status = *st.DeepCopy()
		if err := env.Client.Status().Update(t.Context(), js); err != nil {
			t.Fatalf("setup step %d (phase %q, attempt %d, holder %q) was rejected: %v", i, st.Phase, st.Attempt, st.Holder, err)
		}
		if !equality.Semantic.DeepEqual(js.Status, st) {
			t.Fatalf("setup step %d: stored status %+v, wrote %+v", i, js.Status, st)
		}
	}
	return get(t, js)
}

// get reads js afresh from the API server.
func get(t *testing.T, js *jobstatev1alpha1.JobState) *jobstatev1alpha1.JobState {
	t.Helper()
	fresh := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(js), fresh); err != nil {
		t.Fatalf("getting JobState %s: %v", js.Name, err)
	}
	return fresh
}

// assertInvalid checks that err is a 422 Invalid whose message contains every
// string in want and one of whose causes is on field (when field is set).
func assertInvalid(t *testing.T, err error, field string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the write was accepted; want it rejected as Invalid with %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("err = %v (reason %q); want an Invalid error", err, apierrors.ReasonForError(err))
	}
	t.Logf("rejected: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err.Error(), w)
		}
	}
	if field == "" {
		return
	}
	var fields []string
	if st, ok := err.(apierrors.APIStatus); ok && st.Status().Details != nil {
		for _, c := range st.Status().Details.Causes {
			if c.Field == field {
				return
			}
			fields = append(fields, c.Field)
		}
	}
	t.Errorf("no cause of %q is on field %q (causes on %q)", err.Error(), field, fields)
}

// assertUnchanged checks that the stored object is still before.
func assertUnchanged(t *testing.T, before *jobstatev1alpha1.JobState) {
	t.Helper()
	after := get(t, before)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("resourceVersion changed from %s to %s after a rejected write", before.ResourceVersion, after.ResourceVersion)
	}
	if after.Generation != before.Generation {
		t.Errorf("generation changed from %d to %d after a rejected write", before.Generation, after.Generation)
	}
	if !equality.Semantic.DeepEqual(after.Spec, before.Spec) {
		t.Errorf("spec changed after a rejected write:\nbefore %+v\nafter  %+v", before.Spec, after.Spec)
	}
	if !equality.Semantic.DeepEqual(after.Status, before.Status) {
		t.Errorf("status changed after a rejected write:\nbefore %+v\nafter  %+v", before.Status, after.Status)
	}
}

// statusRule is the key of a CEL rule on a JobState's status.
func statusRule(message string) string { return "jobstates status rule: " + message }

type invalidWriteCase struct {
	rule  string // the rule's key (crdrules_test.go)
	name  string
	spec  jobstatev1alpha1.JobStateSpec     // at create
	setup []jobstatev1alpha1.JobStateStatus // legal status writes, in order
	write write                             // the illegal write
	field string                            // field of the expected cause
	want  []string                          // substrings of the error
}

func invalidWriteCases() []invalidWriteCase {
	var cases []invalidWriteCase

	// A terminal phase cannot change to any other phase. The new status keeps
	// holder and attempt, so that only the terminal rule is violated.
	for _, from := range []jobstatev1alpha1.JobPhase{jobstatev1alpha1.PhaseSucceeded, jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.PhaseCancelled} {
		for _, to := range allPhases {
			if to == from {
				continue
			}
			cases = append(cases, invalidWriteCase{
				rule:  statusRule(msgPhaseTerminal),
				name:  fmt.Sprintf("terminal %s to %s", from, to),
				setup: terminalSetup[from],
				write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Phase = to }),
				field: "status",
				want:  []string{msgPhaseTerminal},
			})
		}
		cases = append(cases, invalidWriteCase{
			rule:  statusRule(msgPhaseRemoved),
			name:  fmt.Sprintf("terminal %s phase removed", from),
			setup: terminalSetup[from],
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Phase = "" }),
			field: "status",
			want:  []string{msgPhaseRemoved},
		})
	}

	cases = append(cases,
		invalidWriteCase{
			rule:  statusRule(msgPhaseRemoved),
			name:  "Pending phase removed",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Phase = "" }),
			field: "status",
			want:  []string{msgPhaseRemoved},
		},
		invalidWriteCase{
			rule:  statusRule(msgPhaseRemoved),
			name:  "Running phase removed",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Phase = "" }),
			field: "status",
			want:  []string{msgPhaseRemoved},
		},
		invalidWriteCase{
			rule:  statusRule(msgAttemptDecrease),
			name:  "attempt decreases 2 to 1",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1, stPending1, stRunning2},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Attempt = 1 }),
			field: "status",
			want:  []string{msgAttemptDecrease},
		},
		invalidWriteCase{
			rule: "jobstates status.lockToken rule: " + msgLockToken,
			name: "lockToken decreases 5 to 3",
			spec: jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease},
			setup: []jobstatev1alpha1.JobStateStatus{stPending, func() jobstatev1alpha1.JobStateStatus {
				s := stRunning1
				s.LockToken = 5
				return s
			}()},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.LockToken = 3 }),
			field: "status.lockToken",
			want:  []string{msgLockToken},
		},
		invalidWriteCase{
			rule: statusRule(msgLockTokenGone),
			name: "lockToken removed",
			setup: []jobstatev1alpha1.JobStateStatus{func() jobstatev1alpha1.JobStateStatus {
				s := stPending
				s.LockToken = 2
				return s
			}()},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.LockToken = 0 }), // omitempty: the field is dropped
			field: "status",
			want:  []string{msgLockTokenGone},
		},
		invalidWriteCase{
			rule:  statusRule(msgAttemptDecrease),
			name:  "attempt removed",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1, stPending1},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Attempt = 0 }), // omitempty: the field is dropped
			field: "status",
			want:  []string{msgAttemptDecrease},
		},
		invalidWriteCase{
			rule:  "jobstates status.attempt minimum",
			name:  "attempt -1",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Attempt = -1 }),
			field: "status.attempt",
			want:  []string{"status.attempt", "greater than or equal to 0"},
		},
		invalidWriteCase{
			rule:  "jobstates status.progress maximum",
			name:  "progress 101",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Progress = 101 }),
			field: "status.progress",
			want:  []string{"status.progress", "less than or equal to 100"},
		},
		invalidWriteCase{
			rule:  "jobstates status.progress minimum",
			name:  "progress -1",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Progress = -1 }),
			field: "status.progress",
			want:  []string{"status.progress", "greater than or equal to 0"},
		},
		invalidWriteCase{
			rule:  statusRule(msgRunningRequires),
			name:  "Running without holder",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: setStatus(jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, Attempt: 1}),
			field: "status",
			want:  []string{msgRunningRequires},
		},
		invalidWriteCase{
			rule:  statusRule(msgRunningRequires),
			name:  "Running holder cleared",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Holder = "" }),
			field: "status",
			want:  []string{msgRunningRequires},
		},
		invalidWriteCase{
			rule:  statusRule(msgRunningRequires),
			name:  "Running with attempt 0 (omitted)",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: setStatus(jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, Holder: "w1"}),
			field: "status",
			want:  []string{msgRunningRequires},
		},
		invalidWriteCase{
			rule:  statusRule(msgRunningRequires),
			name:  "Running with attempt 0 (explicit, merge patch)",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: mergePatchStatus(`{"status":{"phase":"Running","holder":"w1","attempt":0}}`),
			field: "status",
			want:  []string{msgRunningRequires},
		},
		invalidWriteCase{
			rule:  "jobstates status.phase enum",
			name:  "phase not in enum",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Phase = "Paused" }),
			field: "status.phase",
			want:  []string{"status.phase", "Unsupported value", `"Paused"`},
		},
		invalidWriteCase{
			rule:  "jobstates status.holder maxLength",
			name:  "holder 254 chars",
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1},
			write: updateStatus(func(s *jobstatev1alpha1.JobStateStatus) { s.Holder = strings.Repeat("h", 254) }),
			field: "status.holder",
			want:  []string{"status.holder", "Too long", "253"},
		},
		invalidWriteCase{
			rule:  "jobstates spec.lockPolicy rule: " + msgLockPolicy,
			name:  "lockPolicy Optimistic to Lease",
			spec:  jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyOptimistic},
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateSpec(func(s *jobstatev1alpha1.JobStateSpec) { s.LockPolicy = jobstatev1alpha1.LockPolicyLease }),
			field: "spec.lockPolicy",
			want:  []string{msgLockPolicy},
		},
		invalidWriteCase{
			rule:  "jobstates spec.lockPolicy rule: " + msgLockPolicy,
			name:  "lockPolicy Lease to Optimistic",
			spec:  jobstatev1alpha1.JobStateSpec{LockPolicy: jobstatev1alpha1.LockPolicyLease},
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateSpec(func(s *jobstatev1alpha1.JobStateSpec) { s.LockPolicy = jobstatev1alpha1.LockPolicyOptimistic }),
			field: "spec.lockPolicy",
			want:  []string{msgLockPolicy},
		},
		invalidWriteCase{
			rule:  "jobstates spec.lockPolicy enum",
			name:  "lockPolicy Pessimistic on update",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateSpec(func(s *jobstatev1alpha1.JobStateSpec) { s.LockPolicy = "Pessimistic" }),
			field: "spec.lockPolicy",
			want:  []string{"spec.lockPolicy", "Unsupported value", `"Pessimistic"`},
		},
		invalidWriteCase{
			rule:  "jobstates spec rule: " + msgCancelRevert,
			name:  "cancel true to false",
			spec:  jobstatev1alpha1.JobStateSpec{Cancel: true},
			setup: []jobstatev1alpha1.JobStateStatus{stPending, stRunning1},
			write: updateSpec(func(s *jobstatev1alpha1.JobStateSpec) { s.Cancel = false }), // omitempty: the field is dropped
			field: "spec",
			want:  []string{msgCancelRevert},
		},
		invalidWriteCase{
			rule:  "jobstates spec rule: " + msgCancelRevert,
			name:  "cancel true to explicit false (merge patch)",
			spec:  jobstatev1alpha1.JobStateSpec{Cancel: true},
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: func(ctx context.Context, c client.Client, js *jobstatev1alpha1.JobState) error {
				return c.Patch(ctx, js, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":false}}`)))
			},
			field: "spec",
			want:  []string{msgCancelRevert},
		},
		invalidWriteCase{
			rule:  "jobstates spec.backoffLimit minimum",
			name:  "backoffLimit -1 on update",
			setup: []jobstatev1alpha1.JobStateStatus{stPending},
			write: updateSpec(func(s *jobstatev1alpha1.JobStateSpec) { s.BackoffLimit = ptr.To[int32](-1) }),
			field: "spec.backoffLimit",
			want:  []string{"spec.backoffLimit", "greater than or equal to 0"},
		},
		// kubectl-style: `kubectl patch js NAME --subresource=status
		// --type=merge -p '{"status":{"phase":"Running"}}'` on a Succeeded
		// job. Holder and attempt stay, so only the terminal rule applies.
		invalidWriteCase{
			rule:  statusRule(msgPhaseTerminal),
			name:  "merge patch Succeeded to Running",
			setup: terminalSetup[jobstatev1alpha1.PhaseSucceeded],
			write: mergePatchStatus(`{"status":{"phase":"Running"}}`),
			field: "status",
			want:  []string{msgPhaseTerminal},
		},
		invalidWriteCase{
			rule:  statusRule(msgPhaseTerminal),
			name:  "merge patch Succeeded to Running with new attempt",
			setup: terminalSetup[jobstatev1alpha1.PhaseSucceeded],
			write: mergePatchStatus(`{"status":{"phase":"Running","holder":"w2","attempt":2,"progress":0}}`),
			field: "status",
			want:  []string{msgPhaseTerminal},
		},
	)
	return cases
}

// TestInvalidWritesRejected: every illegal update of a legally reached
// JobState is rejected with 422 Invalid and the rule's message, and leaves
// the stored object as it was.
func TestInvalidWritesRejected(t *testing.T) {
	ns := env.Namespace(t)
	for i, tc := range invalidWriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			js := newJobState(t, ns, fmt.Sprintf("invalid-%d", i), tc.spec)
			before := bringTo(t, js, tc.setup)

			err := tc.write(t.Context(), env.Client, before.DeepCopy())
			assertInvalid(t, err, tc.field, tc.want...)
			assertUnchanged(t, before)
		})
	}
}

// invalidSpecCase is an out-of-bounds spec, refused at create.
type invalidSpecCase struct {
	rule  string // the rule's key (crdrules_test.go)
	name  string
	spec  jobstatev1alpha1.JobStateSpec
	field string
	want  []string
}

func invalidSpecCases() []invalidSpecCase {
	return []invalidSpecCase{
		{"jobstates spec.backoffLimit minimum", "backoffLimit -1", jobstatev1alpha1.JobStateSpec{BackoffLimit: ptr.To[int32](-1)}, "spec.backoffLimit", []string{"spec.backoffLimit", "greater than or equal to 0"}},
		{"jobstates spec.backoffLimit maximum", "backoffLimit 101", jobstatev1alpha1.JobStateSpec{BackoffLimit: ptr.To[int32](101)}, "spec.backoffLimit", []string{"spec.backoffLimit", "less than or equal to 100"}},
		{"jobstates spec.heartbeatTimeoutSeconds minimum", "heartbeatTimeoutSeconds 0", jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](0)}, "spec.heartbeatTimeoutSeconds", []string{"spec.heartbeatTimeoutSeconds", "greater than or equal to 1"}},
		{"jobstates spec.heartbeatTimeoutSeconds maximum", "heartbeatTimeoutSeconds 86401", jobstatev1alpha1.JobStateSpec{HeartbeatTimeoutSeconds: ptr.To[int32](86401)}, "spec.heartbeatTimeoutSeconds", []string{"spec.heartbeatTimeoutSeconds", "less than or equal to 86400"}},
		{"jobstates spec.activeDeadlineSeconds minimum", "activeDeadlineSeconds 0", jobstatev1alpha1.JobStateSpec{ActiveDeadlineSeconds: ptr.To[int64](0)}, "spec.activeDeadlineSeconds", []string{"spec.activeDeadlineSeconds", "greater than or equal to 1"}},
		{"jobstates spec.ttlSecondsAfterFinished minimum", "ttlSecondsAfterFinished -1", jobstatev1alpha1.JobStateSpec{TTLSecondsAfterFinished: ptr.To[int32](-1)}, "spec.ttlSecondsAfterFinished", []string{"spec.ttlSecondsAfterFinished", "greater than or equal to 0"}},
		{"jobstates spec.lockPolicy enum", "lockPolicy Pessimistic", jobstatev1alpha1.JobStateSpec{LockPolicy: "Pessimistic"}, "spec.lockPolicy", []string{"spec.lockPolicy", "Unsupported value", `"Pessimistic"`}},
	}
}

// TestInvalidSpecRejectedAtCreate: out-of-bounds spec values are rejected at
// create, and nothing is stored.
func TestInvalidSpecRejectedAtCreate(t *testing.T) {
	ns := env.Namespace(t)
	for i, tc := range invalidSpecCases() {
		t.Run(tc.name, func(t *testing.T) {
			js := &jobstatev1alpha1.JobState{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("create-%d", i)},
				Spec:       tc.spec,
			}
			err := env.Client.Create(t.Context(), js)
			assertInvalid(t, err, tc.field, tc.want...)
			err = env.Client.Get(t.Context(), client.ObjectKeyFromObject(js), &jobstatev1alpha1.JobState{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("after a rejected create, Get returned %v; want NotFound", err)
			}
		})
	}
}

// TestLegalLifecycleAccepted is the positive control for the status rules:
// Pending → Running(1, w1) → Pending(1) → Running(2, w2) → Succeeded is
// accepted step by step, including progress at its bounds and a holder of
// exactly 253 characters.
func TestLegalLifecycleAccepted(t *testing.T) {
	ns := env.Namespace(t)
	js := newJobState(t, ns, "lifecycle", jobstatev1alpha1.JobStateSpec{})
	steps := []jobstatev1alpha1.JobStateStatus{
		stPending,
		stRunning1,
		{Phase: jobstatev1alpha1.PhaseRunning, Holder: "w1", Attempt: 1, Progress: 0},
		{Phase: jobstatev1alpha1.PhaseRunning, Holder: "w1", Attempt: 1, Progress: 40},
		stPending1,
		stRunning2,
		{Phase: jobstatev1alpha1.PhaseRunning, Holder: strings.Repeat("h", 253), Attempt: 2, Progress: 100},
		{Phase: jobstatev1alpha1.PhaseSucceeded, Holder: "w2", Attempt: 2, Progress: 100, Reason: jobstatev1alpha1.ReasonSucceeded},
		// Rewriting a terminal status without changing its phase is allowed.
		{Phase: jobstatev1alpha1.PhaseSucceeded, Holder: "w2", Attempt: 2, Progress: 100, Reason: jobstatev1alpha1.ReasonSucceeded, Message: "done"},
	}
	rv := js.ResourceVersion
	for i, st := range steps {
		js.Status = *st.DeepCopy()
		if err := env.Client.Status().Update(t.Context(), js); err != nil {
			t.Fatalf("step %d (phase %q, attempt %d): legal write rejected: %v", i, st.Phase, st.Attempt, err)
		}
		if js.ResourceVersion == rv {
			t.Fatalf("step %d: resourceVersion unchanged; the write was a no-op", i)
		}
		rv = js.ResourceVersion
		if got := get(t, js); !equality.Semantic.DeepEqual(got.Status, st) {
			t.Fatalf("step %d: stored status %+v, wrote %+v", i, got.Status, st)
		}
	}

	// Each non-terminal phase may go to each terminal phase.
	for _, from := range [][]jobstatev1alpha1.JobStateStatus{{stPending}, {stPending, stRunning1}} {
		for _, to := range []jobstatev1alpha1.JobPhase{jobstatev1alpha1.PhaseSucceeded, jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.PhaseCancelled} {
			name := fmt.Sprintf("%s to %s", from[len(from)-1].Phase, to)
			t.Run(name, func(t *testing.T) {
				js := newJobState(t, ns, strings.ToLower(strings.ReplaceAll(name, " ", "-")), jobstatev1alpha1.JobStateSpec{})
				last := from[len(from)-1]
				last.Phase = to
				bringTo(t, js, append(append([]jobstatev1alpha1.JobStateStatus{}, from...), last))
			})
		}
	}
}

// TestMergePatchAccepted is the positive control for the kubectl-style case:
// the same kind of status merge patch is accepted when it is legal.
func TestMergePatchAccepted(t *testing.T) {
	ns := env.Namespace(t)
	js := newJobState(t, ns, "patch", jobstatev1alpha1.JobStateSpec{})
	js = bringTo(t, js, []jobstatev1alpha1.JobStateStatus{stPending})

	for _, p := range []string{
		`{"status":{"phase":"Running","holder":"w1","attempt":1}}`,
		`{"status":{"progress":50}}`,
		`{"status":{"phase":"Succeeded","progress":100}}`,
	} {
		if err := mergePatchStatus(p)(t.Context(), env.Client, js); err != nil {
			t.Fatalf("legal merge patch %s rejected: %v", p, err)
		}
	}
	got := get(t, js)
	want := jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Holder: "w1", Attempt: 1, Progress: 100, Reason: stPending.Reason}
	if !equality.Semantic.DeepEqual(got.Status, want) {
		t.Fatalf("stored status %+v, want %+v", got.Status, want)
	}
}

// TestSpecUpdatesAccepted is the positive control for the spec rules: cancel
// false → true is accepted, after which other spec fields may still change
// as long as cancel stays true and lockPolicy stays the same.
func TestSpecUpdatesAccepted(t *testing.T) {
	ns := env.Namespace(t)
	js := newJobState(t, ns, "cancel", jobstatev1alpha1.JobStateSpec{})
	js = bringTo(t, js, []jobstatev1alpha1.JobStateStatus{stPending, stRunning1})
	gen := js.Generation

	js.Spec.Cancel = true
	if err := env.Client.Update(t.Context(), js); err != nil {
		t.Fatalf("cancel false → true rejected: %v", err)
	}
	if got := get(t, js); !got.Spec.Cancel || got.Generation <= gen {
		t.Fatalf("after cancel: spec.cancel=%v generation=%d (was %d); want true and a new generation", got.Spec.Cancel, got.Generation, gen)
	}

	js.Spec.TTLSecondsAfterFinished = ptr.To[int32](0)
	js.Spec.ActiveDeadlineSeconds = ptr.To[int64](31536000)
	js.Spec.BackoffLimit = ptr.To[int32](100)
	js.Spec.HeartbeatTimeoutSeconds = ptr.To[int32](1)
	if err := env.Client.Update(t.Context(), js); err != nil {
		t.Fatalf("spec update keeping cancel and lockPolicy rejected: %v", err)
	}
	// backoffLimit 0 (no retries, as on a Job) is accepted on update too.
	js.Spec.BackoffLimit = ptr.To[int32](0)
	if err := env.Client.Update(t.Context(), js); err != nil {
		t.Fatalf("backoffLimit 0 on update rejected: %v", err)
	}
	if got := ptr.Deref(get(t, js).Spec.BackoffLimit, -1); got != 0 {
		t.Fatalf("backoffLimit stored as %d, want 0", got)
	}

	// A kubectl merge patch that sets cancel again is a legal no-op.
	if err := env.Client.Patch(t.Context(), js, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":true}}`))); err != nil {
		t.Fatalf("merge patch cancel=true on a cancelled job rejected: %v", err)
	}

	js = bringTo(t, js, []jobstatev1alpha1.JobStateStatus{stCancelled})
	if !js.Spec.Cancel || js.Status.Phase != jobstatev1alpha1.PhaseCancelled {
		t.Fatalf("got spec.cancel=%v phase=%q; want true, Cancelled", js.Spec.Cancel, js.Status.Phase)
	}

	// Bounds at their limits are accepted at create.
	newJobState(t, ns, "bounds", jobstatev1alpha1.JobStateSpec{
		LockPolicy:              jobstatev1alpha1.LockPolicyLease,
		BackoffLimit:            ptr.To[int32](0),
		ActiveDeadlineSeconds:   ptr.To[int64](1),
		HeartbeatTimeoutSeconds: ptr.To[int32](86400),
		TTLSecondsAfterFinished: ptr.To[int32](31536000),
		Cancel:                  true,
	})
}

// TestDefaultsApplied: the API server fills in lockPolicy, backoffLimit and
// heartbeatTimeoutSeconds at create, and leaves the unset-means-none fields
// unset.
func TestDefaultsApplied(t *testing.T) {
	ns := env.Namespace(t)
	created := newJobState(t, ns, "defaults", jobstatev1alpha1.JobStateSpec{})
	for name, js := range map[string]*jobstatev1alpha1.JobState{"create response": created, "fresh get": get(t, created)} {
		s := js.Spec
		if s.LockPolicy != jobstatev1alpha1.LockPolicyOptimistic {
			t.Errorf("%s: lockPolicy = %q, want Optimistic", name, s.LockPolicy)
		}
		// 2 retries: the 3 attempts of the default before backoffLimit
		// counted retries.
		if s.BackoffLimit == nil || *s.BackoffLimit != 2 {
			t.Errorf("%s: backoffLimit = %v, want 2", name, ptr.Deref(s.BackoffLimit, -1))
		}
		if s.HeartbeatTimeoutSeconds == nil || *s.HeartbeatTimeoutSeconds != 60 {
			t.Errorf("%s: heartbeatTimeoutSeconds = %v, want 60", name, ptr.Deref(s.HeartbeatTimeoutSeconds, -1))
		}
		if s.ActiveDeadlineSeconds != nil {
			t.Errorf("%s: activeDeadlineSeconds = %d, want unset", name, *s.ActiveDeadlineSeconds)
		}
		if s.TTLSecondsAfterFinished != nil {
			t.Errorf("%s: ttlSecondsAfterFinished = %d, want unset", name, *s.TTLSecondsAfterFinished)
		}
		if s.Cancel {
			t.Errorf("%s: cancel = true, want false", name)
		}
	}

	// Explicit values are kept, not overwritten by the defaults.
	explicit := newJobState(t, ns, "explicit", jobstatev1alpha1.JobStateSpec{
		LockPolicy:              jobstatev1alpha1.LockPolicyLease,
		BackoffLimit:            ptr.To[int32](7),
		HeartbeatTimeoutSeconds: ptr.To[int32](5),
	})
	got := get(t, explicit).Spec
	if got.LockPolicy != jobstatev1alpha1.LockPolicyLease || ptr.Deref(got.BackoffLimit, -1) != 7 || ptr.Deref(got.HeartbeatTimeoutSeconds, -1) != 5 {
		t.Errorf("explicit spec stored as lockPolicy=%q backoffLimit=%d heartbeatTimeoutSeconds=%d; want Lease, 7, 5",
			got.LockPolicy, ptr.Deref(got.BackoffLimit, -1), ptr.Deref(got.HeartbeatTimeoutSeconds, -1))
	}
}
