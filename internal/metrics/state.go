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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// State is what the manager reports of the JobStates in its cache, computed
// at each scrape.
type State struct {
	// Phases counts JobStates by status.phase. Every phase in the map is
	// reported, those at zero too; a JobState without a phase yet is in
	// none.
	Phases map[string]int
	// LongestRunning is how long the JobState Running longest has been in
	// its current attempt (since it was claimed); zero if none is Running.
	LongestRunning time.Duration
	// HeartbeatOverdue counts Running JobStates whose holder's last
	// heartbeat is older than its heartbeat timeout: an attempt the
	// controller should already have ended.
	HeartbeatOverdue int
	// ProjectionLag is the events of the EventStreams of event-sourced
	// JobStates that their status has not projected yet (stream version
	// minus projected position), summed over those JobStates.
	ProjectionLag int64
}

// StateSource computes the State; it is called at each scrape with a
// context bounded by stateTimeout.
type StateSource func(ctx context.Context) (State, error)

// stateTimeout bounds one StateSource call, within the usual scrape
// timeout (10 s).
const stateTimeout = 5 * time.Second

// The state metrics: no labels but the phase.
var (
	jobStatesDesc = prometheus.NewDesc("jobstate_jobstates",
		"JobStates in the manager's cache, by status.phase.", []string{"phase"}, nil)
	longestRunningDesc = prometheus.NewDesc("jobstate_jobstates_longest_running_seconds",
		"How long the JobState Running longest has been in its current attempt (since the claim); 0 if none is Running. Large values indicate stuck jobs.", nil, nil)
	heartbeatOverdueDesc = prometheus.NewDesc("jobstate_jobstates_heartbeat_overdue",
		"Running JobStates whose last heartbeat is older than spec.heartbeatTimeoutSeconds: attempts the controller has not ended yet. Non-zero for long means the controller is behind or not running.", nil, nil)
	projectionLagDesc = prometheus.NewDesc("jobstate_projection_lag_events",
		"Events of the EventStreams of event-sourced JobStates not yet projected into their status (stream version minus status.projection.position), summed over the JobStates.", nil, nil)
)

// stateCollector reports the State of the source set by ReportState, or
// nothing while there is none (in a process that is no elected manager).
type stateCollector struct {
	source atomic.Pointer[StateSource]
}

var state = &stateCollector{}

// ReportState makes the state metrics report what source computes, at each
// scrape, until stop is called. The manager calls it once elected (see
// controllers), so only the leader reports; a later call replaces source,
// and stop then does nothing.
func ReportState(source StateSource) (stop func()) {
	p := &source
	state.source.Store(p)
	return func() { state.source.CompareAndSwap(p, nil) }
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobStatesDesc
	ch <- longestRunningDesc
	ch <- heartbeatOverdueDesc
	ch <- projectionLagDesc
}

// Collect calls the source. If it fails, nothing is reported (and the
// error logged): an invalid metric would fail the whole scrape.
func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	source := s.source.Load()
	if source == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	st, err := (*source)(ctx)
	if err != nil {
		logf.Log.WithName("metrics").Error(err, "Computing the JobState metrics")
		return
	}
	for phase, n := range st.Phases {
		ch <- prometheus.MustNewConstMetric(jobStatesDesc, prometheus.GaugeValue, float64(n), phase)
	}
	ch <- prometheus.MustNewConstMetric(longestRunningDesc, prometheus.GaugeValue, st.LongestRunning.Seconds())
	ch <- prometheus.MustNewConstMetric(heartbeatOverdueDesc, prometheus.GaugeValue, float64(st.HeartbeatOverdue))
	ch <- prometheus.MustNewConstMetric(projectionLagDesc, prometheus.GaugeValue, float64(st.ProjectionLag))
}
