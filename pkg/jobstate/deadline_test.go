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
	"testing"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// TestShortDeadlinesDoNotFailOtherHeartbeats is issue 9's defect 1 for the
// worker API: one Client, one claimed job, 8 goroutines heartbeating with
// 10 s contexts and 8 with 2–30 ms deadlines, 20 heartbeats each, each
// merging its own data key. Every long heartbeat succeeds and is stored; a
// short one that succeeded is stored, one that failed before its write is
// not.
func TestShortDeadlinesDoNotFailOtherHeartbeats(t *testing.T) {
	const writers, beats = 8, 20
	key := pendingJob(t)
	w := newWorker(t, "worker-1", clocktesting.NewFakeClock(t0))
	attempt, err := w.Claim(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	made := testenv.MixedDeadlines(t, writers, beats, func(ctx context.Context, id string) error {
		return w.Heartbeat(ctx, attempt, 0, map[string]any{id: true})
	})
	data, err := jobstate.Data(get(t, key))
	if err != nil {
		t.Fatal(err)
	}
	failedLong := 0
	for _, o := range made {
		id, long, err := o.ID, o.Long, o.Err
		switch {
		case err == nil && data[id] != true:
			t.Errorf("heartbeat %s succeeded but is not stored", id)
		case err == nil:
		case long:
			failedLong++
			t.Errorf("long heartbeat %s: %v", id, err)
		case errors.Is(err, update.ErrOutcomeUnknown):
		case errors.Is(err, context.DeadlineExceeded) && data[id] == true:
			t.Errorf("heartbeat %s failed with %v, but it is stored", id, err)
		case errors.Is(err, context.DeadlineExceeded):
		default:
			t.Errorf("short heartbeat %s: unexpected error %v", id, err)
		}
	}
	if failedLong > 0 {
		t.Errorf("%d of %d long heartbeats failed", failedLong, writers*beats)
	}
}
