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

package testenv

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Call is the outcome of one call made by MixedDeadlines.
type Call struct {
	// ID is the call's own id (a UUID), for the call to store.
	ID string
	// Long: the call had a 10 s context, not a 2–30 ms deadline.
	Long bool
	Err  error
}

// MixedDeadlines runs callers goroutines with 10 s contexts and as many
// with deadlines of 2–30 ms, calls calls each, all through call, and
// returns every call's outcome: the deadline tests of pkg/update,
// pkg/stream and pkg/jobstate (one caller's deadline must not fail
// another's write).
func MixedDeadlines(t testing.TB, callers, calls int, call func(ctx context.Context, id string) error) []Call {
	var mu sync.Mutex
	var out []Call
	var wg sync.WaitGroup
	for g := range 2 * callers {
		long := g%2 == 0
		wg.Go(func() {
			for range calls {
				timeout := 10 * time.Second
				if !long {
					timeout = time.Duration(2+rand.IntN(29)) * time.Millisecond
				}
				ctx, cancel := context.WithTimeout(t.Context(), timeout)
				id := uuid.NewString()
				err := call(ctx, id)
				cancel()
				mu.Lock()
				out = append(out, Call{ID: id, Long: long, Err: err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}
