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

package jobstate_test

import (
	"context"
	"sync/atomic"
	"testing"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
)

// TestUpdateFromACopy: UpdateFrom a current copy makes one write and no
// read; from a stale copy (what a lagging cache holds) it conflicts,
// re-reads live and loses no update; the copy given is left as it was.
func TestUpdateFromACopy(t *testing.T) {
	key := pendingJob(t)
	var gets, writes atomic.Int64
	counted := interceptor.NewClient(env.Client, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	w, err := jobstate.New(counted, jobstate.Options{Identity: "controller"})
	if err != nil {
		t.Fatal(err)
	}
	cached := get(t, key)
	rv := cached.ResourceVersion

	if _, err := w.UpdateFrom(t.Context(), cached, testenv.Increment); err != nil {
		t.Fatal(err)
	}
	if gets.Load() != 0 || writes.Load() != 1 {
		t.Errorf("from a current copy: %d reads and %d writes, want 0 and 1", gets.Load(), writes.Load())
	}
	if cached.ResourceVersion != rv {
		t.Errorf("the copy given was modified: resourceVersion %s, was %s", cached.ResourceVersion, rv)
	}

	// cached is stale now: the first write conflicts.
	if _, err := w.UpdateFrom(t.Context(), cached, testenv.Increment); err != nil {
		t.Fatal(err)
	}
	if gets.Load() != 1 || writes.Load() != 3 {
		t.Errorf("from a stale copy: %d reads and %d writes in all, want 1 and 3 (a conflict, a live read, a write)", gets.Load(), writes.Load())
	}
	if n, err := testenv.Counter(get(t, key)); err != nil || n != 2 {
		t.Errorf("counter = %d (%v), want 2: an update was lost", n, err)
	}
}

// TestUpdateFromADeletedNamesake: from a copy of a JobState since deleted
// and created again under its name, the write conflicts and the action is
// applied to the new object, read live.
func TestUpdateFromADeletedNamesake(t *testing.T) {
	key := pendingJob(t)
	old := get(t, key)
	if err := env.Client.Delete(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	fresh := &jobstatev1alpha1.JobState{}
	fresh.Namespace, fresh.Name = key.Namespace, key.Name
	if err := env.Client.Create(t.Context(), fresh); err != nil {
		t.Fatal(err)
	}
	w := newWorker(t, "controller", clocktesting.NewFakeClock(t0))
	written, err := w.UpdateFrom(t.Context(), old, testenv.Increment)
	if err != nil {
		t.Fatal(err)
	}
	if written.UID != fresh.UID {
		t.Errorf("written UID %s, want the new object's %s", written.UID, fresh.UID)
	}
	if n, err := testenv.Counter(get(t, key)); err != nil || n != 1 {
		t.Errorf("counter = %d (%v), want 1", n, err)
	}
}
