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

package gateway

import (
	"fmt"
	"strconv"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// eventsPerRevision spaces global positions: an event's globalPosition is
// its commit revision (the resourceVersion of the EventStream write that
// stored it) × 1000 + its index among that write's events. A write stores
// at most 128 events (a head's bound), so positions of different writes
// never meet, and they increase in commit order across every stream of a
// namespace, as stream.GlobalPosition does. Positions are sparse:
// consecutive events of a namespace usually differ by much more than 1.
// EventoDB's clients read from a position; none counts on consecutive
// ones.
const eventsPerRevision = 1000

// maxRevision keeps global positions below 2^53, JSON's exact integers.
const maxRevision = (1<<53 - 1) / eventsPerRevision

// globalPosition is gp as an EventoDB integer.
func globalPosition(gp stream.GlobalPosition) (int64, error) {
	rev, err := strconv.ParseInt(gp.Revision, 10, 64)
	if err != nil || rev < 0 || rev > maxRevision {
		return 0, fmt.Errorf("commit revision %q is not an integer below %d: global positions cannot be served", gp.Revision, maxRevision)
	}
	if gp.Index < 0 || gp.Index >= eventsPerRevision {
		return 0, fmt.Errorf("event index %d of revision %s is out of range", gp.Index, gp.Revision)
	}
	return rev*eventsPerRevision + gp.Index, nil
}
