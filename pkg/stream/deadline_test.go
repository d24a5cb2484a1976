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
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// TestShortDeadlinesDoNotFailOtherAppends is issue 9's defect 1 for
// streams: 8 goroutines with 10 s contexts and 8 with 2–30 ms deadlines
// append through one Client to one stream, 20 appends each, every event
// with its own id. Every long append succeeds; a short one succeeds, fails
// with its deadline before writing, or fails with ErrOutcomeUnknown. The
// stream holds every succeeded append once, no definitely failed one, and
// nothing twice.
func TestShortDeadlinesDoNotFailOtherAppends(t *testing.T) {
	const writers, appends = 8, 20
	key := streamKey(env.Namespace(t), "mixed")
	c := newClient(t)
	made := testenv.MixedDeadlines(t, writers, appends, func(ctx context.Context, id string) error {
		_, err := c.Append(ctx, key, []stream.EventData{{ID: id, Type: "Mixed"}}, stream.AppendOptions{})
		return err
	})

	stored := map[string]int{}
	for _, e := range readAll(t, c, key) {
		stored[e.ID]++
	}
	var failedLong, ok, before, unknown int
	for _, call := range made {
		id, err := call.ID, call.Err
		if stored[id] > 1 {
			t.Errorf("event %s stored %d times", id, stored[id])
		}
		switch {
		case err == nil:
			ok++
			if stored[id] != 1 {
				t.Errorf("append of %s succeeded but it is not stored", id)
			}
		case call.Long:
			failedLong++
			t.Errorf("long append %s: %v", id, err)
		case errors.Is(err, stream.ErrOutcomeUnknown):
			unknown++
		case errors.Is(err, context.DeadlineExceeded):
			before++
			if stored[id] != 0 {
				t.Errorf("append of %s failed with %v, but it is stored", id, err)
			}
		default:
			t.Errorf("short append %s: unexpected error %v", id, err)
		}
	}
	t.Logf("long appends failed: %d of %d; short: %d ok, %d deadline before the write, %d outcome unknown; %d events stored",
		failedLong, writers*appends, ok-writers*appends+failedLong, before, unknown, len(stored))
}

// TestLostAppendResponseIsResolvedByTheSameIDs: the API server stores an
// append and its response is lost (the interceptor reports a timeout after
// the write), twice. Append writes the same event ids again and returns
// success with the positions they were stored at; the stream holds each
// event once.
func TestLostAppendResponseIsResolvedByTheSameIDs(t *testing.T) {
	key := streamKey(env.Namespace(t), "lost")
	var lost atomic.Int32
	lossy := interceptor.NewClient(env.Client, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := c.Update(ctx, obj, opts...); err != nil {
				return err
			}
			if lost.Add(1) <= 2 {
				return apierrors.NewTimeoutError("stored, but the response was lost", 1)
			}
			return nil
		},
	})
	c, err := stream.New(lossy, stream.Options{Sealer: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, newClient(t), key, 1) // the stream exists: every write is an Update
	var results []stream.AppendResult
	for i := range 3 {
		res, err := c.Append(t.Context(), key, []stream.EventData{ev("Counted", map[string]int{"i": i})}, stream.AppendOptions{})
		if err != nil {
			t.Fatalf("append %d: %v, want the lost response resolved", i, err)
		}
		results = append(results, res)
	}
	events := readAll(t, newClient(t), key)
	checkContiguous(t, events, 4)
	for i, res := range results {
		// The first two found their events stored by their own lost write.
		if want := i < 2; res.Positions[0] != int64(i+1) || res.Duplicate != want {
			t.Errorf("append %d: positions %v, duplicate %v; want [%d], %v", i, res.Positions, res.Duplicate, i+1, want)
		}
	}
	if got := lost.Load(); got != 3 {
		t.Errorf("%d writes, want 3: one per append (a found retry writes nothing)", got)
	}
}
