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
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestMetrics: calls are counted by method and code, and the group-commit
// histogram accounts for every stored append.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := newGateway(t, func(o *Options) { o.Metrics = reg })
	const writers = 8
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() { g.write("metered-1", "E", map[string]any{}, nil) })
	}
	wg.Wait()
	g.call("stream.write", "metered-1", map[string]any{"type": "E", "data": map[string]any{}}, map[string]any{"expectedVersion": 0})
	g.call("stream.write", "metered-1", "not a message")
	g.call("nope")

	m := g.server.metrics
	for _, c := range []struct {
		method, code string
		want         float64
	}{
		{"stream.write", "OK", writers},
		{"stream.write", CodeStreamVersionConflict, 1},
		{"stream.write", CodeInvalidRequest, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.method, c.code)); got != c.want {
			t.Errorf("requests_total{%s,%s} = %v, want %v", c.method, c.code, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("duration has %d series, want 1 (stream.write; an unknown method is not a label)", n)
	}
	h := &dto.Metric{}
	if err := m.batch.Write(h); err != nil {
		t.Fatal(err)
	}
	if got := h.GetHistogram().GetSampleSum(); got != writers {
		t.Errorf("group-commit appends sum to %v over %d writes, want %d (every stored append once)", got, h.GetHistogram().GetSampleCount(), writers)
	}
}
