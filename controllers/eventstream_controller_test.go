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
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// streamHarness drives the EventStream reconciler by hand, with a fake
// clock that also stamps the appended events' times.
type streamHarness struct {
	t        *testing.T
	clock    *clocktesting.FakeClock
	r        *EventStreamReconciler
	client   *stream.Client
	key      client.ObjectKey
	recorder *events.FakeRecorder
}

func newStreamHarness(t *testing.T) *streamHarness {
	t.Helper()
	h := &streamHarness{t: t, clock: clocktesting.NewFakeClock(t0)}
	h.recorder = events.NewFakeRecorder(100)
	h.r = &EventStreamReconciler{Client: env.Client, APIReader: env.Client, Clock: h.clock, Recorder: h.recorder}
	if err := h.r.init(); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	var err error
	if h.client, err = stream.New(env.Client, stream.Options{Clock: h.clock, Sealer: true}); err != nil {
		t.Fatal(err)
	}
	h.key = client.ObjectKey{Namespace: ns, Name: "orders"}
	return h
}

func (h *streamHarness) append(n int) {
	h.t.Helper()
	for i := range n {
		if _, err := h.client.Append(h.t.Context(), h.key, []stream.EventData{{Type: "Placed", Data: map[string]int{"order": i}}}, stream.AppendOptions{}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *streamHarness) reconcile() ctrl.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(h.t.Context(), ctrl.Request{NamespacedName: h.key})
	if err != nil {
		h.t.Fatalf("reconcile: %v", err)
	}
	return res
}

func (h *streamHarness) get() *jobstatev1alpha1.EventStream {
	h.t.Helper()
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(h.t.Context(), h.key, es); err != nil {
		h.t.Fatal(err)
	}
	return es
}

// sealedStream records the latest append's commit revision, as the
// controller does before a status write, so that a spec edit is accepted (the
// CRD refuses other writes until then), and returns the stream.
func (h *streamHarness) sealedStream() *jobstatev1alpha1.EventStream {
	h.t.Helper()
	if _, _, err := h.client.Seal(h.t.Context(), h.key); err != nil {
		h.t.Fatal(err)
	}
	return h.get()
}

func (h *streamHarness) read() []stream.RecordedEvent {
	h.t.Helper()
	events, err := h.client.Read(h.t.Context(), h.key, 0, 1<<20)
	if err != nil {
		h.t.Fatal(err)
	}
	return events
}

func TestEventStreamStatus(t *testing.T) {
	h := newStreamHarness(t)
	h.append(300)
	h.reconcile()
	es := h.get()
	segs, err := stream.ListSegments(t.Context(), env.Client, es)
	if err != nil {
		t.Fatal(err)
	}
	st := es.Status
	if st.Version != 299 || st.Events != 300 || st.FirstPosition != 0 || int(st.Segments) != len(segs) || len(segs) == 0 || st.Bytes < 300*100 {
		t.Fatalf("status = %+v with %d segments", st, len(segs))
	}
	if c := meta.FindStatusCondition(st.Conditions, jobstatev1alpha1.ConditionSegmentsComplete); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("SegmentsComplete = %+v", c)
	}
	// The reconciler recorded the head's latest commit revision before
	// writing status; it seals only a head past the sealing size.
	if stream.Unstamped(es) || len(es.Head.Events.Items) > 48 {
		t.Fatalf("head after reconcile: unstamped %v, %d events", stream.Unstamped(es), len(es.Head.Events.Items))
	}
	// Within StatusInterval nothing is written; the reconciler comes back.
	h.append(1)
	if res := h.reconcile(); res.RequeueAfter <= 0 || res.RequeueAfter > time.Second {
		t.Fatalf("RequeueAfter = %v within the status interval", res.RequeueAfter)
	}
	if got := h.get().Status.Version; got != 299 {
		t.Fatalf("status written within the interval: version %d", got)
	}
	h.clock.Step(2 * time.Second)
	h.reconcile()
	if got := h.get().Status.Version; got != 300 {
		t.Fatalf("status.version = %d, want 300", got)
	}
	events := h.read()
	if len(events) != 301 {
		t.Fatalf("read %d events", len(events))
	}

	// Removing a segment by hand is reported.
	seg := &jobstatev1alpha1.EventSegment{}
	seg.Namespace, seg.Name = es.Namespace, segs[1].Name
	if err := env.Client.Delete(t.Context(), seg); err != nil {
		t.Fatal(err)
	}
	h.clock.Step(2 * time.Second)
	h.reconcile()
	c := meta.FindStatusCondition(h.get().Status.Conditions, jobstatev1alpha1.ConditionSegmentsComplete)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != jobstatev1alpha1.ReasonSegmentMissing {
		t.Fatalf("SegmentsComplete after deleting %s = %+v", segs[1].Name, c)
	}
	if _, err := h.client.Read(t.Context(), h.key, 0, 1<<20); err == nil {
		t.Fatal("reading across a deleted segment succeeded")
	}
}

// The trap of deriving globalPosition from revisions: a status write
// between an append and the next write must not change the global
// positions of that append's events.
func TestStatusWritesKeepGlobalPositions(t *testing.T) {
	h := newStreamHarness(t)
	h.append(5)
	before := h.read()
	h.clock.Step(2 * time.Second)
	h.reconcile()
	h.append(1)
	h.clock.Step(2 * time.Second)
	h.reconcile()
	after := h.read()
	for i, e := range before {
		if after[i].GlobalPosition != e.GlobalPosition {
			t.Fatalf("event %d: global position %s before the status writes, %s after", i, e.GlobalPosition, after[i].GlobalPosition)
		}
	}
	for i := 1; i < len(after); i++ {
		if after[i-1].GlobalPosition.Compare(after[i].GlobalPosition) >= 0 {
			t.Fatalf("global positions out of order at %d: %s, %s", i, after[i-1].GlobalPosition, after[i].GlobalPosition)
		}
	}
}

func TestEventStreamRetention(t *testing.T) {
	h := newStreamHarness(t)
	h.append(200)
	h.clock.Step(time.Hour)
	h.append(200)
	es := h.sealedStream()
	es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](150)}
	if err := env.Client.Update(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	h.reconcile()
	st := h.get().Status
	// Whole segments only: the segment holding position 250 (the 150th
	// newest) is kept, the ones before it are not.
	if st.FirstPosition > 250 || st.FirstPosition == 0 || st.Events != 400-st.FirstPosition {
		t.Fatalf("after maxEvents 150: status %+v", st)
	}
	events := h.read()
	if len(events) != int(st.Events) || events[0].Position != st.FirstPosition || events[len(events)-1].Position != 399 {
		t.Fatalf("read %d events from %d after retention, status says %d from %d", len(events), events[0].Position, st.Events, st.FirstPosition)
	}
	if c := meta.FindStatusCondition(st.Conditions, jobstatev1alpha1.ConditionSegmentsComplete); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("SegmentsComplete after retention = %+v", c)
	}

}

// TestRetentionWaitsForProjection: retention keeps the segments holding
// events that a JobState projected from the stream has not applied yet
// (here: up to position 99 of 400), and looks again within StatusInterval;
// once the projection has moved on, the segments go as maxEvents says.
// Before, retention deleted them, and the JobState's projection stopped for
// good at the gap.
func TestRetentionWaitsForProjection(t *testing.T) {
	h := newStreamHarness(t)
	h.append(400)
	es := h.sealedStream()
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: h.key.Namespace, Name: "projected"}}
	js.Spec.EventStreamRef = &jobstatev1alpha1.EventStreamReference{Name: h.key.Name}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	if err := lifecycle.DoInitialize(js, t0); err != nil {
		t.Fatal(err)
	}
	project := func(position int64) {
		t.Helper()
		js.Status.Projection = &jobstatev1alpha1.ProjectionStatus{Position: ptr.To(position)}
		if err := env.Client.Status().Update(t.Context(), js); err != nil {
			t.Fatal(err)
		}
	}
	project(99)
	es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](150)}
	if err := env.Client.Update(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	res := h.reconcile()
	if first := h.get().Status.FirstPosition; first > 100 {
		t.Fatalf("retention removed events up to %d, but the JobState has projected only up to 99", first-1)
	}
	if res.RequeueAfter == 0 || res.RequeueAfter > h.r.StatusInterval {
		t.Errorf("RequeueAfter = %s, want at most StatusInterval (%s) while retention waits", res.RequeueAfter, h.r.StatusInterval)
	}
	project(399)
	h.clock.Step(h.r.StatusInterval)
	h.reconcile()
	if first := h.get().Status.FirstPosition; first <= 100 || first > 250 {
		t.Fatalf("after the projection moved on: first position %d, want past 100 and at most 250 (maxEvents 150)", first)
	}
}

func TestEventStreamRetentionByAge(t *testing.T) {
	h := newStreamHarness(t)
	h.append(200)
	h.clock.Step(time.Hour)
	h.append(200)
	es := h.sealedStream()
	es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxAge: &metav1.Duration{Duration: 90 * time.Minute}}
	if err := env.Client.Update(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	h.clock.Step(time.Hour) // old events 2h old, new ones 1h
	res := h.reconcile()
	st := h.get().Status
	// The segment that holds the last old events and the first new ones is
	// kept; every one before it is gone.
	if st.FirstPosition <= 150 || st.FirstPosition > 200 {
		t.Fatalf("after maxAge: first kept position %d, want the segment where the newer events begin", st.FirstPosition)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 31*time.Minute {
		t.Fatalf("RequeueAfter = %v, want when the next segment expires (30m)", res.RequeueAfter)
	}
}

// Workers cannot seal (their role has no create on eventsegments): the
// EventStream controller, running in a manager as the sealer, seals as
// their appends fill the head, and none of 4 × 100 concurrent appends
// fails or is lost.
func TestTheControllerSealsForWorkers(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	stop := runManager(t, func(mgr ctrl.Manager) error {
		return (&EventStreamReconciler{Client: mgr.GetClient(), Recorder: events.NewFakeRecorder(100)}).SetupWithManager(mgr)
	})
	defer stop()

	worker, err := stream.New(env.ClientAs(t, ns, "worker", "worker_role.yaml"), stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	busy := client.ObjectKey{Namespace: ns, Name: "busy"}
	const writers, each = 4, 100
	var failed atomic.Int32
	var appenders sync.WaitGroup
	for w := range writers {
		appenders.Go(func() {
			for i := range each {
				if _, err := worker.Append(ctx, busy, []stream.EventData{{Type: "Ticked", Data: map[string]int{"w": w, "i": i}}}, stream.AppendOptions{}); err != nil {
					failed.Add(1)
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
			}
		})
	}
	appenders.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d appends failed", failed.Load())
	}
	read, err := worker.Read(ctx, busy, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, e := range read {
		if e.Position != int64(i) || seen[string(e.Data)] {
			t.Fatalf("event %d: position %d, data %s (seen before: %v)", i, e.Position, e.Data, seen[string(e.Data)])
		}
		seen[string(e.Data)] = true
	}
	if len(read) != writers*each {
		t.Fatalf("read %d events, want exactly %d", len(read), writers*each)
	}
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(ctx, busy, es); err != nil {
		t.Fatal(err)
	}
	segs, err := stream.ListSegments(ctx, env.Client, es)
	if err != nil || len(segs) == 0 || es.Head.Sealed == nil {
		t.Fatalf("the controller sealed nothing: %d segments, head.sealed %+v, %v", len(segs), es.Head.Sealed, err)
	}
	t.Logf("%d segments, %d events left in the head", len(segs), len(es.Head.Events.Items))
}

// A stream appended to slowly — a status write between every two appends
// — still gets segments of a batch of events: recording the latest commit
// revision before a status write does not force a seal (issue 9: one
// segment per event at one append a second).
func TestSlowAppendsMakeFullSegments(t *testing.T) {
	h := newStreamHarness(t)
	worker, err := stream.New(env.Client, stream.Options{Clock: h.clock}) // appends, never seals
	if err != nil {
		t.Fatal(err)
	}
	const appends = 200
	for i := range appends {
		if _, err := worker.Append(t.Context(), h.key, []stream.EventData{{Type: "Placed", Data: map[string]int{"order": i}}}, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		h.clock.Step(2 * h.r.StatusInterval)
		h.reconcile()
	}
	es := h.get()
	if es.Status.Version != appends-1 {
		t.Fatalf("status version %d after %d appends: the reconciler did not write status every time", es.Status.Version, appends)
	}
	segs, err := stream.ListSegments(t.Context(), env.Client, es)
	if err != nil {
		t.Fatal(err)
	}
	if max := (appends + 31) / 32; len(segs) > max {
		t.Fatalf("%d segments for %d slow appends, want at most %d", len(segs), appends, max)
	}
	for i, e := range h.read() {
		if e.Position != int64(i) || string(e.Data) != fmt.Sprintf(`{"order":%d}`, i) {
			t.Fatalf("event %d: position %d, data %s", i, e.Position, e.Data)
		}
	}
	t.Logf("%d segments, %d events in the head", len(segs), len(es.Head.Events.Items))
}
