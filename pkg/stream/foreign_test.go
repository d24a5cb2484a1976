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
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// TestEditsOfABusyStreamGetThrough is issue 9's defect 3: while 4 writers
// append to one stream without pause, 10 labels (as kubectl label sends
// them) and a retention change are each accepted at their first try, and
// every event's global position as read afterwards is the one its Append
// returned — the revisions the API server recorded for the edits are the
// appends' own.
func TestEditsOfABusyStreamGetThrough(t *testing.T) {
	key := streamKey(env.Namespace(t), "busy")
	c := newClient(t)
	appendN(t, c, key, 1)
	ctx, stop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stop()
	var mu sync.Mutex
	returned := map[string]stream.GlobalPosition{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				id := uuid.NewString()
				res, err := c.Append(ctx, key, []stream.EventData{{ID: id, Type: "Busy"}}, stream.AppendOptions{})
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("append: %v", err)
					}
					return
				}
				mu.Lock()
				returned[id] = res.GlobalPositions[0]
				mu.Unlock()
			}
		})
	}
	es := &jobstatev1alpha1.EventStream{}
	es.Namespace, es.Name = key.Namespace, key.Name
	edits := []client.Patch{client.RawPatch(types.MergePatchType, []byte(`{"spec":{"retention":{"maxEvents":100000}}}`))}
	for i := range 10 {
		edits = append(edits, client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"labels":{"edit":"e%d"}}}`, i)))
	}
	for i, edit := range edits {
		time.Sleep(20 * time.Millisecond)
		if err := env.Client.Patch(ctx, es, edit); err != nil {
			t.Errorf("edit %d of the busy stream: %v", i, err)
		}
	}
	stop()
	wg.Wait()

	if es.Labels["edit"] != "e9" || es.Spec.Retention == nil || *es.Spec.Retention.MaxEvents != 100000 {
		t.Errorf("after the edits: labels %v, retention %+v", es.Labels, es.Spec.Retention)
	}
	events := readAll(t, newClient(t), key)
	// Each writer's last Append may have been cut off by stop(), stored or
	// not.
	if len(events) < 1+len(returned) || len(events) > 1+len(returned)+4 {
		t.Fatalf("%d events stored, want %d acknowledged appends (+ up to 4 cut off)", len(events), 1+len(returned))
	}
	checkContiguous(t, events, len(events))
	found := 0
	for _, e := range events[1:] {
		want, acked := returned[e.ID]
		if !acked {
			continue
		}
		found++
		if e.GlobalPosition != want {
			t.Errorf("event %d: global position %s, but its Append returned %s", e.Position, e.GlobalPosition, want)
		}
	}
	if found != len(returned) {
		t.Errorf("%d of %d acknowledged appends are stored", found, len(returned))
	}
	t.Logf("%d appends during %d edits", len(returned), len(edits))
}

// TestSealRacingAppendsSucceeds: while 4 workers append without pause, the
// sealer's Seal never fails because an append landed between its read and
// its seal's check of the stored head (it tries again from a live read),
// and the stream stays whole.
func TestSealRacingAppendsSucceeds(t *testing.T) {
	ns := env.Namespace(t)
	key := streamKey(ns, "raced")
	worker, err := stream.New(env.ClientAs(t, ns, "worker", "worker_role.yaml"), stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sealer := newClient(t)
	appendN(t, worker, key, 1)
	ctx, stop := context.WithTimeout(t.Context(), 3*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var appended sync.Map
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				id := uuid.NewString()
				if _, err := worker.Append(ctx, key, []stream.EventData{{ID: id, Type: "Raced"}}, stream.AppendOptions{}); err != nil {
					if ctx.Err() == nil {
						t.Errorf("append: %v", err)
					}
					return
				}
				appended.Store(id, true)
			}
		})
	}
	seals, sealed := 0, 0
	for ctx.Err() == nil {
		_, wrote, err := sealer.Seal(ctx, key)
		if err != nil && ctx.Err() == nil {
			t.Errorf("Seal %d: %v", seals, err)
		}
		seals++
		if wrote {
			sealed++
		}
	}
	wg.Wait()
	events := readAll(t, sealer, key)
	// Each writer's last Append may have been cut off by the end of ctx,
	// stored or not.
	acked := 0
	appended.Range(func(any, any) bool { acked++; return true })
	if len(events) < 1+acked || len(events) > 1+acked+4 {
		t.Fatalf("%d events stored, want %d acknowledged appends (+ up to 4 cut off)", len(events), 1+acked)
	}
	checkContiguous(t, events, len(events))
	for _, e := range events {
		appended.Delete(e.ID)
	}
	appended.Range(func(id, _ any) bool { t.Errorf("acknowledged append %s is not stored", id); return true })
	t.Logf("%d appends, %d Seals (%d wrote)", acked, seals, sealed)
}
