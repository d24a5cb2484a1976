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
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// DefaultStatusInterval is EventStreamReconciler.StatusInterval's default.
const DefaultStatusInterval = time.Second

// EventStreamReconciler keeps an EventStream's status (version, events,
// segments, bytes, conditions), seals its head whenever it passes the
// sealing size (workers cannot seal), and applies spec.retention by
// deleting the oldest sealed segments.
type EventStreamReconciler struct {
	client.Client
	// APIReader reads live from the API server (mgr.GetAPIReader()).
	APIReader client.Reader
	// Clock is the time source. Default: the real clock.
	Clock clock.PassiveClock
	// StatusInterval is the least time between two status writes of one
	// stream: on a busy stream the status lags by up to this much rather
	// than compete with the appends. Default DefaultStatusInterval.
	StatusInterval time.Duration
	// Recorder records Events on streams. Default: the manager's.
	Recorder events.EventRecorder
	// MaxConcurrentReconciles is how many streams are reconciled at once
	// (never one stream twice at once). Zero: the manager's default (one).
	// What the reconciler shares between streams is safe for concurrent
	// use: the clients, and attempts under mu.
	MaxConcurrentReconciles int

	// streams seals the streams of every namespace, as the sealer.
	streams *stream.Client
	status  *update.Updater[*jobstatev1alpha1.EventStream]

	// attempts: when each stream's status was last attempted. On a busy
	// stream the status write keeps losing to appends, and every append
	// starts a reconcile; this keeps the controller to one try (one Seal
	// write) per StatusInterval.
	mu       sync.Mutex
	attempts map[client.ObjectKey]time.Time
}

// +kubebuilder:rbac:groups=state.jobstate.dev,resources=eventstreams,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=eventstreams/status,verbs=update
// Segments set blockOwnerDeletion on their stream.
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=eventstreams/finalizers,verbs=update
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=eventsegments,verbs=get;list;create;delete
// Retention keeps what the JobStates projected from a stream still need.
// +kubebuilder:rbac:groups=state.jobstate.dev,resources=jobstates,verbs=get;list;watch
// An Event repeated on an unchanged object becomes a series, a patch.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// errUnstamped: an append landed between Seal and the status write.
var errUnstamped = errors.New("the stream was appended to since it was sealed")

// Reconcile brings one EventStream's status and retention up to date.
func (r *EventStreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	es := &jobstatev1alpha1.EventStream{}
	if err := r.Get(ctx, req.NamespacedName, es); err != nil {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !es.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, r.reconcileDelete(ctx, es)
	}
	if err := stream.CheckStored(es); err != nil {
		return ctrl.Result{}, r.reconcileMalformed(ctx, es, err)
	}
	now := r.Clock.Now()
	if wait := r.statusDue(req.NamespacedName, es, now); wait > 0 {
		// Appends wait for a full head: sealing is never throttled.
		if err := r.reconcileSeal(ctx, es); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	es, err := r.seal(ctx, es)
	if errors.Is(err, stream.ErrStreamNotFound) {
		return ctrl.Result{}, nil // deleted meanwhile
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	segs, retentionCheck, err := r.reconcileRetention(ctx, es, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writeStatus(ctx, es, streamStatus(es, segs, nil)); errors.Is(err, errUnstamped) {
		return ctrl.Result{RequeueAfter: r.StatusInterval}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: retentionCheck}, nil
}

// reconcileSeal seals es if its head has grown past the sealing size.
func (r *EventStreamReconciler) reconcileSeal(ctx context.Context, es *jobstatev1alpha1.EventStream) error {
	if !stream.NeedsSeal(es) {
		return nil
	}
	if _, err := r.seal(ctx, es); err != nil && !errors.Is(err, stream.ErrStreamNotFound) {
		return err
	}
	return nil
}

// reconcileDelete records the latest append's commit revision of a stream
// being deleted: with foreground deletion the garbage collector must
// remove its finalizer, a write the CRD refuses while that revision is
// unrecorded.
func (r *EventStreamReconciler) reconcileDelete(ctx context.Context, es *jobstatev1alpha1.EventStream) error {
	if !stream.Unstamped(es) || stream.CheckStored(es) != nil {
		return nil
	}
	if _, err := r.seal(ctx, es); err != nil && !errors.Is(err, stream.ErrStreamNotFound) {
		return err
	}
	return nil
}

// reconcileMalformed reports a stream whose head does not decode (cause, a
// *stream.MalformedError): a Warning Event naming the field and the line,
// and WellFormed False in its status unless the CRD refuses the write (as
// it does while the head's latest write is unstamped). Nothing else is
// done to it, and nothing is retried: no write by this controller can
// repair committed text, and the stream's other objects are left as they
// are.
func (r *EventStreamReconciler) reconcileMalformed(ctx context.Context, es *jobstatev1alpha1.EventStream, cause error) error {
	logf.FromContext(ctx).Info("Stream is malformed; it cannot be read or appended to", "reason", cause.Error())
	r.Recorder.Eventf(es, nil, corev1.EventTypeWarning, jobstatev1alpha1.ReasonMalformedText, "Check", "%s", cause.Error())
	segs, err := stream.ListSegments(ctx, r.APIReader, es)
	if err != nil {
		return fmt.Errorf("listing segments: %w", err)
	}
	desired := streamStatus(es, segs, cause)
	if statusEqual(desired, es.Status) {
		return nil
	}
	err = r.status.Update(ctx, es.DeepCopy(), func(es *jobstatev1alpha1.EventStream) error {
		es.Status = desired
		es.Status.LastUpdateTime = &metav1.Time{Time: r.Clock.Now()}
		return nil
	})
	if apierrors.IsInvalid(err) {
		// The head's latest write left its commit revision unrecorded, so
		// the CRD refuses every other write; the Event is the report.
		return nil
	}
	return err
}

// statusDue says how long to wait before the stream's status may be
// written again (zero: now), and records an attempt when it is due. A
// busy stream's status write keeps losing to appends, and every append
// starts a reconcile; this keeps the controller to one try (one Seal
// write) per StatusInterval.
func (r *EventStreamReconciler) statusDue(key client.ObjectKey, es *jobstatev1alpha1.EventStream, now time.Time) time.Duration {
	if last := es.Status.LastUpdateTime; last != nil && now.Sub(last.Time) < r.StatusInterval {
		return r.StatusInterval - now.Sub(last.Time)
	}
	return r.throttle(key, now)
}

// throttle records an attempt at now, or says how long to wait for the
// next one.
func (r *EventStreamReconciler) throttle(key client.ObjectKey, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.attempts[key]; ok && now.Sub(last) < r.StatusInterval {
		return r.StatusInterval - now.Sub(last)
	}
	r.attempts[key] = now
	return 0
}

func (r *EventStreamReconciler) forget(key client.ObjectKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.attempts, key)
}

// seal seals the head of a stream (see stream.Client.Seal): a status write
// must not directly follow an append. It returns the stream as stored now.
func (r *EventStreamReconciler) seal(ctx context.Context, es *jobstatev1alpha1.EventStream) (*jobstatev1alpha1.EventStream, error) {
	sealed, _, err := r.streams.Seal(ctx, client.ObjectKeyFromObject(es))
	if err != nil {
		return nil, fmt.Errorf("sealing the head: %w", err)
	}
	return sealed, nil
}

// reconcileRetention deletes the oldest segments that spec.retention no
// longer keeps, and returns the segments left and when to look again
// (zero: no time-based retention pending).
func (r *EventStreamReconciler) reconcileRetention(ctx context.Context, es *jobstatev1alpha1.EventStream, now time.Time) ([]stream.SegmentRef, time.Duration, error) {
	segs, err := stream.ListSegments(ctx, r.APIReader, es)
	if err != nil {
		return nil, 0, fmt.Errorf("listing segments: %w", err)
	}
	expired, next := expiredSegments(es, segs, now)
	if expired > 0 {
		held, err := r.heldByProjection(ctx, es, segs[:expired])
		if err != nil {
			return segs, 0, err
		}
		if held > 0 {
			expired -= held
			// Look again soon: the projection moves on without touching
			// the stream.
			next = min(cmp.Or(next, r.StatusInterval), r.StatusInterval)
		}
	}
	for _, s := range segs[:expired] {
		uid := s.UID
		seg := &jobstatev1alpha1.EventSegment{}
		seg.Namespace, seg.Name = es.Namespace, s.Name
		err := r.Delete(ctx, seg, client.Preconditions{UID: &uid})
		if client.IgnoreNotFound(err) != nil {
			return segs, 0, fmt.Errorf("deleting segment %s for retention: %w", s.Name, err)
		}
		if err == nil {
			metrics.SegmentsDeleted(metrics.SegmentRetention).Inc()
		}
		logf.FromContext(ctx).Info("Deleted segment for retention", "segment", s.Name, "first", s.First, "last", s.Last)
	}
	return segs[expired:], next, nil
}

// heldByProjection returns how many of the expired segments (the newest
// first) hold events that a JobState projected from es has not applied
// yet: retention keeps them, or the JobState could never be projected (its
// projection would find a gap). It reads the JobStates of es's namespace
// from the manager's cache; one behind keeps more, never less.
func (r *EventStreamReconciler) heldByProjection(ctx context.Context, es *jobstatev1alpha1.EventStream, expired []stream.SegmentRef) (int, error) {
	var jobs jobstatev1alpha1.JobStateList
	if err := r.List(ctx, &jobs, client.InNamespace(es.Namespace)); err != nil {
		return 0, fmt.Errorf("listing the JobStates projected from the stream: %w", err)
	}
	floor := int64(math.MaxInt64) // the first position some projection still needs
	for i := range jobs.Items {
		if ref := jobs.Items[i].Spec.EventStreamRef; ref != nil && ref.Name == es.Name {
			floor = min(floor, jobstate.ProjectedPosition(&jobs.Items[i])+1)
		}
	}
	held := 0
	for i := len(expired) - 1; i >= 0 && expired[i].Last >= floor; i-- {
		held++
	}
	if held > 0 {
		logf.FromContext(ctx).Info("Retention waits for projection", "segments", held, "projectedUpTo", floor-1)
	}
	return held, nil
}

// expiredSegments returns how many of the oldest segments retention
// removes, and when the next one expires by age (zero if never). Only a
// prefix is removed, so what is kept stays contiguous.
func expiredSegments(es *jobstatev1alpha1.EventStream, segs []stream.SegmentRef, now time.Time) (int, time.Duration) {
	ret := es.Spec.Retention
	if ret == nil || es.Head == nil {
		return 0, 0
	}
	n := 0
	for _, s := range segs {
		byCount := ret.MaxEvents != nil && s.Last < es.Head.Version+1-*ret.MaxEvents
		byAge := ret.MaxAge != nil && !s.LastEventTime.IsZero() && now.Sub(s.LastEventTime) > ret.MaxAge.Duration
		if !byCount && !byAge {
			break
		}
		n++
	}
	var next time.Duration
	if ret.MaxAge != nil && n < len(segs) && !segs[n].LastEventTime.IsZero() {
		next = segs[n].LastEventTime.Add(ret.MaxAge.Duration).Sub(now) + time.Second
	}
	return n, next
}

// streamStatus computes the status of es from its head and segments;
// malformed is what stream.CheckStored found wrong with the head, or nil.
func streamStatus(es *jobstatev1alpha1.EventStream, segs []stream.SegmentRef, malformed error) jobstatev1alpha1.EventStreamStatus {
	st := jobstatev1alpha1.EventStreamStatus{Version: stream.NoStream, Conditions: es.Status.Conditions}
	h := es.Head
	if h == nil {
		h = &jobstatev1alpha1.EventStreamHead{Version: stream.NoStream}
	}
	st.Version = h.Version
	st.FirstPosition = h.First
	st.Bytes = stream.HeadBytes(h)
	st.Segments = int32(len(segs))
	complete, message := true, "Every sealed event is in a segment"
	next := h.First
	if len(segs) > 0 {
		st.FirstPosition = segs[0].First
		next = segs[0].First
		if segs[0].First > 0 && es.Spec.Retention == nil {
			complete, message = false, fmt.Sprintf("Events 0 to %d are in no segment, and there is no retention policy", segs[0].First-1)
		}
	} else if h.First > 0 && es.Spec.Retention == nil {
		complete, message = false, fmt.Sprintf("Events 0 to %d are in no segment, and there is no retention policy", h.First-1)
	}
	for _, s := range segs {
		st.Bytes += s.Bytes
		if s.First != next && complete {
			complete, message = false, fmt.Sprintf("Events %d to %d are in no segment", next, s.First-1)
		}
		next = s.Last + 1
	}
	if next != h.First && complete {
		complete, message = false, fmt.Sprintf("Events %d to %d are in no segment", next, h.First-1)
	}
	if h.Version >= 0 {
		st.Events = h.Version + 1 - st.FirstPosition
	}
	cond := metav1.Condition{Type: jobstatev1alpha1.ConditionSegmentsComplete, Status: metav1.ConditionTrue, Reason: jobstatev1alpha1.ReasonSegmentsFound, Message: message, ObservedGeneration: es.Generation}
	if !complete {
		cond.Status, cond.Reason = metav1.ConditionFalse, jobstatev1alpha1.ReasonSegmentMissing
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	wellFormed := metav1.Condition{Type: jobstatev1alpha1.ConditionWellFormed, Status: metav1.ConditionTrue, Reason: jobstatev1alpha1.ReasonDecoded, Message: "The head's events and commits decode and line up", ObservedGeneration: es.Generation}
	if malformed != nil {
		wellFormed.Status, wellFormed.Reason, wellFormed.Message = metav1.ConditionFalse, jobstatev1alpha1.ReasonMalformedText, malformed.Error()
	}
	meta.SetStatusCondition(&st.Conditions, wellFormed)
	return st
}

// statusEqual compares statuses without their update time.
func statusEqual(a, b jobstatev1alpha1.EventStreamStatus) bool {
	a.LastUpdateTime, b.LastUpdateTime = nil, nil
	return equality.Semantic.DeepEqual(a, b)
}

// writeStatus writes desired, unless es has it already, with the
// resourceVersion precondition of es, as sealed. An append since then
// makes it errUnstamped.
func (r *EventStreamReconciler) writeStatus(ctx context.Context, es *jobstatev1alpha1.EventStream, desired jobstatev1alpha1.EventStreamStatus) error {
	if statusEqual(desired, es.Status) {
		return nil
	}
	now := metav1.NewTime(r.Clock.Now())
	err := r.status.Update(ctx, es.DeepCopy(), func(es *jobstatev1alpha1.EventStream) error {
		if stream.Unstamped(es) {
			return errUnstamped
		}
		es.Status = desired
		es.Status.LastUpdateTime = &now
		return nil
	})
	if err != nil && !errors.Is(err, errUnstamped) {
		return fmt.Errorf("updating status: %w", err)
	}
	return err
}

// SetupWithManager registers the reconciler with mgr, defaulting APIReader
// and Recorder from it.
func (r *EventStreamReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("eventstream-controller")
	}
	if err := r.init(); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&jobstatev1alpha1.EventStream{}).
		Named("eventstream").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

// init validates the fields, applies defaults and builds the writers.
func (r *EventStreamReconciler) init() error {
	if r.Client == nil || r.APIReader == nil || r.Recorder == nil {
		return errors.New("EventStreamReconciler needs Client, APIReader and Recorder")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.StatusInterval == 0 {
		r.StatusInterval = DefaultStatusInterval
	}
	r.attempts = map[client.ObjectKey]time.Time{}
	var err error
	// The sealer: the controller's identity is the one config/admission
	// lets seal.
	r.streams, err = stream.New(r.Client, stream.Options{Clock: r.Clock, Update: update.Options{LiveReader: r.APIReader}, Sealer: true})
	if err != nil {
		return err
	}
	r.status, err = update.New[*jobstatev1alpha1.EventStream](r.Client, update.Options{Status: true, LiveReader: r.APIReader})
	return err
}
