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
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
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
// EventSegments owned by the stream, then drops them from the head (which
// the caller writes with its precondition).
//
// A segment is created before the head that no longer holds its events is
// written, so a crash or a lost conflict in between leaves a segment whose
// events the head still holds. The next seal starting at the same position
// finds it (AlreadyExists) and adopts it: its events are the same committed
// events, whoever sealed them, so adopting is always correct.
func (c *Client) seal(ctx context.Context, es *jobstatev1alpha1.EventStream, end int64) error {
	h := es.Head
	// Seal only from the stored head: a stale copy (carried from an
	// earlier write, or of a stream deleted and created again since)
	// could create a segment retention deleted or the new stream does not
	// own. One read per seal, about one append in 30.
	live := &jobstatev1alpha1.EventStream{}
	if err := c.reader.Get(ctx, client.ObjectKeyFromObject(es), live); err != nil {
		return fmt.Errorf("sealing stream %s: %w", es.Name, err)
	}
	if live.UID != es.UID || live.ResourceVersion != es.ResourceVersion {
		return errStaleHead
	}
	p := h.First
	for p < end {
		seg := c.segment(es, p, end)
		err := c.c.Create(ctx, seg)
		if apierrors.IsAlreadyExists(err) {
			existing := &jobstatev1alpha1.EventSegment{}
			if err := c.reader.Get(ctx, client.ObjectKeyFromObject(seg), existing); err != nil {
				return fmt.Errorf("sealing stream %s: reading segment %s: %w", es.Name, seg.Name, err)
			}
			if existing.Labels[LabelStreamUID] != string(es.UID) || existing.Spec.First != p {
				return fmt.Errorf("sealing stream %s: segment %s exists but belongs to another stream (uid %s)", es.Name, seg.Name, existing.Labels[LabelStreamUID])
			}
			seg = existing
		} else if err != nil {
			return fmt.Errorf("sealing stream %s: creating segment %s: %w", es.Name, seg.Name, err)
		}
		c.segments.Add(cacheKey(es, seg.Name), seg)
		p = seg.Spec.Last + 1
	}
	if p > h.Version+1 {
		// An adopted segment reaches beyond this (stale) copy of the head:
		// the write will conflict; seal nothing in it.
		return nil
	}
	return trim(h, p)
}

// segment builds the segment for the head's events [first, end).
func (c *Client) segment(es *jobstatev1alpha1.EventStream, first, end int64) *jobstatev1alpha1.EventSegment {
	h := es.Head
	events := h.Events.Items[first-h.First : end-h.First]
	return &jobstatev1alpha1.EventSegment{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: es.Namespace,
			Name:      SegmentName(es.Name, first),
			Labels:    map[string]string{LabelStreamUID: string(es.UID)},
			Annotations: map[string]string{
				AnnotationBytes:         strconv.Itoa(eventsBytes(events)),
				AnnotationLast:          strconv.FormatInt(end-1, 10),
				AnnotationLastEventTime: events[len(events)-1].Time.UTC().Format(time.RFC3339Nano),
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
}

// ListSegments returns the segments of the stream with uid, in position
// order, reading only their metadata.
func ListSegments(ctx context.Context, r client.Reader, namespace string, uid types.UID) ([]SegmentRef, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind("EventSegmentList"))
	if err := r.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{LabelStreamUID: string(uid)}); err != nil {
		return nil, err
	}
	refs := make([]SegmentRef, 0, len(list.Items))
	for _, m := range list.Items {
		if first, ok := segmentFirst(m.Name); ok {
			ref := SegmentRef{Name: m.Name, UID: m.UID, First: first}
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
// at the head's first event.
func (c *Client) readSealed(ctx context.Context, es *jobstatev1alpha1.EventStream, from int64, limit int) ([]RecordedEvent, error) {
	refs, err := ListSegments(ctx, c.reader, es.Namespace, es.UID)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: listing segments: %w", es.Name, err)
	}
	// The segment holding from is the last one starting at or before it;
	// if retention removed it, reading starts at the first one kept.
	start := 0
	for i, r := range refs {
		if r.First <= from {
			start = i
		}
	}
	var out []RecordedEvent
	next := int64(-1)
	for _, r := range refs[start:] {
		if len(out) >= limit || r.First >= es.Head.First {
			break
		}
		seg, err := c.readSegment(ctx, es, r.Name)
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", es.Name, err)
		}
		if next >= 0 && seg.Spec.First != next {
			return nil, fmt.Errorf("reading stream %s: events %d to %d are missing (no segment holds them)", es.Name, next, seg.Spec.First-1)
		}
		for i := range seg.Spec.Events.Items {
			e := &seg.Spec.Events.Items[i]
			if e.Position < from || len(out) >= limit {
				continue
			}
			gp, err := positionIn(seg.Spec.Commits.Items, e.Position)
			if err != nil {
				return nil, fmt.Errorf("reading stream %s: segment %s: %w", es.Name, seg.Name, err)
			}
			out = append(out, recorded(es.Name, e, gp))
		}
		next = seg.Spec.Last + 1
	}
	if len(out) < limit && next >= 0 && next != es.Head.First {
		return nil, fmt.Errorf("reading stream %s: events %d to %d are missing (no segment holds them)", es.Name, next, es.Head.First-1)
	}
	return out, nil
}

// readSegment gets a segment, from the cache if it was read before:
// segments never change.
func (c *Client) readSegment(ctx context.Context, es *jobstatev1alpha1.EventStream, name string) (*jobstatev1alpha1.EventSegment, error) {
	key := cacheKey(es, name)
	if v, ok := c.segments.Get(key); ok {
		return v.(*jobstatev1alpha1.EventSegment), nil
	}
	seg := &jobstatev1alpha1.EventSegment{}
	if err := c.reader.Get(ctx, client.ObjectKey{Namespace: es.Namespace, Name: name}, seg); err != nil {
		return nil, fmt.Errorf("reading segment %s: %w", name, err)
	}
	if seg.Labels[LabelStreamUID] != string(es.UID) {
		return nil, fmt.Errorf("segment %s belongs to another stream (uid %s)", name, seg.Labels[LabelStreamUID])
	}
	if err := checkLogs(es.Name, "EventSegment "+name, "spec", seg.Spec.Events, seg.Spec.Commits); err != nil {
		return nil, err
	}
	c.segments.Add(key, seg)
	return seg, nil
}

// cacheKey names a segment of es in the cache: the UID tells a re-created
// stream's segments from its predecessor's.
func cacheKey(es *jobstatev1alpha1.EventStream, name string) string {
	return string(es.UID) + "/" + name
}
