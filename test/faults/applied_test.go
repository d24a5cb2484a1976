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

package faults

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// apply is the updateAction of the tests that count: it appends id to
// status.data.applied and adds 1 to status.data.counter, so that the
// stored object says which actions were applied, and how often.
func apply(id string) update.Action[*jobstatev1alpha1.JobState] {
	return func(js *jobstatev1alpha1.JobState) error {
		data, err := jobstate.Data(js)
		if err != nil {
			return err
		}
		ids, _ := data["applied"].([]any)
		data["applied"] = append(ids, id)
		n, _ := data["counter"].(float64)
		data["counter"] = n + 1
		return jobstate.SetData(js, data)
	}
}

// outcomes are what the callers of apply were told, by id.
type outcomes struct {
	mu sync.Mutex
	// acked returned nil; unknown an error matching update.ErrOutcomeUnknown;
	// failed any other error, which says nothing was written.
	acked, unknown, failed []string
}

// record files id under what err says.
func (o *outcomes) record(id string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		o.acked = append(o.acked, id)
	case errors.Is(err, update.ErrOutcomeUnknown):
		o.unknown = append(o.unknown, id)
	default:
		o.failed = append(o.failed, id)
	}
}

// check compares the stored object with what the callers were told: every
// acknowledged action applied exactly once, every failed one never, one
// of unknown outcome at most once, nothing else, and the counter equal to
// the number of actions applied. It returns the number of actions of
// unknown outcome that were applied.
func (o *outcomes) check(js *jobstatev1alpha1.JobState) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	data, err := jobstate.Data(js)
	if err != nil {
		return 0, err
	}
	ids, _ := data["applied"].([]any)
	counter, _ := data["counter"].(float64)
	times := map[string]int{}
	for _, id := range ids {
		times[fmt.Sprint(id)]++
	}
	var errs []error
	if int(counter) != len(ids) {
		errs = append(errs, fmt.Errorf("counter %d, but %d actions recorded", int(counter), len(ids)))
	}
	for _, id := range o.acked {
		if times[id] != 1 {
			errs = append(errs, fmt.Errorf("acknowledged %s applied %d times, want once", id, times[id]))
		}
	}
	for _, id := range o.failed {
		if times[id] != 0 {
			errs = append(errs, fmt.Errorf("failed %s applied %d times, want never", id, times[id]))
		}
	}
	unknownApplied := 0
	for _, id := range o.unknown {
		if times[id] > 1 {
			errs = append(errs, fmt.Errorf("%s of unknown outcome applied %d times, want at most once", id, times[id]))
		}
		unknownApplied += min(times[id], 1)
	}
	for id := range times {
		if !slices.Contains(o.acked, id) && !slices.Contains(o.failed, id) && !slices.Contains(o.unknown, id) {
			errs = append(errs, fmt.Errorf("%s applied, but nobody asked for it", id))
		}
	}
	return unknownApplied, errors.Join(errs...)
}
