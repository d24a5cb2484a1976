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

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// unmoved are the metrics a completed managerWorkload may leave at zero,
// and why: they count failures the workload does not provoke or states it
// does not end in. Their package tests move each of them.
var unmoved = map[string]string{
	"jobstate_lock_losses_total":                 "no Lease is taken from the manager",
	"jobstate_stream_append_conflicts_total":     "the manager appends timer events without an expected version",
	"jobstate_update_conflicts_total":            "a conflict needs a write racing the manager's: timing, not the workload, decides",
	"jobstate_update_retries_total":              "retries follow conflicts",
	"jobstate_jobstates_heartbeat_overdue":       "the manager ends an overdue attempt within a reconcile",
	"jobstate_jobstates_longest_running_seconds": "no job is left Running",
	"jobstate_projection_lag_events":             "projections are caught up when the workload completes",
}

// TestManagerMetrics: the manager, as its ServiceAccount, serves its
// metrics on the secure endpoint: after managerWorkload, a token bound to
// config/default's metrics-reader ClusterRole gets every jobstate_ family
// (internal/metrics.Names), each moved except those in unmoved; a token
// without that role gets 403, and no token 401.
func TestManagerMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	kubeconfig := managerKubeConfig(ctx, t, dir)
	manager := build(t, testenv.RepoRoot(), dir, "./cmd/manager")
	s := metricsScraper(ctx, t, dir)

	var body string
	run := runManagerWorkloadThen(ctx, t, time.Minute, manager, kubeconfig, s, func(ctx context.Context, url string) {
		var err error
		if body, err = s.get(ctx, url, s.reader, http.StatusOK); err != nil {
			t.Errorf("with the metrics-reader role: %v", err)
		}
		if _, err := s.get(ctx, url, s.stranger, http.StatusForbidden); err != nil {
			t.Errorf("without the metrics-reader role: %v", err)
		}
		if _, err := s.get(ctx, url, "", http.StatusUnauthorized); err != nil {
			t.Errorf("without a token: %v", err)
		}
	})
	if run.err != nil || run.refused != "" {
		t.Fatalf("workload: %v, refused %q\nmanager output:\n%s", run.err, run.refused, run.output)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	for _, name := range metrics.Names() {
		f, ok := families[name]
		switch {
		case !ok:
			t.Errorf("%s: not served", name)
		case moved(f) && unmoved[name] != "":
			t.Logf("%s moved this time, though %s", name, unmoved[name])
		case !moved(f) && unmoved[name] == "":
			t.Errorf("%s did not move after the workload:\n%v", name, f)
		}
	}
}

// moved says whether any sample of f is not zero (a histogram: has
// observations).
func moved(f *dto.MetricFamily) bool {
	for _, m := range f.GetMetric() {
		switch {
		case m.GetCounter().GetValue() != 0, m.GetGauge().GetValue() != 0, m.GetHistogram().GetSampleCount() != 0:
			return true
		}
	}
	return false
}
