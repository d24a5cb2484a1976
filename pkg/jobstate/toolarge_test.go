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
	"errors"
	"fmt"
	"strings"
	"testing"

	clocktesting "k8s.io/utils/clock/testing"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
)

// status.data past MaxDataBytes — just past it, or past what the API
// server accepts in a request — is refused by the worker API itself with a
// *DataTooLargeError naming the JobState and the size, before any request:
// the JobState is left as it was and the attempt goes on. Data at the
// bound is stored. A message longer than status.message holds, with the
// text the transition adds around it, is shortened rather than refused:
// the attempt is failed, not left Running until its heartbeat times out.
func TestTooLargeStatusWrites(t *testing.T) {
	key := pendingJob(t)
	w := newWorker(t, "w1", clocktesting.NewFakeClock(t0))
	a, err := w.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	blob := func(n int) map[string]any { // status.data of n bytes
		return map[string]any{"blob": strings.Repeat("x", n-len(`{"blob":""}`))}
	}
	for _, size := range []int{jobstate.MaxDataBytes + 1, 3500 << 10} {
		before := get(t, key)
		err := w.Heartbeat(t.Context(), a, 10, blob(size))
		if !errors.Is(err, jobstate.ErrDataTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("status.data of JobState %s would be %d bytes, more than %d", key, size, jobstate.MaxDataBytes)) {
			t.Errorf("status.data of %d bytes: %v, want a *DataTooLargeError", size, err)
		}
		if after := get(t, key); after.ResourceVersion != before.ResourceVersion {
			t.Errorf("resourceVersion %s, then %s after a refused write", before.ResourceVersion, after.ResourceVersion)
		}
	}
	if err := w.Heartbeat(t.Context(), a, 20, blob(jobstate.MaxDataBytes)); err != nil {
		t.Fatalf("status.data of MaxDataBytes: %v", err)
	}
	if js := get(t, key); js.Status.Phase != jobstatev1alpha1.PhaseRunning || js.Status.Progress != 20 || len(js.Status.Data.Raw) != jobstate.MaxDataBytes {
		t.Fatalf("phase %s progress %d data %d bytes, want Running 20 and %d bytes", js.Status.Phase, js.Status.Progress, len(js.Status.Data.Raw), jobstate.MaxDataBytes)
	}

	long := strings.Repeat("m", jobstatev1alpha1.MaxMessageLength-6)
	if err := w.Fail(t.Context(), a, long); err != nil {
		t.Fatalf("Fail with a message of %d characters: %v", len(long), err)
	}
	js := get(t, key)
	if js.Status.Phase != jobstatev1alpha1.PhasePending || len(js.Status.Message) != jobstatev1alpha1.MaxMessageLength || !strings.HasSuffix(js.Status.Message, "...") {
		t.Fatalf("after Fail: phase %s, message of %d characters ending %q; want Pending and %d ending ...", js.Status.Phase, len(js.Status.Message), js.Status.Message[len(js.Status.Message)-8:], jobstatev1alpha1.MaxMessageLength)
	}
}
