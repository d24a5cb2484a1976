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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// LockPolicy says how writers of one JobState are coordinated.
// +kubebuilder:validation:Enum=Optimistic;Lease
type LockPolicy string

const (
	// LockPolicyOptimistic: read, apply, write with the resourceVersion
	// precondition, re-read and re-apply on Conflict. High throughput when
	// contention is low.
	LockPolicyOptimistic LockPolicy = "Optimistic"
	// LockPolicyLease: writers also hold a coordination.k8s.io/v1 Lease
	// around read-apply-write.
	LockPolicyLease LockPolicy = "Lease"
)

// JobPhase is where a job is in its lifecycle.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Cancelled
type JobPhase string

const (
	// PhasePending: waiting for a worker to claim the next attempt.
	PhasePending JobPhase = "Pending"
	// PhaseRunning: a worker (status.holder) runs attempt status.attempt.
	PhaseRunning JobPhase = "Running"
	// PhaseSucceeded is terminal: the job finished successfully.
	PhaseSucceeded JobPhase = "Succeeded"
	// PhaseFailed is terminal: the job failed and will not be retried.
	PhaseFailed JobPhase = "Failed"
	// PhaseCancelled is terminal: someone set spec.cancel.
	PhaseCancelled JobPhase = "Cancelled"
)

// IsTerminal reports whether no further transition may leave the phase.
func (p JobPhase) IsTerminal() bool {
	return p == PhaseSucceeded || p == PhaseFailed || p == PhaseCancelled
}

// Condition types of a JobState.
const (
	// ConditionRunning is True while a worker holds the current attempt.
	ConditionRunning = "Running"
	// ConditionComplete is True once the job reached a terminal phase; its
	// reason says which.
	ConditionComplete = "Complete"
)

// Reasons for status.reason and condition reasons.
const (
	// ReasonCreated: the controller initialized the status.
	ReasonCreated = "Created"
	// ReasonClaimed: a worker claimed a new attempt.
	ReasonClaimed = "Claimed"
	// ReasonSucceeded: the holder reported success.
	ReasonSucceeded = "Succeeded"
	// ReasonWorkerFailed: the holder reported a failure and retries remain.
	ReasonWorkerFailed = "WorkerFailed"
	// ReasonHeartbeatTimeout: the holder stopped heartbeating and retries remain.
	ReasonHeartbeatTimeout = "HeartbeatTimeout"
	// ReasonBackoffLimitExceeded: an attempt failed or its holder was lost
	// and spec.backoffLimit retries have already been made (after
	// spec.backoffLimit+1 attempts; on the first failure when it is 0).
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	// ReasonDeadlineExceeded: spec.activeDeadlineSeconds passed since startTime.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonCancelled: spec.cancel was set.
	ReasonCancelled = "Cancelled"
)

// JobStateSpec is what the owner of a job asks for.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",message="spec.cancel cannot be reverted once set"
// +kubebuilder:validation:XValidation:rule="has(self.eventStreamRef) == has(oldSelf.eventStreamRef)",fieldPath=".eventStreamRef",message="spec.eventStreamRef cannot be added or removed after the JobState is created"
type JobStateSpec struct {
	// lockPolicy says how writers are coordinated: Optimistic (resourceVersion
	// preconditions) or Lease (a coordination.k8s.io Lease held around each
	// write). Immutable, because writers in flight rely on it.
	// +kubebuilder:default=Optimistic
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.lockPolicy is immutable"
	// +optional
	LockPolicy LockPolicy `json:"lockPolicy,omitempty"`

	// backoffLimit is the number of retries, as on a Kubernetes Job: a
	// failed or lost attempt is retried while fewer than backoffLimit
	// retries have been made, so a job gets at most backoffLimit+1
	// attempts, and 0 fails it on its first failure. Unset: 2, which keeps
	// the 3 attempts that the default allowed when this field counted
	// attempts (before issue #12); a Job's default is 6.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// activeDeadlineSeconds bounds the job's running time, counted from
	// status.startTime (the first claim); when it passes the job fails with
	// reason DeadlineExceeded. Unset: no deadline.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=31536000
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// heartbeatTimeoutSeconds: a Running job whose holder has not heartbeated
	// for this long is considered lost and its attempt ends. Unset: 60.
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +optional
	HeartbeatTimeoutSeconds *int32 `json:"heartbeatTimeoutSeconds,omitempty"`

	// ttlSecondsAfterFinished: the JobState is deleted this long after it
	// reached a terminal phase. Unset: kept forever.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31536000
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// cancel, once true, cancels the job: `kubectl patch js NAME --type=merge
	// -p '{"spec":{"cancel":true}}'`. It cannot be set back to false.
	// +optional
	Cancel bool `json:"cancel,omitempty"`

	// eventStreamRef names an EventStream in the JobState's namespace whose
	// events the controller projects into status (event sourcing): workers
	// append Claimed, Heartbeat, Succeeded, Failed, Cancelled and
	// DataPatched events instead of writing status. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.eventStreamRef is immutable"
	// +optional
	EventStreamRef *EventStreamReference `json:"eventStreamRef,omitempty"`
}

// EventStreamReference names an EventStream in the same namespace.
type EventStreamReference struct {
	// name of the EventStream.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=240
	// +required
	Name string `json:"name"`
}

// RejectedEvent is a stream event the projection did not apply because it
// was not a legal transition from the state at that point.
type RejectedEvent struct {
	// position of the event in the stream.
	// +required
	Position int64 `json:"position"`
	// type of the event.
	// +kubebuilder:validation:MaxLength=128
	// +required
	Type string `json:"type"`
	// reason is a CamelCase word: IllegalTransition, Fenced, BackingOff,
	// UnknownType or MalformedData.
	// +kubebuilder:validation:MaxLength=64
	// +required
	Reason string `json:"reason"`
	// message says why, for people.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// ProjectionStatus records how far the status has been projected from
// spec.eventStreamRef. It is written in the same status write as the state
// the events produced, so each event is applied exactly once.
type ProjectionStatus struct {
	// position of the last event applied (or rejected); absent before the
	// first.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Position *int64 `json:"position,omitempty"`

	// rejected are the most recent events that were not applied, oldest
	// first (at most 16 are kept; rejectedCount counts all).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Rejected []RejectedEvent `json:"rejected,omitempty"`

	// rejectedCount is the number of events rejected since the beginning.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RejectedCount int64 `json:"rejectedCount,omitempty"`
}

// JobStateStatus is the observed state of the job, written by workers and the
// controller through the update library. The CEL rules below hold for every
// writer, kubectl included.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.phase) || has(self.phase)",message="status.phase cannot be removed once set"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed', 'Cancelled']) || (has(self.phase) && self.phase == oldSelf.phase)",message="status.phase is terminal (Succeeded, Failed or Cancelled) and cannot change"
// +kubebuilder:validation:XValidation:rule="!has(self.phase) || self.phase != 'Running' || (has(self.holder) && size(self.holder) > 0 && has(self.attempt) && self.attempt >= 1)",message="status.holder and status.attempt >= 1 are required while status.phase is Running"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.attempt) || (has(self.attempt) && self.attempt >= oldSelf.attempt)",message="status.attempt may not decrease"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.lockToken) || has(self.lockToken)",message="status.lockToken cannot be removed once set"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.projection) || has(self.projection)",fieldPath=".projection",message="status.projection cannot be removed once set: events are applied exactly once"
type JobStateStatus struct {
	// phase is where the job is in its lifecycle. Succeeded, Failed and
	// Cancelled are terminal.
	// +optional
	Phase JobPhase `json:"phase,omitempty"`

	// attempt is the number of the current (or last) attempt, starting at 1
	// with the first claim. It is the fencing token: only the holder of the
	// current attempt may heartbeat or finish. It never decreases.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Attempt int32 `json:"attempt,omitempty"`

	// holder identifies the worker running the current attempt.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Holder string `json:"holder,omitempty"`

	// progress of the current attempt, in percent.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Progress int32 `json:"progress,omitempty"`

	// data is the job's own state, a free-form JSON object owned by workers.
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Data *runtime.RawExtension `json:"data,omitempty"`

	// startTime is when the first attempt was claimed.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// lastHeartbeatTime is when the holder last reported in.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`

	// retryAfter: while Pending after a failed or lost attempt, the next
	// attempt may not be claimed before this time (exponential backoff).
	// +optional
	RetryAfter *metav1.Time `json:"retryAfter,omitempty"`

	// completionTime is when the job reached a terminal phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// reason is a CamelCase word for the last transition.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Reason string `json:"reason,omitempty"`

	// message is a human-readable account of the last transition.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Message string `json:"message,omitempty"`

	// conditions: Running and Complete.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lockToken is the fencing token of the last write made under the job's
	// Lease (spec.lockPolicy Lease). It never decreases, so a writer whose
	// lock was taken over cannot overwrite its successor's work.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483646
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="status.lockToken may not decrease: a newer lock holder has written this JobState"
	// +optional
	LockToken int64 `json:"lockToken,omitempty"`

	// observedGeneration is the metadata.generation of the spec the
	// controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// projection: where the projection from spec.eventStreamRef stands.
	// +kubebuilder:validation:XValidation:rule="!has(oldSelf.position) || (has(self.position) && self.position >= oldSelf.position)",message="status.projection.position may not decrease: events are applied exactly once"
	// +optional
	Projection *ProjectionStatus `json:"projection,omitempty"`
}

// JobState is the state of one job, shared by every writer of it. Its spec
// and status cannot be removed (`kubectl patch --type=merge -p
// '{"status":null}'`): the rules on them compare old and new values, which
// the API server checks only while both exist.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.spec) || has(self.spec)",fieldPath=".spec",message="spec cannot be removed once set: the rules on spec.cancel, spec.lockPolicy and spec.eventStreamRef hold for every write"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || has(self.status)",fieldPath=".status",message="status cannot be removed once set: the rules on status.phase, status.attempt, status.lockToken and status.projection hold for every write"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=js,categories=jobstate
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Attempt",type=integer,JSONPath=`.status.attempt`
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.status.holder`
// +kubebuilder:printcolumn:name="Progress",type=integer,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type JobState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec JobStateSpec `json:"spec,omitempty"`
	// +optional
	Status JobStateStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// JobStateList contains a list of JobState.
type JobStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JobState `json:"items"`
}
