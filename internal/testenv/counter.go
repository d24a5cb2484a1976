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
	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
)

// Increment is the updateAction of the concurrency tests and benchmarks:
// status.data.counter += 1.
func Increment(js *jobstatev1alpha1.JobState) error {
	data, err := jobstate.Data(js)
	if err != nil {
		return err
	}
	n, _ := data["counter"].(float64)
	data["counter"] = n + 1
	return jobstate.SetData(js, data)
}

// Counter reads status.data.counter.
func Counter(js *jobstatev1alpha1.JobState) (int, error) {
	data, err := jobstate.Data(js)
	if err != nil {
		return 0, err
	}
	n, _ := data["counter"].(float64)
	return int(n), nil
}
