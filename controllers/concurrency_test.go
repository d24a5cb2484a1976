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
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// TestConcurrentReconcilesInitializeEachJobWithOneWrite: both controllers
// run 4 reconciles at once, as cmd/manager configures them (a cache without
// managedFields, MaxConcurrentReconciles). 60 new JobStates all become
// Pending with exactly one status write each and no live read of a
// JobState; the writes from the stripped cache keep the managedFields
// stored on the server. Under -race this is also the check that the
// reconcilers share no unsynchronized state.
func TestConcurrentReconcilesInitializeEachJobWithOneWrite(t *testing.T) {
	const jobs = 60
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var writes, liveReads atomic.Int64
	counted := countWrites{mgr.GetClient(), &writes}
	live := interceptor.NewClient(env.Client, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*jobstatev1alpha1.JobState); ok {
				liveReads.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	js := &JobStateReconciler{Client: counted, APIReader: live, Recorder: events.NewFakeRecorder(4 * jobs), MaxConcurrentReconciles: 4}
	es := &EventStreamReconciler{Client: mgr.GetClient(), Recorder: events.NewFakeRecorder(100), MaxConcurrentReconciles: 4}
	if err := js.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := es.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	defer wg.Wait()
	defer cancel()

	ns := env.Namespace(t)
	for i := range jobs {
		obj := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("job-%d", i)}}
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	var list jobstatev1alpha1.JobStateList
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for i := range list.Items {
			if list.Items[i].Status.Phase != jobstatev1alpha1.PhasePending {
				return false, nil
			}
		}
		return len(list.Items) == jobs, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d Pending JobStates: %v", jobs, err)
	}
	time.Sleep(500 * time.Millisecond) // any write beyond one per job would land now
	if writes.Load() != jobs || liveReads.Load() != 0 {
		t.Errorf("%d status writes and %d live reads for %d new JobStates, want %d and 0", writes.Load(), liveReads.Load(), jobs, jobs)
	}
	for i := range list.Items {
		if len(list.Items[i].ManagedFields) == 0 {
			t.Errorf("JobState %s lost its managedFields on the server", list.Items[i].Name)
		}
	}
}

// countWrites counts the JobState status writes of the client, whatever
// their outcome.
type countWrites struct {
	client.Client
	writes *atomic.Int64
}

func (c countWrites) Status() client.SubResourceWriter {
	return countedWriter{c.Client.Status(), c.writes}
}

type countedWriter struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (w countedWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if _, ok := obj.(*jobstatev1alpha1.JobState); ok {
		w.writes.Add(1)
	}
	return w.SubResourceWriter.Update(ctx, obj, opts...)
}
