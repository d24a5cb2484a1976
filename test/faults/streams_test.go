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

package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// stored is a stream as it is stored: its head object, every event a Read
// from 0 returns, and its segments.
type stored struct {
	es       *jobstatev1alpha1.EventStream
	events   []stream.RecordedEvent
	segments []stream.SegmentRef
}

// readStored reads the stream key with a fresh Client (nothing cached).
// A manager may be sealing or applying retention meanwhile, deleting a
// segment between the read of the events and the list of the segments: it
// reads again (up to 10 times) until the head and the segments are the same
// after the events' read as before it.
func readStored(ctx context.Context, key client.ObjectKey) (stored, error) {
	var s stored
	var err error
	for range 10 {
		if s, err = readStoredOnce(ctx, key); apierrors.IsNotFound(err) {
			continue // retention deleted a segment listed a moment before
		} else if err != nil {
			return s, err
		}
		after, err := stream.ListSegments(ctx, env.Client, s.es)
		if err != nil {
			return s, err
		}
		head := &jobstatev1alpha1.EventStream{}
		if err := env.Client.Get(ctx, key, head); err != nil {
			return s, err
		}
		// (Status writes change the resourceVersion, not the events.)
		if slices.Equal(after, s.segments) && head.Head != nil && s.es.Head != nil &&
			head.Head.First == s.es.Head.First && head.Head.Version == s.es.Head.Version {
			return s, nil
		}
	}
	return s, fmt.Errorf("stream %s: its segments kept changing while it was read (last: %v)", key, err)
}

// readStoredOnce lists the segments, then reads the head and every event.
func readStoredOnce(ctx context.Context, key client.ObjectKey) (stored, error) {
	var s stored
	s.es = &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(ctx, key, s.es); err != nil {
		return s, err
	}
	if err := stream.CheckStored(s.es); err != nil {
		return s, err
	}
	var err error
	if s.segments, err = stream.ListSegments(ctx, env.Client, s.es); err != nil {
		return s, err
	}
	reader, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		return s, err
	}
	for from := int64(0); ; {
		batch, err := reader.Read(ctx, key, from, 1000)
		if err != nil {
			return s, err
		}
		if len(batch) == 0 {
			break
		}
		s.events = append(s.events, batch...)
		from = batch[len(batch)-1].Position + 1
	}
	return s, nil
}

// ids are the stored events' ids, in order.
func (s stored) ids() []string {
	ids := make([]string, len(s.events))
	for i, e := range s.events {
		ids[i] = e.ID
	}
	return ids
}

// check says how s differs from a stream holding exactly want (ids, in
// order) from position first on (what retention kept): positions without
// gaps up to the head's version, each id once, segments contiguous from
// the first kept event up to the head.
func (s stored) check(first int64, want []string) error {
	var errs []error
	h := s.es.Head
	if h == nil {
		return errors.New("the stream has no head")
	}
	if got := s.ids(); !slices.Equal(got, want) {
		errs = append(errs, fmt.Errorf("stored ids %v, want %v", abbreviate(got), abbreviate(want)))
	}
	for i, e := range s.events {
		if e.Position != first+int64(i) {
			errs = append(errs, fmt.Errorf("event %d (%s) at position %d, want %d", i, e.ID, e.Position, first+int64(i)))
			break
		}
	}
	if v := first + int64(len(want)) - 1; h.Version != v {
		errs = append(errs, fmt.Errorf("head version %d, want %d", h.Version, v))
	}
	next := first
	for _, seg := range s.segments {
		if seg.First != next {
			errs = append(errs, fmt.Errorf("segment %s starts at %d, want %d: events missing", seg.Name, seg.First, next))
		}
		next = seg.Last + 1
	}
	if next != h.First {
		errs = append(errs, fmt.Errorf("segments end before %d, the head starts at %d", next, h.First))
	}
	return errors.Join(errs...)
}

// abbreviate shortens a long list of ids for a failure message.
func abbreviate(ids []string) string {
	if len(ids) <= 12 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v ... %v (%d)", ids[:6], ids[len(ids)-6:], len(ids))
}
