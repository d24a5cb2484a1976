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

package stream

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/metrics"
)

// LabelStreamUID is set on every EventSegment to the UID of its stream (a
// name may be longer than a label value allows; the UID also tells a
// re-created stream's segments from its predecessor's).
const LabelStreamUID = "stream.jobstate.dev/uid"

// Annotations on every EventSegment, so that a metadata list tells its size
// and age without reading its events.
const (
	// AnnotationBytes is the approximate size of the segment's events.
	AnnotationBytes = "stream.jobstate.dev/bytes"
	// AnnotationLastEventTime is the time of its newest event (RFC 3339).
	AnnotationLastEventTime = "stream.jobstate.dev/last-event-time"
	// AnnotationLast is the position of its last event.
	AnnotationLast = "stream.jobstate.dev/last"
)

// SegmentName is the name of the segment of stream whose first event is at
// position first. Deterministic, so that two appends sealing the same
// events create the same object, and sorted by position.
func SegmentName(stream string, first int64) string {
	return fmt.Sprintf("%s.%012d", stream, first)
}

// segmentFirst parses the first position from a segment's name.
func segmentFirst(name string) (int64, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 64)
	return p, err == nil
}

// seal moves the head's events at positions [head.first, end) into
// EventSegments owned by the stream, chains them in head.sealed, then drops
// them from the head (which the caller writes with its precondition). Only
// the sealer may make that write (config/admission).
//
// A segment is created before the head that no longer holds its events is
// written, so a crash or a lost conflict in between leaves a segment whose
// events the head still holds. The next seal starting at the same position
// finds it (AlreadyExists) and adopts it if it is exactly what a seal of
// those committed events writes; anything else by that name was not
// written by a seal, and is replaced.
func (c *Client) seal(ctx context.Context, es *jobstatev1alpha1.EventStream, end int64) error {
	h := es.Head
	// Seal only from the stored head: a stale copy (carried from an
	// earlier write, or of a stream deleted and created again since)
	// could create a segment retention deleted or the new stream does not
	// own. One read per seal, about one append in 30.
	if err := c.checkLive(ctx, es); err != nil {
		return err
	}
	chain := ""
	if h.Sealed != nil {
		chain = h.Sealed.Chain
	}
	p := h.First
	for p < end {
		seg, err := c.putSegment(ctx, es, p, end, chain)
		if err != nil {
			return fmt.Errorf("sealing stream %s: %w", client.ObjectKeyFromObject(es), err)
		}
		c.segments.Add(cacheKey(es, SegmentRef{Name: seg.Name, UID: seg.UID}), seg)
		chain = chainAfter(chain, seg.Annotations[AnnotationDigest])
		p = seg.Spec.Last + 1
	}
	if h.Sealed == nil {
		h.Sealed = &jobstatev1alpha1.SealedChain{From: h.First}
	}
	h.Sealed.Chain = chain
	return trim(h, p)
}

// checkLive returns errStaleHead unless es is the stored stream.
func (c *Client) checkLive(ctx context.Context, es *jobstatev1alpha1.EventStream) error {
	live := &jobstatev1alpha1.EventStream{}
	if err := c.reader.Get(ctx, client.ObjectKeyFromObject(es), live); err != nil {
		return fmt.Errorf("sealing stream %s: %w", client.ObjectKeyFromObject(es), err)
	}
	if live.UID != es.UID || live.ResourceVersion != es.ResourceVersion {
		return errStaleHead
	}
	return nil
}

// putSegment creates the segment of the head's events [first, end),
// chained after chain, and returns the segment that holds them from first.
// That is an existing one if it is exactly what a seal of the head's
// events from first writes (an interrupted earlier seal's, possibly
// shorter); an existing one that is not is replaced, since only a seal may
// write segments and no seal wrote it.
func (c *Client) putSegment(ctx context.Context, es *jobstatev1alpha1.EventStream, first, end int64, chain string) (*jobstatev1alpha1.EventSegment, error) {
	want, err := c.segment(es, first, end, chain)
	if err != nil {
		return nil, err
	}
	err = c.c.Create(ctx, want)
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return nil, fmt.Errorf("creating segment %s: %w", want.Name, err)
		}
		metrics.StreamSegmentsCreated.Inc()
		return want, nil
	}
	existing := &jobstatev1alpha1.EventSegment{}
	if err := c.reader.Get(ctx, client.ObjectKeyFromObject(want), existing); err != nil {
		return nil, fmt.Errorf("reading segment %s: %w", want.Name, err)
	}
	if last := existing.Spec.Last; last >= first && last < es.Head.Version+1 {
		if same, err := c.segment(es, first, last+1, chain); err == nil && sameSegment(existing, same, es.UID) {
			return existing, nil
		}
	}
	// Not a seal's. Replace it, if this head is still the stored one (a
	// newer seal's segment can reach past a stale copy's version).
	if err := c.checkLive(ctx, es); err != nil {
		return nil, err
	}
	log.FromContext(ctx).Info("Replacing a segment no seal wrote", "segment", existing.Name, "stream", klog.KObj(es), "first", existing.Spec.First, "last", existing.Spec.Last)
	err = c.c.Delete(ctx, existing, client.Preconditions{UID: &existing.UID})
	if client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("deleting segment %s that no seal wrote: %w", existing.Name, err)
	}
	if err == nil {
		metrics.SegmentsDeleted(metrics.SegmentReplaced).Inc()
	}
	if err := c.c.Create(ctx, want); err != nil {
		return nil, fmt.Errorf("creating segment %s in place of one no seal wrote: %w", want.Name, err)
	}
	metrics.StreamSegmentsCreated.Inc()
	return want, nil
}

// sameSegment reports whether got is exactly want, as a seal of stream uid
// writes it.
func sameSegment(got, want *jobstatev1alpha1.EventSegment, uid types.UID) bool {
	if got.Labels[LabelStreamUID] != string(uid) || !metav1.IsControlledBy(got, &metav1.ObjectMeta{UID: uid}) {
		return false
	}
	for _, a := range []string{AnnotationDigest, AnnotationPrevious} {
		if got.Annotations[a] != want.Annotations[a] {
			return false
		}
	}
	d, err := digest(&got.Spec)
	return err == nil && d == want.Annotations[AnnotationDigest]
}

// segment builds the segment for the head's events [first, end), chained
// after chain.
func (c *Client) segment(es *jobstatev1alpha1.EventStream, first, end int64, chain string) (*jobstatev1alpha1.EventSegment, error) {
	h := es.Head
	events := h.Events.Items[first-h.First : end-h.First]
	seg := &jobstatev1alpha1.EventSegment{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: es.Namespace,
			Name:      SegmentName(es.Name, first),
			Labels:    map[string]string{LabelStreamUID: string(es.UID)},
			Annotations: map[string]string{
				AnnotationBytes:         strconv.Itoa(eventsBytes(events)),
				AnnotationLast:          strconv.FormatInt(end-1, 10),
				AnnotationLastEventTime: events[len(events)-1].Time.UTC().Format(time.RFC3339Nano),
				AnnotationPrevious:      chain,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: jobstatev1alpha1.GroupVersion.String(), Kind: "EventStream",
				Name: es.Name, UID: es.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: jobstatev1alpha1.EventSegmentSpec{
			Stream: es.Name, First: first, Last: end - 1,
			Events:  jobstatev1alpha1.NewEventLog(slices.Clone(events)...),
			Commits: jobstatev1alpha1.NewCommitLog(commitsFor(h.Commits.Items, first, end)...),
		},
	}
	d, err := digest(&seg.Spec)
	if err != nil {
		return nil, err
	}
	seg.Annotations[AnnotationDigest] = d
	return seg, nil
}

// SegmentRef is a segment known from a metadata list.
type SegmentRef struct {
	Name string
	UID  types.UID
	// First and Last are the positions of its first and last event.
	First, Last int64
	// Bytes and LastEventTime are from its annotations (zero if missing).
	Bytes         int64
	LastEventTime time.Time
	// Digest and Previous chain it (AnnotationDigest, AnnotationPrevious).
	Digest, Previous string
}

// ListSegments returns the segments holding es's sealed events, in position
// order, reading only their metadata. Segments at or after head.first hold
// no sealed event and are left out.
func ListSegments(ctx context.Context, r client.Reader, es *jobstatev1alpha1.EventStream) ([]SegmentRef, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind("EventSegmentList"))
	if err := r.List(ctx, list, client.InNamespace(es.Namespace), client.MatchingLabels{LabelStreamUID: string(es.UID)}); err != nil {
		return nil, err
	}
	first := int64(0)
	if es.Head != nil {
		first = es.Head.First
	}
	refs := make([]SegmentRef, 0, len(list.Items))
	for _, m := range list.Items {
		if p, ok := segmentFirst(m.Name); ok && p < first {
			ref := SegmentRef{Name: m.Name, UID: m.UID, First: p, Digest: m.Annotations[AnnotationDigest], Previous: m.Annotations[AnnotationPrevious]}
			ref.Last, _ = strconv.ParseInt(m.Annotations[AnnotationLast], 10, 64)
			ref.Bytes, _ = strconv.ParseInt(m.Annotations[AnnotationBytes], 10, 64)
			ref.LastEventTime, _ = time.Parse(time.RFC3339Nano, m.Annotations[AnnotationLastEventTime])
			refs = append(refs, ref)
		}
	}
	slices.SortFunc(refs, func(a, b SegmentRef) int { return cmp.Compare(a.First, b.First) })
	return refs, nil
}

// readSealed returns up to limit sealed events from position from, stopping
// at the head's first event. Every segment it reads from a chained part of
// the stream is verified against head.sealed.
func (c *Client) readSealed(ctx context.Context, es *jobstatev1alpha1.EventStream, from int64, limit int) ([]RecordedEvent, error) {
	key := client.ObjectKeyFromObject(es)
	refs, err := ListSegments(ctx, c.reader, es)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: listing segments: %w", key, err)
	}
	refs, trusted, broken := sealedSegments(key, es.Head, refs)
	// The segment holding from is the last one starting at or before it;
	// if retention removed it, reading starts at the first one kept.
	start := 0
	for i, r := range refs {
		if r.First <= from {
			start = i
		}
	}
	if broken != nil && from < chainStart(refs, trusted, es.Head.First) {
		return nil, fmt.Errorf("reading stream %s: %w", key, broken)
	}
	var out []RecordedEvent
	next := int64(-1)
	for _, r := range refs[start:] {
		if len(out) >= limit {
			break
		}
		seg, err := c.readSegment(ctx, es, r, trusted)
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", key, err)
		}
		if next >= 0 && seg.Spec.First != next {
			return nil, fmt.Errorf("reading stream %s: events %d to %d are missing (no segment holds them)", key, next, seg.Spec.First-1)
		}
		for i := range seg.Spec.Events.Items {
			e := &seg.Spec.Events.Items[i]
			if e.Position < from || len(out) >= limit {
				continue
			}
			gp, err := positionIn(seg.Spec.Commits.Items, e.Position)
			if err != nil {
				return nil, fmt.Errorf("reading stream %s: segment %s: %w", key, seg.Name, err)
			}
			out = append(out, recorded(es.Name, e, gp))
		}
		next = seg.Spec.Last + 1
	}
	if len(out) < limit && next >= 0 && next != es.Head.First {
		return nil, fmt.Errorf("reading stream %s: events %d to %d are missing (no segment holds them)", key, next, es.Head.First-1)
	}
	return out, nil
}

// chainStart is the first position of the verified chain among refs, or
// head if no segment is chained.
func chainStart(refs []SegmentRef, trusted map[string]string, head int64) int64 {
	for _, r := range refs {
		if _, ok := trusted[r.Name]; ok {
			return r.First
		}
	}
	return head
}

// readSegment gets the segment r, from the cache if it was read before
// (segments never change; a replaced one has a new UID), and verifies it:
// a chained one's content must have the digest trusted holds for it.
func (c *Client) readSegment(ctx context.Context, es *jobstatev1alpha1.EventStream, r SegmentRef, trusted map[string]string) (*jobstatev1alpha1.EventSegment, error) {
	want, chained := trusted[r.Name]
	key := cacheKey(es, r)
	if v, ok := c.segments.Get(key); ok {
		return v.(*jobstatev1alpha1.EventSegment), nil
	}
	seg := &jobstatev1alpha1.EventSegment{}
	if err := c.reader.Get(ctx, client.ObjectKey{Namespace: es.Namespace, Name: r.Name}, seg); err != nil {
		return nil, fmt.Errorf("reading segment %s: %w", r.Name, err)
	}
	if seg.Labels[LabelStreamUID] != string(es.UID) {
		return nil, fmt.Errorf("segment %s belongs to another stream (uid %s)", r.Name, seg.Labels[LabelStreamUID])
	}
	if err := checkLogs(client.ObjectKeyFromObject(es), "EventSegment "+r.Name, "spec", seg.Spec.Events, seg.Spec.Commits); err != nil {
		return nil, err
	}
	if chained {
		if err := checkDigest(client.ObjectKeyFromObject(es), seg, want); err != nil {
			return nil, err
		}
	}
	c.segments.Add(cacheKey(es, SegmentRef{Name: seg.Name, UID: seg.UID}), seg)
	return seg, nil
}

// segmentKey names a segment in a Client's cache, which serves every
// namespace: by namespace and name, the stream's UID (which tells a
// re-created stream's segments from its predecessor's) and the segment's
// (which tells a replaced segment from the one read before).
type segmentKey struct {
	segment           client.ObjectKey
	streamUID, segUID types.UID
}

// cacheKey is the segmentKey of the segment r of es.
func cacheKey(es *jobstatev1alpha1.EventStream, r SegmentRef) segmentKey {
	return segmentKey{segment: client.ObjectKey{Namespace: es.Namespace, Name: r.Name}, streamUID: es.UID, segUID: r.UID}
}
