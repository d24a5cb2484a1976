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

package update_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/jobstate-dev/jobstate/pkg/update"
)

// TestBackoffSleeps: against a writer that always conflicts, the sleeps
// between attempts, on the Updater's clock, are exactly the backoff's: the
// default numbers (without jitter) grow over 10 attempts and then stay flat,
// and a Cap caps the sleep without ending the retries. Pure branching, so
// the fake client: every Update is a Conflict.
func TestBackoffSleeps(t *testing.T) {
	noJitter := update.DefaultBackoff
	noJitter.Jitter = 0
	const plateau = 76886718 * time.Nanosecond // 2ms × 1.5^9
	for _, tc := range []struct {
		name        string
		backoff     wait.Backoff
		maxAttempts int
		sleeps      []time.Duration
	}{
		{"default numbers plateau after 10 attempts", noJitter, 13, []time.Duration{
			2 * time.Millisecond, 3 * time.Millisecond, 4500 * time.Microsecond, 6750 * time.Microsecond,
			10125 * time.Microsecond, 15187500 * time.Nanosecond, 22781250 * time.Nanosecond,
			34171875 * time.Nanosecond, 51257812 * time.Nanosecond, plateau, plateau, plateau,
		}},
		{"cap caps, retries go on", wait.Backoff{Duration: 2 * time.Millisecond, Factor: 2, Steps: 10, Cap: 5 * time.Millisecond}, 6, []time.Duration{
			2 * time.Millisecond, 4 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond,
		}},
		{"no growth steps", wait.Backoff{Duration: 2 * time.Millisecond, Factor: 2}, 4, []time.Duration{
			2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &recordingClock{FakeClock: clocktesting.NewFakeClock(time.Now()), sleeps: make(chan time.Duration, 1)}
			u, err := update.New[*corev1.ConfigMap](alwaysConflicting(), update.Options{
				Backoff: tc.backoff, MaxAttempts: tc.maxAttempts, Clock: clock,
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}
				done <- u.Update(t.Context(), cm, func(cm *corev1.ConfigMap) error {
					cm.Data = map[string]string{"n": "1"}
					return nil
				})
			}()
			var slept []time.Duration
			for range tc.sleeps {
				select {
				case d := <-clock.sleeps:
					slept = append(slept, d)
					clock.Step(d) // Wake it.
				case err := <-done:
					t.Fatalf("Update returned after sleeping %v, want sleeps %v: %v", slept, tc.sleeps, err)
				case <-time.After(5 * time.Second):
					t.Fatalf("Update stuck after sleeping %v, want sleeps %v", slept, tc.sleeps)
				}
			}
			if !slices.Equal(slept, tc.sleeps) {
				t.Errorf("slept %v, want %v", slept, tc.sleeps)
			}
			select {
			case err := <-done:
				var conflict *update.ConflictError
				if !errors.As(err, &conflict) || conflict.Attempts != tc.maxAttempts {
					t.Fatalf("err = %v, want *ConflictError after %d attempts", err, tc.maxAttempts)
				}
			case d := <-clock.sleeps:
				t.Fatalf("slept once more (%s) after %d sleeps and %d attempts", d, len(tc.sleeps), tc.maxAttempts)
			case <-time.After(5 * time.Second):
				t.Fatalf("Update still running after %d sleeps", len(tc.sleeps))
			}
		})
	}
}

// recordingClock is a fake clock that reports the duration of every timer
// on sleeps once the timer is started, so that stepping the clock by it
// fires the timer.
type recordingClock struct {
	*clocktesting.FakeClock
	sleeps chan time.Duration
}

func (c *recordingClock) NewTimer(d time.Duration) clock.Timer {
	t := c.FakeClock.NewTimer(d)
	c.sleeps <- d
	return t
}

// alwaysConflicting is a fake client holding ns/cm whose every Update is
// refused with a Conflict.
func alwaysConflicting() client.Client {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}
	return fake.NewClientBuilder().WithObjects(cm).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.UpdateOption) error {
			return apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, obj.GetName(), errors.New("another writer was first"))
		},
	}).Build()
}
