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
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clocktesting "k8s.io/utils/clock/testing"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// A status write too large to store — status.data past what etcd (1.5 MiB
// in envtest) or the API server (3 MiB a request) accepts, or a message
// past status.message's maxLength — fails at once, is not retried, and
// leaves the JobState as it was; the attempt goes on. (No bound of its own
// guards status.data on this path: the error is the API server's.)
func TestTooLargeStatusWritesWriteNothing(t *testing.T) {
	key := pendingJob(t)
	w := newWorker(t, "w1", clocktesting.NewFakeClock(t0))
	a, err := w.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		write   func() error
		want    []string // in the error, lower case
		invalid bool     // a 422 Invalid (a rule of the CRD refused it)
	}{
		{"data over etcd's request limit", func() error {
			return w.Heartbeat(t.Context(), a, 10, map[string]any{"blob": strings.Repeat("x", 1600<<10)})
		}, []string{"heartbeat of jobstate " + key.String(), "too large"}, false},
		{"data over the API server's request limit", func() error {
			return w.Heartbeat(t.Context(), a, 10, map[string]any{"blob": strings.Repeat("x", 3500<<10)})
		}, []string{"heartbeat of jobstate " + key.String(), "too large", "3145728"}, false},
		{"a message over status.message's maxLength", func() error {
			return w.Succeed(t.Context(), a, strings.Repeat("m", jobstatev1alpha1.MaxMessageLength+1))
		}, []string{"finishing jobstate " + key.String(), "status.message", "too long", "4096"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := get(t, key)
			start := time.Now()
			err := tc.write()
			if err == nil {
				t.Fatal("the write was stored")
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the refused write took %v: it was retried", took)
			}
			for _, s := range tc.want {
				if !strings.Contains(strings.ToLower(err.Error()), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tc.invalid && !apierrors.IsInvalid(err) {
				t.Errorf("error %v is not Invalid", err)
			}
			if after := get(t, key); after.ResourceVersion != before.ResourceVersion {
				t.Errorf("resourceVersion %s, then %s after a refused write", before.ResourceVersion, after.ResourceVersion)
			}
		})
	}
	// The attempt is still the worker's.
	if err := w.Heartbeat(t.Context(), a, 20, map[string]any{"cursor": "p-1"}); err != nil {
		t.Fatalf("heartbeat after the refused writes: %v", err)
	}
	if js := get(t, key); js.Status.Phase != jobstatev1alpha1.PhaseRunning || js.Status.Progress != 20 {
		t.Fatalf("phase %s progress %d, want Running 20", js.Status.Phase, js.Status.Progress)
	}
}
