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

package history

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Check checks ops against model for at most timeout and returns
// porcupine's verdict. Unless it is Ok, it writes porcupine's
// visualization to t.ArtifactDir() (kept after the test with go test
// -artifacts) and logs where, with what the checker could not place.
func Check(t testing.TB, model porcupine.Model, ops []porcupine.Operation, timeout time.Duration) porcupine.CheckResult {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	t.Logf("porcupine: %s for %d operations (%v) in %s", res, len(ops), Tally(ops), time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return res
	}
	path := filepath.Join(t.ArtifactDir(), "history.html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Errorf("writing porcupine's visualization: %v", err)
	} else {
		t.Logf("porcupine's visualization: %s", path)
	}
	if res == porcupine.Illegal {
		t.Log(Explain(model, ops, info))
	}
	return res
}

// Explain says, for each partition of ops that porcupine could not
// linearize, how far its longest linearization got and which operations
// it could not place after it, earliest call first.
func Explain(model porcupine.Model, ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	partitions := [][]porcupine.Operation{ops}
	if model.Partition != nil {
		partitions = model.Partition(ops)
	}
	describe := model.DescribeOperation
	if describe == nil {
		describe = func(in, out any) string { return fmt.Sprintf("%v -> %v", in, out) }
	}
	var b strings.Builder
	for p, partials := range info.PartialLinearizations() {
		if p >= len(partitions) {
			break
		}
		part := partitions[p]
		var longest []int
		for _, l := range partials {
			if len(l) > len(longest) {
				longest = l
			}
		}
		if len(longest) == len(part) {
			continue
		}
		fmt.Fprintf(&b, "partition %d: %d of %d operations linearized", p, len(longest), len(part))
		if n := len(longest); n > 0 {
			last := part[longest[n-1]]
			fmt.Fprintf(&b, ", the last: client %d %s", last.ClientId, describe(last.Input, last.Output))
		}
		b.WriteString("; not placed:")
		var left []int
		for i := range part {
			if !slices.Contains(longest, i) {
				left = append(left, i)
			}
		}
		slices.SortFunc(left, func(i, j int) int { return cmp.Compare(part[i].Call, part[j].Call) })
		for k, i := range left {
			if k == 5 {
				fmt.Fprintf(&b, "\n\t... and %d more", len(left)-k)
				break
			}
			fmt.Fprintf(&b, "\n\tclient %d at %s: %s", part[i].ClientId, time.Duration(part[i].Call), describe(part[i].Input, part[i].Output))
		}
		b.WriteString("\n")
	}
	return b.String()
}
