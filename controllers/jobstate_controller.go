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

package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// ControllerIdentity is the holder identity of the reconciler's Lease locks.
const ControllerIdentity = "jobstate-controller"

// DefaultProjectionBatch is JobStateReconciler.ProjectionBatch's default.
const DefaultProjectionBatch = 100

// JobStateReconciler drives the lifecycle of JobStates that workers do not:
// it initializes the status, cancels on spec.cancel, fails jobs past their
// active deadline, ends attempts whose holder stopped heartbeating (retrying
// them while spec.backoffLimit allows), and deletes finished jobs after
// spec.ttlSecondsAfterFinished.
type JobStateReconciler struct {
	client.Client
	// APIReader reads live from the API server; status writes re-read
	// through it after a conflict (mgr.GetAPIReader()).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// LeaseClient takes the Leases of JobStates with lockPolicy Lease; it
	// must be able to watch (a manager's cached client cannot: SetupWithManager
	// builds one from the manager's config).
	LeaseClient client.WithWatch
	// Clock is the time source. Default: the real clock.
	Clock clock.WithTickerAndDelayedExecution
	// ProjectionBatch is how many stream events one status write of an
	// event-sourced JobState applies at most. Default DefaultProjectionBatch.
	ProjectionBatch int
	// MaxConcurrentReconciles is how many JobStates are reconciled at
	// once (never one JobState twice at once). Zero: the manager's default
	// (one). The reconciler holds no state of its own after SetupWithManager
	// but clients that are safe for concurrent use.
	MaxConcurrentReconciles int

	// streams reads and appends to the EventStreams of event-sourced
	// JobStates, in every namespace (not as the sealer).
	streams *stream.Client
	// jobs writes status the way workers do: through the update library,
	// under the job's Lease when its lockPolicy says so.
	jobs *jobstate.Client
}

// timerAppendTimeout bounds an event-sourced timer's append (conflicts and
// waiting for a full head).
const timerAppendTimeout = 5 * time.Second

// +kubebuilder:rbac:groups=state.jobstate.dev,resources=jobstates,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=jobstates/status,verbs=update
// Leases owned by a JobState set blockOwnerDeletion, which clusters that
// enforce owner-reference permissions allow only with update on finalizers.
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=jobstates/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;watch;create;update
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=eventstreams,verbs=get;list;watch
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=eventsegments,verbs=get;list

// lockWait bounds how long a reconcile waits for a JobState's Lease
// (lockPolicy Lease) held by a worker; lockRetry is when it tries again.
// The reconcile workers serve every JobState: one held Lease — a worker's
// long write, or a killed manager's own until its TTL passes — must not
// stall the others.
const (
	lockWait  = 2 * time.Second
	lockRetry = time.Second
)

// Reconcile brings one JobState up to date with the clock, or, if it is
// event-sourced (spec.eventStreamRef), with its stream. A JobState whose
// Lease stays held for lockWait is tried again after lockRetry.
func (r *JobStateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if errors.Is(err, lease.ErrTimeout) {
		logf.FromContext(ctx).Info("JobState Lease held by another holder; trying again", "after", lockRetry, "error", err.Error())
		return ctrl.Result{RequeueAfter: lockRetry}, nil
	}
	return res, err
}

func (r *JobStateReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	js := &jobstatev1alpha1.JobState{}
	if err := r.Get(ctx, req.NamespacedName, js); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !js.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if deleted, err := r.reconcileTTL(ctx, js); err != nil || deleted {
		return ctrl.Result{}, err
	}
	if js.Spec.EventStreamRef != nil {
		if err := r.reconcileProjection(ctx, js); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.reconcileStreamTimers(ctx, js); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: nextCheck(js, r.Clock.Now())}, nil
	}
	if err := r.reconcileStatus(ctx, js); err != nil {
		return ctrl.Result{}, err
	}
	// The write may have waited (for a Lease, for retries): time from now.
	return ctrl.Result{RequeueAfter: nextCheck(js, r.Clock.Now())}, nil
}

// reconcileStatus writes the transitions due now (applyDueTransitions)
// through the update library, so a worker's concurrent write is re-read and
// kept, never overwritten; then records an Event per transition (the
// recorder sends it in the background).
func (r *JobStateReconciler) reconcileStatus(ctx context.Context, js *jobstatev1alpha1.JobState) error {
	// Decide on the cached copy first: when nothing is due there is nothing
	// to write and no need for a live read.
	preview := js.DeepCopy()
	applyDueTransitions(preview, r.Clock.Now())
	if equality.Semantic.DeepEqual(preview.Status, js.Status) {
		return nil
	}
	// Write from the cached copy, with its resourceVersion as the
	// precondition: a new JobState costs one write, not a live read and a
	// write. A stale cache costs a conflict, then the transitions are
	// decided again on the live object.
	var done []transition
	written, err := r.jobs.UpdateFrom(ctx, js, func(js *jobstatev1alpha1.JobState) error {
		done = applyDueTransitions(js, r.Clock.Now())
		return nil
	})
	if err != nil {
		return fmt.Errorf("updating status: %w", err)
	}
	written.DeepCopyInto(js)
	for _, t := range done {
		logf.FromContext(ctx).Info("JobState transition", "phase", js.Status.Phase, "reason", t.reason, "attempt", js.Status.Attempt)
		r.Recorder.Eventf(js, nil, t.eventType, t.reason, "Reconcile", t.message)
	}
	return nil
}

// reconcileProjection applies the events of spec.eventStreamRef that the
// status has not seen yet, a batch per status write. Each write carries the
// state and the position of its last event (jobstate.Project), with the
// resourceVersion precondition: a restart resumes after the last event
// written and applies nothing twice. Timers act through the stream too
// (reconcileStreamTimers).
func (r *JobStateReconciler) reconcileProjection(ctx context.Context, js *jobstatev1alpha1.JobState) error {
	key := streamKey(js)
	for ctx.Err() == nil {
		events, err := r.streams.Read(ctx, key, jobstate.ProjectedPosition(js)+1, r.ProjectionBatch)
		if errors.Is(err, stream.ErrMalformed) {
			// Committed text cannot be repaired: retrying cannot help.
			return reconcile.TerminalError(fmt.Errorf("projecting from stream %s: %w", key, err))
		}
		if err != nil && !errors.Is(err, stream.ErrStreamNotFound) {
			return fmt.Errorf("projecting from stream %s: %w", key, err)
		}
		if len(events) == 0 && js.Status.Phase != "" {
			return nil
		}
		written, err := r.jobs.Update(ctx, client.ObjectKeyFromObject(js), func(js *jobstatev1alpha1.JobState) error {
			return jobstate.Project(js, events)
		})
		if errors.Is(err, jobstate.ErrProjectionGap) {
			// Retention removed events the status never saw.
			return reconcile.TerminalError(fmt.Errorf("projecting from stream %s: %w", key, err))
		}
		if err != nil {
			return fmt.Errorf("projecting from stream %s: %w", key, err)
		}
		written.DeepCopyInto(js)
		if len(events) > 0 {
			logf.FromContext(ctx).V(1).Info("Projected stream events", "stream", key.Name, "position", jobstate.ProjectedPosition(js), "phase", js.Status.Phase)
		}
		if len(events) < r.ProjectionBatch {
			return nil
		}
	}
	return ctx.Err()
}

// reconcileStreamTimers appends the event an event-sourced JobState's
// timers call for (Cancelled for spec.cancel, DeadlineExceeded, Lost after
// the heartbeat timeout), expecting the stream at the position the status
// was projected from: the decision was made on exactly that state, and an
// event that arrived since (a heartbeat) makes it a conflict, decided again
// once projected. The watch on the stream brings the event back to be
// projected.
func (r *JobStateReconciler) reconcileStreamTimers(ctx context.Context, js *jobstatev1alpha1.JobState) error {
	ev, due := dueEvent(js, r.Clock.Now())
	if !due {
		return nil
	}
	key := streamKey(js)
	projected := jobstate.ProjectedPosition(js)
	_, err := r.streams.Append(ctx, key, []stream.EventData{ev}, stream.ExpectVersion(projected))
	var conflict *stream.VersionConflictError
	if errors.As(err, &conflict) && conflict.Actual < projected {
		// Retrying cannot help, and the overdue timer would requeue at once.
		return reconcile.TerminalError(fmt.Errorf("stream %s is at version %d, behind the %d events already projected: it was deleted or created again", key, conflict.Actual, projected+1))
	}
	if conflict != nil {
		return nil // newer events first; the watch brings them
	}
	if err != nil {
		return fmt.Errorf("appending %s to stream %s: %w", ev.Type, key, err)
	}
	logf.FromContext(ctx).Info("Appended a timer event", "stream", key.Name, "type", ev.Type, "attempt", js.Status.Attempt)
	return nil
}

// streamKey names the stream an event-sourced JobState is projected from
// (spec.eventStreamRef, in the JobState's namespace).
func streamKey(js *jobstatev1alpha1.JobState) client.ObjectKey {
	return client.ObjectKey{Namespace: js.Namespace, Name: js.Spec.EventStreamRef.Name}
}

// jobsForStream maps an EventStream to the JobStates projected from it.
func (r *JobStateReconciler) jobsForStream(ctx context.Context, es client.Object) []reconcile.Request {
	var list jobstatev1alpha1.JobStateList
	if err := r.List(ctx, &list, client.InNamespace(es.GetNamespace()), client.MatchingFields{eventStreamRefIndex: es.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Listing JobStates projected from an EventStream", "eventStream", klog.KObj(es))
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}

// eventStreamRefIndex indexes JobStates by spec.eventStreamRef.name.
const eventStreamRefIndex = "spec.eventStreamRef.name"

func indexEventStreamRef(o client.Object) []string {
	if ref := o.(*jobstatev1alpha1.JobState).Spec.EventStreamRef; ref != nil {
		return []string{ref.Name}
	}
	return nil
}

// reconcileTTL deletes a finished JobState once its TTL has passed. The
// delete is preconditioned on the resourceVersion the decision was made on.
func (r *JobStateReconciler) reconcileTTL(ctx context.Context, js *jobstatev1alpha1.JobState) (bool, error) {
	expiry, ok := ttlExpiry(js)
	if !ok || r.Clock.Now().Before(expiry) {
		return false, nil
	}
	uid, rv := js.UID, js.ResourceVersion
	if err := r.Delete(ctx, js, client.Preconditions{UID: &uid, ResourceVersion: &rv}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting after ttlSecondsAfterFinished: %w", err)
	}
	logf.FromContext(ctx).Info("Deleted finished JobState after its TTL", "ttlSecondsAfterFinished", *js.Spec.TTLSecondsAfterFinished)
	return true, nil
}

// SetupWithManager registers the reconciler with mgr, defaulting APIReader
// and Recorder from it.
func (r *JobStateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("jobstate-controller")
	}
	if r.LeaseClient == nil {
		var err error
		if r.LeaseClient, err = client.NewWithWatch(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()}); err != nil {
			return err
		}
	}
	if err := r.init(); err != nil {
		return err
	}
	if err := mgr.Add(&stateMetrics{reader: mgr.GetCache(), clock: r.Clock}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &jobstatev1alpha1.JobState{}, eventStreamRefIndex, indexEventStreamRef); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&jobstatev1alpha1.JobState{}).
		Watches(&jobstatev1alpha1.EventStream{}, handler.EnqueueRequestsFromMapFunc(r.jobsForStream)).
		Named("jobstate").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

// init validates the fields and builds the stream and JobState clients.
func (r *JobStateReconciler) init() error {
	if r.Client == nil || r.APIReader == nil || r.Recorder == nil || r.LeaseClient == nil {
		return fmt.Errorf("JobStateReconciler needs Client, APIReader, LeaseClient and Recorder")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.ProjectionBatch <= 0 {
		r.ProjectionBatch = DefaultProjectionBatch
	}
	var err error
	// A timer's append gives up after timerAppendTimeout (a stream whose
	// head cannot be sealed must not hold the reconcile workers of every
	// namespace for the default 30 s); the reconcile is retried.
	r.streams, err = stream.New(r.Client, stream.Options{Clock: r.Clock, Update: update.Options{LiveReader: r.APIReader, Timeout: timerAppendTimeout}})
	if err != nil {
		return err
	}
	r.jobs, err = jobstate.New(r.Client, jobstate.Options{
		Identity:    ControllerIdentity,
		Clock:       r.Clock,
		Update:      update.Options{LiveReader: r.APIReader},
		Lease:       lease.Options{Clock: r.Clock, AcquireTimeout: lockWait},
		LeaseClient: r.LeaseClient,
	})
	return err
}
