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
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// metrics are the gateway's Prometheus metrics.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	messages      prometheus.Histogram
	batch         prometheus.Histogram
	conflicts     prometheus.Counter
	subscriptions prometheus.GaugeFunc
}

// newMetrics registers the metrics on reg; open counts the subscriptions.
func newMetrics(reg prometheus.Registerer, open func() int) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobstate_gateway_requests_total",
			Help: "RPC calls answered, by method and EventoDB code (OK for a success).",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jobstate_gateway_request_duration_seconds",
			Help:    "Time from reading an RPC call to answering it, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
		messages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jobstate_gateway_write_messages",
			Help:    "Messages per stream.write call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jobstate_gateway_group_commit_appends",
			Help:    "Appends carried by each EventStream write (group commit: concurrent writes to one stream share one).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobstate_gateway_eventstream_write_conflicts_total",
			Help: "EventStream writes refused with 409 Conflict (another writer got there first) and retried.",
		}),
		subscriptions: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jobstate_gateway_subscriptions_open",
			Help: "GET /subscribe connections open.",
		}, func() float64 { return float64(open()) }),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.messages, m.batch, m.conflicts, m.subscriptions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeWrite is the stream.Client's update.Options.OnWrite: it records
// each EventStream write's batch size, and its conflicts.
func (s *Server) observeWrite(appends int, err error) {
	switch {
	case err == nil:
		s.metrics.batch.Observe(float64(appends))
	case apierrors.IsConflict(err):
		s.metrics.conflicts.Inc()
	}
}
