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

package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// everything reports a series of every family: a resource's update
// metrics, and a State.
func everything(t *testing.T) {
	t.Helper()
	ForResource("configmaps")
	stop := ReportState(func(context.Context) (State, error) {
		return State{Phases: map[string]int{"Running": 2, "Pending": 0}, LongestRunning: 90 * time.Second, HeartbeatOverdue: 1, ProjectionLag: 7}, nil
	})
	t.Cleanup(stop)
}

// TestNamesAreWhatIsRegistered: Names is sorted and is exactly the set of
// families on controller-runtime's registry named jobstate_ but not
// jobstate_gateway_ (this package's), once each has a series.
func TestNamesAreWhatIsRegistered(t *testing.T) {
	everything(t)
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() is not sorted: %v", names)
	}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, f := range families {
		if n := f.GetName(); strings.HasPrefix(n, "jobstate_") && !strings.HasPrefix(n, "jobstate_gateway_") {
			registered = append(registered, n)
		}
	}
	if !slices.Equal(registered, names) {
		t.Errorf("registered families:\n  %v\nNames():\n  %v", registered, names)
	}
}

// TestMetricsFollowPrometheusConventions: promlint (what `promtool check
// metrics` runs) finds nothing wrong with any family.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	everything(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors...)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestStateIsReportedWhileASourceIs: without a source the state metrics
// report nothing; with one, what it computes, every phase in its map; a
// stop of a replaced source leaves its successor; a failing source reports
// nothing rather than fail the scrape.
func TestStateIsReportedWhileASourceIs(t *testing.T) {
	if n := testutil.CollectAndCount(state); n != 0 {
		t.Fatalf("without a source: %d series, want none", n)
	}
	first := ReportState(func(context.Context) (State, error) { return State{}, nil })
	second := ReportState(func(context.Context) (State, error) {
		return State{Phases: map[string]int{"Pending": 3, "Running": 0}, LongestRunning: 1500 * time.Millisecond, HeartbeatOverdue: 2, ProjectionLag: 42}, nil
	})
	first() // replaced already: does nothing
	want := map[string]float64{
		`jobstate_jobstates{phase="Pending"}`:        3,
		`jobstate_jobstates{phase="Running"}`:        0,
		"jobstate_jobstates_longest_running_seconds": 1.5,
		"jobstate_jobstates_heartbeat_overdue":       2,
		"jobstate_projection_lag_events":             42,
	}
	if got := values(t, state); !maps.Equal(got, want) {
		t.Errorf("state metrics = %v, want %v", got, want)
	}
	second()
	if n := testutil.CollectAndCount(state); n != 0 {
		t.Fatalf("after stop: %d series, want none", n)
	}
	stop := ReportState(func(context.Context) (State, error) { return State{}, errors.New("cache not synced") })
	defer stop()
	if n := testutil.CollectAndCount(state); n != 0 {
		t.Fatalf("with a failing source: %d series, want none", n)
	}
}

// values gathers c's series: name{label="value"} to value.
func values(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestObserved counts observations of a histogram and of a vector's child.
func TestObserved(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h."})
	h.Observe(0.5)
	h.Observe(1.5)
	if n, sum := Observed(h); n != 2 || sum != 2 {
		t.Errorf("Observed(histogram) = %d, %g; want 2, 2", n, sum)
	}
	r := ForResource("observed")
	r.Batch.Observe(3)
	if n, sum := Observed(r.Batch); n != 1 || sum != 3 {
		t.Errorf("Observed(vector child) = %d, %g; want 1, 3", n, sum)
	}
}
