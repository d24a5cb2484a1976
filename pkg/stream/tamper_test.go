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

package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// forged returns n events at positions first.. that nobody appended: the
// issue's "Withdrawn 1000000".
func forged(first int64, n int) []jobstatev1alpha1.Event {
	events := make([]jobstatev1alpha1.Event, n)
	for i := range events {
		events[i] = jobstatev1alpha1.Event{
			Position: first + int64(i), ID: uuid.NewString(), Type: "Withdrawn",
			Data: runtime.RawExtension{Raw: []byte(`{"amount":1000000}`)},
			Time: metav1.NewMicroTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		}
	}
	return events
}

// forgedSegment is a segment of es holding forged events [first, last], as
// a sealer's would look (label, owner), with annotations copied from like
// when given (so only the content differs).
func forgedSegment(es *jobstatev1alpha1.EventStream, first, last int64, like *jobstatev1alpha1.EventSegment) *jobstatev1alpha1.EventSegment {
	seg := &jobstatev1alpha1.EventSegment{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: es.Namespace, Name: stream.SegmentName(es.Name, first),
			Labels:          map[string]string{stream.LabelStreamUID: string(es.UID)},
			Annotations:     map[string]string{stream.AnnotationLast: fmt.Sprint(last)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(es, jobstatev1alpha1.GroupVersion.WithKind("EventStream"))},
		},
		Spec: jobstatev1alpha1.EventSegmentSpec{
			Stream: es.Name, First: first, Last: last,
			Events:  jobstatev1alpha1.NewEventLog(forged(first, int(last-first+1))...),
			Commits: jobstatev1alpha1.NewCommitLog(jobstatev1alpha1.Commit{From: first, Revision: "1"}),
		},
	}
	if like != nil {
		for k, v := range like.Annotations {
			seg.Annotations[k] = v
		}
	}
	return seg
}

// tamperFixture is a stream of 60 events appended by the sealer: segment
// 0..31 sealed, 32..59 in the head.
type tamperFixture struct {
	t        *testing.T
	ns, name string
	appended []string // ids, by position
	sealer   *stream.Client
}

// key names the fixture's stream.
func (f *tamperFixture) key() client.ObjectKey { return streamKey(f.ns, f.name) }

func newTamperFixture(t *testing.T, ns, name string) *tamperFixture {
	f := &tamperFixture{t: t, ns: ns, name: name, sealer: newClient(t)}
	f.append(60)
	if segs := f.segments(); len(segs) != 1 || segs[0].First != 0 || segs[0].Last != 31 {
		t.Fatalf("fixture: segments %+v, want 0..31", segs)
	}
	return f
}

func (f *tamperFixture) append(n int) {
	f.t.Helper()
	for _, r := range appendN(f.t, f.sealer, f.key(), n) {
		for range r.Positions {
			f.appended = append(f.appended, "")
		}
	}
	events := readAll(f.t, newClient(f.t), f.key())
	for i, e := range events {
		f.appended[i] = e.ID
	}
}

func (f *tamperFixture) stream() *jobstatev1alpha1.EventStream {
	f.t.Helper()
	es := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(f.t.Context(), client.ObjectKey{Namespace: f.ns, Name: f.name}, es); err != nil {
		f.t.Fatal(err)
	}
	return es
}

func (f *tamperFixture) segments() []stream.SegmentRef {
	f.t.Helper()
	segs, err := stream.ListSegments(f.t.Context(), env.Client, f.stream())
	if err != nil {
		f.t.Fatal(err)
	}
	return segs
}

func (f *tamperFixture) segment(first int64) *jobstatev1alpha1.EventSegment {
	f.t.Helper()
	seg := &jobstatev1alpha1.EventSegment{}
	if err := env.Client.Get(f.t.Context(), client.ObjectKey{Namespace: f.ns, Name: stream.SegmentName(f.name, first)}, seg); err != nil {
		f.t.Fatal(err)
	}
	return seg
}

// intact fails unless a fresh client reads exactly the appended events.
func (f *tamperFixture) intact() {
	f.t.Helper()
	events := readAll(f.t, newClient(f.t), f.key())
	if len(events) != len(f.appended) {
		f.t.Fatalf("a fresh client reads %d events, %d were appended", len(events), len(f.appended))
	}
	for i, e := range events {
		if e.Position != int64(i) || e.ID != f.appended[i] || e.Type != "Counted" {
			f.t.Fatalf("event %d reads as %s %s (position %d), appended %s", i, e.Type, e.ID, e.Position, f.appended[i])
		}
	}
}

// detected fails unless a fresh client's Read from 0 fails naming want,
// and a Read from the head's first event still serves what was appended.
func (f *tamperFixture) detected(want string) {
	f.t.Helper()
	c := newClient(f.t)
	if events, err := c.Read(f.t.Context(), f.key(), 0, 1000); err == nil || !strings.Contains(err.Error(), want) {
		f.t.Fatalf("Read of a tampered stream: %d events, %v; want an error naming %q", len(events), err, want)
	}
	first := f.stream().Head.First
	events, err := c.Read(f.t.Context(), f.key(), first, 1000)
	if err != nil || int64(len(events)) != int64(len(f.appended))-first || events[0].ID != f.appended[first] {
		f.t.Fatalf("Read from the head (%d): %d events, %v", first, len(events), err)
	}
}

// A worker holding the shipped role cannot put events into a stream's
// history: the API server refuses every way in, naming the rule, and the
// stream reads exactly as appended afterwards. A cluster admin who is not
// the sealer is refused the same.
func TestWorkersCannotRewriteHistory(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	f := newTamperFixture(t, ns, "account-1")
	worker := env.ClientAs(t, ns, "worker", "worker_role.yaml")
	editor := env.ClientAs(t, ns, "editor", "eventstream_editor_role.yaml")
	admin := env.AdminAs(t, "cluster-admin")
	es := f.stream()
	sealed := f.segment(0)
	for _, c := range []struct {
		who string
		c   client.Client
	}{{"worker", worker}, {"editor", editor}, {"cluster admin", admin}} {
		attempts := []struct {
			name string
			do   func() error
			want string
		}{
			{"pre-create the next segment", func() error { return c.c.Create(ctx, forgedSegment(es, 32, 63, nil)) }, "eventsegments"},
			{"create a segment far ahead", func() error { return c.c.Create(ctx, forgedSegment(es, 1000, 1031, nil)) }, "eventsegments"},
			{"delete a sealed segment", func() error { return c.c.Delete(ctx, sealed.DeepCopy()) }, "eventsegments"},
			{"label a sealed segment", func() error {
				seg := sealed.DeepCopy()
				seg.Labels["x"] = "y"
				return c.c.Update(ctx, seg)
			}, "eventsegments"},
			{"advance head.first", func() error {
				es := f.stream()
				chars, _ := jobstatev1alpha1.NewEventLog(es.Head.Events.Items[:8]...).Chars()
				es.Head.First += 8
				es.Head.SealedChars += chars
				es.Head.Events.Items = es.Head.Events.Items[8:]
				es.Head.Sealed.Chain = strings.Repeat("0", 64)
				es.Head.Unstamped.Base = "forged" // passes the CEL rule for unstamped appends
				return c.c.Update(ctx, es)
			}, "only the EventStream sealer"},
			{"edit sealedChars", func() error {
				es := f.stream()
				es.Head.SealedChars += 10
				es.Head.Unstamped.Base = "forged"
				return c.c.Update(ctx, es)
			}, "head.sealedChars"},
			{"remove head.sealed (to be read unverified)", func() error {
				es := f.stream()
				es.Head.Sealed = nil
				es.Head.Unstamped.Base = "forged"
				return c.c.Update(ctx, es)
			}, "head.sealed changes only when events are sealed"},
			{"rewrite a commit revision", func() error {
				es := f.stream()
				es.Head.Commits.Items[0].Revision = "1"
				es.Head.Unstamped.Base = "forged"
				return c.c.Update(ctx, es)
			}, "head.commits may only grow at its end"},
		}
		for _, a := range attempts {
			if c.who == "cluster admin" && strings.HasPrefix(a.name, "delete") {
				// Deleting puts no event into the history; an admin may,
				// and Read then reports the events as missing.
				continue
			}
			t.Run(c.who+"/"+a.name, func(t *testing.T) {
				err := a.do()
				if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(a.want)) {
					t.Fatalf("%v; want refused naming %q", err, a.want)
				}
				f.intact()
			})
		}
	}
	// Appends still seal as before, and the stream stays intact.
	f.append(60)
	f.intact()
}

// The sealer's own identity can write segments and move head.first — that
// is sealing — but what it writes outside a seal is never served: a
// segment it did not seal is replaced by the next seal, one far ahead is
// ignored, and a replaced sealed segment or an advanced head.first is
// detected by Read, naming the segment.
func TestSealerIdentityCannotRewriteHistoryUnnoticed(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)

	t.Run("pre-create the next segment", func(t *testing.T) {
		f := newTamperFixture(t, ns, "pre-created")
		if err := env.Client.Create(ctx, forgedSegment(f.stream(), 32, 63, nil)); err != nil {
			t.Fatal(err)
		}
		f.append(40) // seals 32..
		f.intact()
	})
	t.Run("pre-create the next segment with the right annotations", func(t *testing.T) {
		f := newTamperFixture(t, ns, "pre-created-annotated")
		like := f.segment(0)
		if err := env.Client.Create(ctx, forgedSegment(f.stream(), 32, 63, like)); err != nil {
			t.Fatal(err)
		}
		f.append(40)
		f.intact()
	})
	t.Run("a seal's own segment with its content swapped", func(t *testing.T) {
		// A seal that crashes between creating its segment and writing the
		// head leaves the segment exactly as sealed; swapped for forged
		// events under the same annotations, only its content tells.
		f := newTamperFixture(t, ns, "swapped")
		f.append(20) // the head holds 48 events: the next append seals 32..63
		crashing, err := stream.New(interceptor.NewClient(env.Client, interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if es, ok := obj.(*jobstatev1alpha1.EventStream); ok && es.Head != nil && es.Head.First > 32 {
					return errors.New("crashed before writing the head")
				}
				return c.Update(ctx, obj, opts...)
			},
		}), stream.Options{Sealer: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := crashing.Append(ctx, f.key(), []stream.EventData{ev("Counted", nil)}, stream.AppendOptions{}); err == nil {
			t.Fatal("the crashing seal's append succeeded")
		}
		sealed := f.segment(32)
		if err := env.Client.Delete(ctx, sealed); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, forgedSegment(f.stream(), 32, sealed.Spec.Last, sealed)); err != nil {
			t.Fatal(err)
		}
		f.append(1) // seals 32.. again, finding the swapped segment
		f.intact()
	})
	t.Run("create a segment far ahead", func(t *testing.T) {
		f := newTamperFixture(t, ns, "far-ahead")
		if err := env.Client.Create(ctx, forgedSegment(f.stream(), 70, 101, nil)); err != nil {
			t.Fatal(err)
		}
		f.intact()
		f.append(100) // seals past 70
		f.intact()
	})
	t.Run("delete and re-create a sealed segment", func(t *testing.T) {
		f := newTamperFixture(t, ns, "replaced")
		old := f.segment(0)
		if err := env.Client.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, forgedSegment(f.stream(), 0, 31, old)); err != nil {
			t.Fatal(err)
		}
		f.detected("segment replaced.000000000000 does not match the sealed history")
		var tampered *stream.TamperedError
		if _, err := newClient(t).Read(ctx, streamKey(ns, "replaced"), 0, 10); !errors.As(err, &tampered) || !errors.Is(err, stream.ErrTampered) {
			t.Fatalf("Read: %v, want a *TamperedError", err)
		}
	})
	t.Run("advance head.first without sealing", func(t *testing.T) {
		f := newTamperFixture(t, ns, "advanced")
		es := f.stream()
		chars, _ := jobstatev1alpha1.NewEventLog(es.Head.Events.Items[:8]...).Chars()
		es.Head.First += 8
		es.Head.SealedChars += chars
		es.Head.Events.Items = es.Head.Events.Items[8:]
		es.Head.Sealed.Chain = strings.Repeat("0", 64)
		es.Head.Unstamped.Base = "forged" // the CEL rule for unstamped appends
		if err := env.Client.Update(ctx, es); err != nil {
			t.Fatal(err)
		}
		f.detected("segment advanced.000000000000 does not match the sealed history")
	})
	t.Run("edit sealedChars", func(t *testing.T) {
		f := newTamperFixture(t, ns, "chars")
		es := f.stream()
		es.Head.SealedChars += 10
		if err := env.Client.Update(ctx, es); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "head.sealedChars may only grow") {
			t.Fatalf("%v; want Invalid naming head.sealedChars", err)
		}
		f.intact()
	})
}

// A stream sealed before segments were chained (no head.sealed, segments
// without digests) keeps working: its old segments are read as they are,
// and the first seal after the upgrade starts the chain where they end.
func TestUnchainedStreamKeepsWorking(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	// The objects as the previous version stored them: segment 0..31,
	// head 32..39.
	events := make([]jobstatev1alpha1.Event, 40)
	for i := range events {
		events[i] = jobstatev1alpha1.Event{
			Position: int64(i), ID: uuid.NewString(), Type: "Counted",
			Data: runtime.RawExtension{Raw: []byte(fmt.Sprintf(`{"i":%d}`, i))},
			Time: metav1.NewMicroTime(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)),
		}
	}
	sealedChars, _ := jobstatev1alpha1.NewEventLog(events[:32]...).Chars()
	es := &jobstatev1alpha1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old"},
		Head: &jobstatev1alpha1.EventStreamHead{
			Version: 39, First: 32, SealedChars: sealedChars,
			Events:    jobstatev1alpha1.NewEventLog(events[32:]...),
			Commits:   jobstatev1alpha1.NewCommitLog(jobstatev1alpha1.Commit{From: 32, Revision: "100"}),
			Unstamped: jobstatev1alpha1.Unstamped{From: 40, Base: "99"},
		},
	}
	if err := env.Client.Create(ctx, es); err != nil {
		t.Fatal(err)
	}
	seg := &jobstatev1alpha1.EventSegment{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: stream.SegmentName("old", 0),
			Labels:          map[string]string{stream.LabelStreamUID: string(es.UID)},
			Annotations:     map[string]string{stream.AnnotationLast: "31"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(es, jobstatev1alpha1.GroupVersion.WithKind("EventStream"))},
		},
		Spec: jobstatev1alpha1.EventSegmentSpec{
			Stream: "old", First: 0, Last: 31,
			Events:  jobstatev1alpha1.NewEventLog(events[:32]...),
			Commits: jobstatev1alpha1.NewCommitLog(jobstatev1alpha1.Commit{From: 0, Revision: "50"}),
		},
	}
	if err := env.Client.Create(ctx, seg); err != nil {
		t.Fatal(err)
	}
	f := &tamperFixture{t: t, ns: ns, name: "old", sealer: newClient(t), appended: make([]string, 40)}
	for i, e := range events {
		f.appended[i] = e.ID
	}
	f.intact()
	f.append(60)
	f.intact()
	h := f.stream().Head
	if h.Sealed == nil || h.Sealed.From != 32 || h.First <= 32 {
		t.Fatalf("after the upgrade's first seal: head.first %d, head.sealed %+v; want the chain from 32", h.First, h.Sealed)
	}
}

// A worker's Client does not seal: once the head is full its Append waits
// for the sealer, and fails with ErrHeadFull if its context ends first.
func TestAppendWaitsForTheSealer(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	worker, err := stream.New(env.ClientAs(t, ns, "worker", "worker_role.yaml"), stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	batch := func(n int) []stream.EventData {
		events := make([]stream.EventData, n)
		for i := range events {
			events[i] = ev("Counted", map[string]int{"i": i})
		}
		return events
	}
	for _, n := range []int{100, 28} { // 128: the most a head holds
		if _, err := worker.Append(ctx, streamKey(ns, "full"), batch(n), stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Long enough for the reads before the wait on a loaded machine (CI
	// saw 1s end inside one, before the head was seen full).
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := worker.Append(short, streamKey(ns, "full"), batch(1), stream.AppendOptions{}); !errors.Is(err, stream.ErrHeadFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append to a full head: %v, want ErrHeadFull after the deadline", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		if _, _, err := newClient(t).Seal(ctx, streamKey(ns, "full")); err != nil {
			t.Errorf("seal: %v", err)
		}
	}()
	res, err := worker.Append(ctx, streamKey(ns, "full"), batch(1), stream.AppendOptions{})
	if err != nil || res.Version != 128 {
		t.Fatalf("append after the seal: %+v, %v; want version 128", res, err)
	}
	checkContiguous(t, readAll(t, worker, streamKey(ns, "full")), 129)
}

// How long history lives is for those who may decide it: a worker (who may
// update streams, to append) cannot set retention or change a stream's
// owners, which would have the controller or the garbage collector delete
// its events; the editor can set retention.
func TestOnlyOwnersDecideRetention(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	f := newTamperFixture(t, ns, "kept")
	worker := env.ClientAs(t, ns, "worker", "worker_role.yaml")
	editor := env.ClientAs(t, ns, "editor", "eventstream_editor_role.yaml")
	for _, tc := range []struct {
		name string
		edit func(es *jobstatev1alpha1.EventStream)
		// want is in the refusal: config/admission's eventstream-lifetime
		// policy's, or for an owner the API server's
		// OwnerReferencesPermissionEnforcement (the test control plane
		// enforces it), which refuses first a client that may not delete
		// the stream (the policy's refusal of owners is in
		// api/v1alpha1's rules_test).
		want string
	}{
		{"set retention", func(es *jobstatev1alpha1.EventStream) {
			es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](1)}
		}, "eventstreams/lifetime"},
		{"add an owner that does not exist", func(es *jobstatev1alpha1.EventStream) {
			es.OwnerReferences = append(es.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "gone", UID: "0"})
		}, "cannot set an ownerRef on a resource you can't delete"},
	} {
		t.Run("worker/"+tc.name, func(t *testing.T) {
			es := f.stream()
			tc.edit(es)
			es.Head.Unstamped.Base = "forged" // passes the CEL rule for unstamped appends
			if err := worker.Update(ctx, es); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v; want Forbidden saying %q", err, tc.want)
			}
			if got := f.stream(); got.Spec.Retention != nil || len(got.OwnerReferences) != 0 {
				t.Fatalf("stored: retention %+v, owners %+v", got.Spec.Retention, got.OwnerReferences)
			}
		})
	}
	// A worker cannot create a stream with retention either.
	create := &jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "short-lived"},
		Spec: jobstatev1alpha1.EventStreamSpec{Retention: &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](1)}}}
	if err := worker.Create(ctx, create); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "eventstreams/lifetime") {
		t.Fatalf("worker create with retention: %v; want Forbidden naming eventstreams/lifetime", err)
	}
	es := f.stream()
	es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](1000)}
	es.Head.Unstamped.Base = "forged"
	if err := editor.Update(ctx, es); err != nil {
		t.Fatalf("the editor sets retention: %v", err)
	}
	f.intact()
}
