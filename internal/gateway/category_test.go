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
	"slices"
	"sync"
	"testing"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// TestConsumerMember checks Message DB's vectors: with 2 members, x-1 and
// x-3 belong to 0, x-2 and x-123 to 1; a compound id goes with its
// cardinal id.
func TestConsumerMember(t *testing.T) {
	for stream, want := range map[string]int64{"x-1": 0, "x-2": 1, "x-3": 0, "x-123": 1, "x-123+retry": 1, "account-1+a+b": 0} {
		if got := consumerMember(stream, 2); got != want {
			t.Errorf("consumerMember(%q, 2) = %d, want %d", stream, got, want)
		}
	}
	for size := int64(1); size < 9; size++ {
		for i := range 200 {
			if m := consumerMember(fmt.Sprintf("s-%d", i), size); m < 0 || m >= size {
				t.Fatalf("member %d out of 0..%d", m, size-1)
			}
		}
	}
}

// TestCategoryGet: a category's messages in global order, equal to the
// order of the writes; consumer groups split streams exactly; correlation
// filters by the correlation stream's category.
func TestCategoryGet(t *testing.T) {
	g := newGateway(t)
	type written struct {
		stream string
		gp     int64
	}
	var mu sync.Mutex
	var all []written
	var wg sync.WaitGroup
	streams := []string{"x-1", "x-2", "x-3", "x-123", "x-123+retry"}
	for _, s := range streams {
		wg.Go(func() {
			for i := range 6 {
				meta := map[string]any{}
				if i%2 == 0 {
					meta["correlationStreamName"] = "workflow-" + s
				}
				var res writeResult
				g.ok(&res, "stream.write", s, map[string]any{"type": "E", "data": map[string]any{"i": i}, "metadata": meta})
				mu.Lock()
				all = append(all, written{s, res.GlobalPosition})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	g.write("y-1", "Other", map[string]any{}, nil)
	slices.SortFunc(all, func(a, b written) int { return int(a.gp - b.gp) })

	var rows []catRow
	g.ok(&rows, "category.get", "x")
	if len(rows) != len(all) {
		t.Fatalf("category x: %d rows, want %d", len(rows), len(all))
	}
	for i, r := range rows {
		if r.Stream != all[i].stream || r.GlobalPosition != all[i].gp {
			t.Fatalf("row %d: %s@%d, want %s@%d (global order of the writes)", i, r.Stream, r.GlobalPosition, all[i].stream, all[i].gp)
		}
	}
	// From a global position, in batches.
	g.ok(&rows, "category.get", "x", map[string]any{"position": all[10].gp, "batchSize": 5})
	if len(rows) != 5 || rows[0].GlobalPosition != all[10].gp || rows[4].GlobalPosition != all[14].gp {
		t.Fatalf("from %d batch 5: %v", all[10].gp, rows)
	}
	// Consumer groups: every stream to exactly one member, by the vectors.
	want := map[string]int64{"x-1": 0, "x-2": 1, "x-3": 0, "x-123": 1, "x-123+retry": 1}
	total := 0
	for member := range int64(2) {
		g.ok(&rows, "category.get", "x", map[string]any{"consumerGroup": map[string]any{"member": member, "size": 2}})
		total += len(rows)
		for _, r := range rows {
			if want[r.Stream] != member {
				t.Errorf("member %d got %s, which belongs to %d", member, r.Stream, want[r.Stream])
			}
		}
	}
	if total != len(all) {
		t.Errorf("members got %d messages together, want %d", total, len(all))
	}
	// Correlation.
	g.ok(&rows, "category.get", "x", map[string]any{"correlation": "workflow"})
	if len(rows) != len(all)/2 {
		t.Errorf("correlation workflow: %d rows, want %d", len(rows), len(all)/2)
	}
	g.ok(&rows, "category.get", "x", map[string]any{"correlation": "nothing"})
	if len(rows) != 0 {
		t.Errorf("correlation nothing: %d rows", len(rows))
	}
	// "" is every stream.
	g.ok(&rows, "category.get", "")
	if len(rows) != len(all)+1 {
		t.Errorf(`category "": %d rows, want %d`, len(rows), len(all)+1)
	}
}

// TestObjectName: names that are object names map to themselves, others
// to distinct valid names with a '.'.
func TestObjectName(t *testing.T) {
	for in, want := range map[string]string{"account-123": "account-123", "Account-123": "account-123.", "a.b": "a-b.", "💸": "s."} {
		got := objectName(in)
		if got == want || (want[len(want)-1] == '.' && len(got) == len(want)+16 && got[:len(want)] == want) {
			continue
		}
		t.Errorf("objectName(%q) = %q, want %q", in, got, want)
	}
	if objectName("Account:Orders+x") == objectName("account:orders+x") {
		t.Error("two names share an object")
	}
}

// TestGlobalPosition covers the integer form's range checks.
func TestGlobalPosition(t *testing.T) {
	for _, c := range []struct {
		rev   string
		index int64
		want  int64
		ok    bool
	}{{"236", 0, 236000, true}, {"236", 127, 236127, true}, {"9007199254740", 991, 9007199254740991, true}, {"9007199254741", 0, 0, false}, {"x", 0, 0, false}, {"5", 1000, 0, false}} {
		got, err := globalPosition(streamGP(c.rev, c.index))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("globalPosition(%s, %d) = %d, %v", c.rev, c.index, got, err)
		}
	}
}

func streamGP(rev string, index int64) stream.GlobalPosition {
	return stream.GlobalPosition{Revision: rev, Index: index}
}
