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

package stream

import (
	"cmp"
	"fmt"

	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// GlobalPosition orders events across the streams of a namespace: by the
// resourceVersion of the EventStream write that committed them, then by
// their place within that write. See the package documentation for why this
// order is the commit order.
type GlobalPosition struct {
	// Revision is the resourceVersion the committing write produced.
	Revision string
	// Index is the event's place among the events of that write.
	Index int64
}

// String is "revision.index".
func (p GlobalPosition) String() string { return fmt.Sprintf("%s.%d", p.Revision, p.Index) }

// Compare returns -1, 0 or +1 as p is before, the same as or after q.
// Revisions are compared with resourceversion.CompareResourceVersion
// (KEP-5504: resourceVersions of one resource are comparable integers); a
// malformed revision, which the API server never produces, sorts by its
// length and bytes, which is the same order for well-formed ones.
func (p GlobalPosition) Compare(q GlobalPosition) int {
	c, err := resourceversion.CompareResourceVersion(p.Revision, q.Revision)
	if err != nil {
		c = cmp.Or(cmp.Compare(len(p.Revision), len(q.Revision)), cmp.Compare(p.Revision, q.Revision))
	}
	return cmp.Or(c, cmp.Compare(p.Index, q.Index))
}
