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
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// Annotations that chain a stream's segments (see
// jobstatev1alpha1.SealedChain). Only the sealer creates segments, and
// nobody may change them, so a segment that does not chain up to the
// head's record was not written by a seal.
const (
	// AnnotationDigest is the hex SHA-256 of the segment's content as
	// stored: its stream, positions, events and commit records.
	AnnotationDigest = "stream.jobstate.dev/digest"
	// AnnotationPrevious is the chain value before the segment: empty for
	// the first segment of a chain, else the chain after the segment
	// before it.
	AnnotationPrevious = "stream.jobstate.dev/previous"
)

// digest is the hex SHA-256 of a segment's content as stored.
func digest(spec *jobstatev1alpha1.EventSegmentSpec) (string, error) {
	events, err := spec.Events.Text()
	if err != nil {
		return "", err
	}
	commits, err := spec.Commits.Text()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	// NUL separates the parts: JSON text never holds one unescaped.
	for _, part := range []string{spec.Stream, strconv.FormatInt(spec.First, 10), strconv.FormatInt(spec.Last, 10), events, commits} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// chainAfter is the chain value after a segment with the given digest,
// whose chain value before it is previous.
func chainAfter(previous, digest string) string {
	sum := sha256.Sum256([]byte(previous + digest))
	return hex.EncodeToString(sum[:])
}

// sealedFrom is the first position the head's chain covers (segments
// below it are from before streams were chained); beyond every position
// when nothing is chained yet.
func sealedFrom(h *jobstatev1alpha1.EventStreamHead) int64 {
	if h.Sealed == nil {
		return h.First
	}
	return h.Sealed.From
}

// sealedSegments picks, from refs (the segments below head.first, in
// order), those that hold the stream's sealed events: the ones before
// head.sealed.from as they are (sealed before streams were chained), then
// the chain recorded in head.sealed, found from the newest back by chain
// value, so that a segment no seal wrote is never among them. It returns
// them in order with the digest each chained one's content must have. If
// the chain stops short of a segment that should continue it (one was
// replaced, or head.sealed written by hand), broken names it: positions
// before the verified part cannot be served.
func sealedSegments(key client.ObjectKey, h *jobstatev1alpha1.EventStreamHead, refs []SegmentRef) (segs []SegmentRef, trusted map[string]string, broken error) {
	from := sealedFrom(h)
	var chain []SegmentRef
	trusted = map[string]string{}
	if h.Sealed != nil {
		chain, broken = walkChain(key, h.Sealed, refs)
	}
	for _, r := range refs {
		if r.First < from {
			segs = append(segs, r)
		}
	}
	for _, r := range slices.Backward(chain) {
		segs = append(segs, r)
		trusted[r.Name] = r.Digest
	}
	return segs, trusted, broken
}

// walkChain follows sealed's chain back through refs: newest first.
func walkChain(key client.ObjectKey, sealed *jobstatev1alpha1.SealedChain, refs []SegmentRef) ([]SegmentRef, error) {
	// Each segment's chain value, computed once: the walk is linear.
	by := map[string][]int{}
	for i, r := range refs {
		if r.First >= sealed.From && r.Digest != "" {
			c := chainAfter(r.Previous, r.Digest)
			by[c] = append(by[c], i)
		}
	}
	var chain []SegmentRef
	want, before, after := sealed.Chain, int64(math.MaxInt64), "the head"
	for want != "" {
		i := slices.IndexFunc(by[want], func(i int) bool { return refs[i].First < before })
		if i < 0 {
			break
		}
		r := refs[by[want][i]]
		chain = append(chain, r)
		want, before, after = r.Previous, r.First, "segment "+r.Name
	}
	// What is left in the chained range below the chain's start is a
	// break, unless nothing is (retention removes the oldest segments).
	for _, r := range slices.Backward(refs) {
		if r.First >= sealed.From && r.First < before {
			return chain, &TamperedError{Namespace: key.Namespace, Stream: key.Name, Segment: r.Name, Reason: "the chain recorded in head.sealed does not lead to it from " + after}
		}
	}
	return chain, nil
}

// checkDigest verifies that seg's content is what its trusted digest says.
func checkDigest(key client.ObjectKey, seg *jobstatev1alpha1.EventSegment, trusted string) error {
	d, err := digest(&seg.Spec)
	if err != nil {
		return err
	}
	if d != trusted {
		return &TamperedError{Namespace: key.Namespace, Stream: key.Name, Segment: seg.Name, Reason: "its events are not the ones sealed (digest " + d[:12] + ", sealed " + trusted[:min(12, len(trusted))] + ")"}
	}
	return nil
}
