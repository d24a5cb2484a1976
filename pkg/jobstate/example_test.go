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
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

// A worker claims a job, reports progress and finishes it. Any call may
// fail with lifecycle.ErrFenced once the attempt is no longer this worker's;
// the worker must then stop.
func Example() {
	ctx := context.Background()
	c := env.Client // a client.Client that reads from the API server

	// The controller normally creates the status; here we do it by hand.
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "nightly-import"}}
	_ = c.Create(ctx, js)
	_ = lifecycle.DoInitialize(js, js.CreationTimestamp.Time)
	_ = c.Status().Update(ctx, js)

	worker, err := jobstate.New(c, jobstate.Options{Identity: "import-worker-7f9c"})
	if err != nil {
		panic(err)
	}
	key := client.ObjectKey{Namespace: "default", Name: "nightly-import"}
	attempt, err := worker.Claim(ctx, key)
	if err != nil {
		panic(err)
	}
	for page := 1; page <= 4; page++ {
		// ... import one page ...
		err := worker.Heartbeat(ctx, attempt, int32(25*page), map[string]any{"cursor": fmt.Sprintf("page-%d", page)})
		if errors.Is(err, lifecycle.ErrFenced) {
			return // someone else owns the job now
		}
	}
	if err := worker.Succeed(ctx, attempt, "imported 4 pages"); err != nil {
		panic(err)
	}

	_ = c.Get(ctx, key, js)
	data, _ := jobstate.Data(js)
	fmt.Println(js.Status.Phase, js.Status.Attempt, js.Status.Progress, data["cursor"])
	// Output: Succeeded 1 100 page-4
}
