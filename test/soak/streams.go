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

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

const (
	// streamSlots streams are appended to at a time, each by streamWriters
	// goroutines sharing one stream.Client (group commit).
	streamSlots, streamWriters = 3, 3
	// streamEpoch is the appends each writer makes to one stream before it
	// is checked and deleted: about 600 events per stream, a dozen
	// segments sealed by the manager.
	streamEpoch = 100
	// maxBatch bounds the events of one append.
	maxBatch = 3
	// expectEvery: one append in so many expects the version its writer
	// last saw (often stale: a version conflict, refused).
	expectEvery = 3
	// retryEvery: one acknowledged append in so many is sent again at
	// once, with the same ids, which must store nothing (it is well within
	// the idempotency window of 16 events).
	retryEvery = 10
	// resolveAttempts bounds the retries by id of an append whose outcome
	// is unknown.
	resolveAttempts = 3
	// readPage is the events per Read when checking a stream.
	readPage = 1000
)

// streamLoad appends to EventStreams, a stream per slot at a time: after
// streamEpoch appends per writer the stream is read back, checked against
// the ledger of its event ids, and deleted with its segments, and the slot
// goes on with a new stream. The manager seals them as they grow.
type streamLoad struct {
	s *soak
	// streams is the workers' client; reader, with its own segment cache,
	// reads the streams back.
	streams, reader *stream.Client

	mu      sync.Mutex
	row     ledgerRow
	checked int64
	// orphans counts the segments swept after their stream was deleted.
	orphans  atomic.Int64
	removing sync.Mutex
}

func (l *streamLoad) setup(context.Context) error {
	var err error
	if l.streams, err = stream.New(l.s.c, stream.Options{}); err != nil {
		return err
	}
	l.reader, err = stream.New(l.s.c, stream.Options{})
	return err
}

func (l *streamLoad) start(wg *sync.WaitGroup) {
	for slot := range streamSlots {
		wg.Go(func() {
			for epoch := 0; l.s.running(); epoch++ {
				l.epoch(client.ObjectKey{Namespace: l.s.ns, Name: fmt.Sprintf("stream-%d-%d", slot, epoch)})
			}
		})
	}
}

// epoch appends to one stream from streamWriters goroutines, then checks
// and deletes it.
func (l *streamLoad) epoch(key client.ObjectKey) {
	led := &eventLedger{entries: map[string]*eventEntry{}}
	var wg sync.WaitGroup
	for w := range streamWriters {
		wg.Go(func() {
			version := stream.NoStream // the last version this writer saw
			for i := 0; i < streamEpoch && l.s.running(); i++ {
				version = l.append(key, led, newEvents(w, i), version)
				l.s.pause()
			}
		})
	}
	wg.Wait()
	row := l.check(key, led)
	l.mu.Lock()
	l.row.add(row)
	l.checked++
	l.mu.Unlock()
	l.remove(key)
}

// newEvents returns 1 to maxBatch events with fresh ids.
func newEvents(w, i int) []stream.EventData {
	events := make([]stream.EventData, 1+rand.IntN(maxBatch))
	for j := range events {
		events[j] = stream.EventData{ID: uuid.NewString(), Type: "Soaked", Data: map[string]int{"writer": w, "append": i, "index": j}}
	}
	return events
}

// append appends events, unconditionally or (one in expectEvery)
// expecting version, records the outcome and returns the version the
// writer knows now. An acknowledged append is sometimes sent again; one
// whose outcome is unknown is retried by id until it is known.
func (l *streamLoad) append(key client.ObjectKey, led *eventLedger, events []stream.EventData, version int64) int64 {
	opts := stream.AppendOptions{}
	if rand.IntN(expectEvery) == 0 {
		opts = stream.ExpectVersion(version)
	}
	res, o, err := l.try(key, "append", l.s.deadline(), events, opts)
	switch o {
	case stored:
		led.note(events, stored, res.Positions)
		if rand.IntN(retryEvery) == 0 {
			res, o, _ = l.try(key, "append-retry", callTimeout, events, opts)
			led.note(events, o, res.Positions)
			if o == stored && !res.Duplicate {
				led.notef("%s: a retry by id stored the events again", key.Name)
			}
		}
		return res.Version
	case unknown:
		l.resolve(key, led, events, opts)
		return version
	}
	led.note(events, o, nil)
	if vc := (*stream.VersionConflictError)(nil); errors.As(err, &vc) {
		return vc.Actual
	}
	return version
}

// resolve retries an append whose outcome is unknown, with the same ids
// and options, until its outcome is known: stored (now, or as a duplicate
// of the original) or refused (its ids are not in the stream, so the
// original did not store them either).
func (l *streamLoad) resolve(key client.ObjectKey, led *eventLedger, events []stream.EventData, opts stream.AppendOptions) {
	for range resolveAttempts {
		res, o, _ := l.try(key, "append-retry", callTimeout, events, opts)
		if o != unknown {
			led.note(events, o, res.Positions)
			return
		}
	}
	led.note(events, unknown, nil)
}

// try makes one Append and records it as kind.
func (l *streamLoad) try(key client.ObjectKey, kind string, timeout time.Duration, events []stream.EventData, opts stream.AppendOptions) (stream.AppendResult, outcome, error) {
	var res stream.AppendResult
	o, err := l.s.call(l.s.ctx, kind, timeout, func(ctx context.Context) error {
		var err error
		res, err = l.streams.Append(ctx, key, events, opts)
		return err
	})
	return res, o, err
}

// remove deletes the stream and its segments (envtest runs no garbage
// collector to delete them through their ownerReferences), as the sealer.
// Then it sweeps segments whose stream is gone: a seal by the manager that
// raced a deletion leaves one behind now and then, which a cluster's
// garbage collector would delete.
func (l *streamLoad) remove(key client.ObjectKey) {
	// One slot at a time: a sweep must not count what another slot's
	// remove is deleting.
	l.removing.Lock()
	defer l.removing.Unlock()
	_, _ = l.s.call(l.s.ctx, "cleanup", callTimeout, func(ctx context.Context) error {
		es := &jobstatev1alpha1.EventStream{}
		if err := l.s.env.Client.Get(ctx, key, es); err != nil {
			return client.IgnoreNotFound(err)
		}
		if err := l.s.env.Client.Delete(ctx, es); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err := l.s.env.Client.DeleteAllOf(ctx, &jobstatev1alpha1.EventSegment{}, client.InNamespace(key.Namespace),
			client.MatchingLabels{stream.LabelStreamUID: string(es.UID)}); err != nil {
			return err
		}
		return l.sweep(ctx)
	})
}

// sweep deletes the segments of the namespace whose stream no longer
// exists, and counts them.
func (l *streamLoad) sweep(ctx context.Context) error {
	c := l.s.env.Client
	streams := &jobstatev1alpha1.EventStreamList{}
	// Metadata only: the events are not needed.
	segs := &metav1.PartialObjectMetadataList{}
	segs.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind("EventSegmentList"))
	// Segments first: a segment listed then was created after its
	// stream, so the stream is in the later list unless it is gone.
	if err := c.List(ctx, segs, client.InNamespace(l.s.ns)); err != nil {
		return err
	}
	if err := c.List(ctx, streams, client.InNamespace(l.s.ns)); err != nil {
		return err
	}
	live := map[string]bool{}
	for _, es := range streams.Items {
		live[string(es.UID)] = true
	}
	for i := range segs.Items {
		seg := &segs.Items[i]
		if live[seg.Labels[stream.LabelStreamUID]] || !seg.DeletionTimestamp.IsZero() {
			continue
		}
		switch err := c.Delete(ctx, seg); {
		case err == nil:
			l.orphans.Add(1)
		case !apierrors.IsNotFound(err):
			return err
		}
	}
	return nil
}

func (l *streamLoad) progress() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.row.summary("streams", l.checked)
}

func (l *streamLoad) verify(context.Context) ([]ledgerRow, []check) {
	l.mu.Lock()
	defer l.mu.Unlock()
	row := l.row
	row.name = fmt.Sprintf("append (events, %d streams)", l.checked)
	return []ledgerRow{row}, []check{{
		name:  "EventSegments left by a seal that raced their stream's deletion (swept; a garbage collector would delete them)",
		value: l.orphans.Load(),
	}}
}
