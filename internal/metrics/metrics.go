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
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Outcomes of an Update, the result label of jobstate_update_duration_seconds.
const (
	ResultSuccess  = "success"
	ResultConflict = "conflict" // gave up: the object kept changing (update.ConflictError)
	ResultError    = "error"    // any other error: refused, timed out, unknown outcome
)

// Reasons a segment is deleted, the reason label of
// jobstate_stream_segments_deleted_total.
const (
	SegmentRetention = "retention" // spec.retention no longer keeps it (the manager)
	SegmentReplaced  = "replaced"  // a seal replaced a segment no seal wrote
)

// Buckets, in seconds. Why these: an uncontended write is one round trip
// (3 ms at 1 KiB to 34 ms at 1 MiB on a local API server, ARCHITECTURE.md);
// a contended Update backs off up to about 80 ms per attempt and gives up
// after about 3 s by default, a stream Append after 30 s. A free lock costs
// one write; a crashed holder's is taken over after its TTL (15 s by
// default); a handoff is a watch event and a write, milliseconds.
var (
	updateBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	batchBuckets   = prometheus.ExponentialBuckets(1, 2, 9) // 1 to 256 updates
	waitBuckets    = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	holdBuckets    = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}
	handoffBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// The library metrics of pkg/update (by resource).
var (
	updateConflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobstate_update_conflicts_total",
		Help: "Writes the API server refused because the object changed since it was read (409 Conflict, or AlreadyExists on a create that lost a race), by resource.",
	}, []string{"resource"})
	updateRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobstate_update_retries_total",
		Help: "Writes tried again, after a backoff, because the last one conflicted (or, creating, the object vanished): every attempt of a group commit after its first, by resource.",
	}, []string{"resource"})
	updateDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jobstate_update_duration_seconds",
		Help:    "Time from an Update call to its result, retries and group-commit waits included, by resource and result (success, conflict: gave up as the object kept changing, error).",
		Buckets: updateBuckets,
	}, []string{"resource", "result"})
	updateBatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jobstate_update_group_commit_updates",
		Help:    "Updates carried by each write the API server stored (group commit: concurrent Updates of one object through one Updater share a write), by resource.",
		Buckets: batchBuckets,
	}, []string{"resource"})
)

// The library metrics of pkg/lease.
var (
	// LockWait observes, per acquisition, the seconds from Acquire or
	// TryAcquire being called to holding the lock.
	LockWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "jobstate_lock_wait_seconds",
		Help:    "Time from Acquire (or TryAcquire) being called to holding the Lease lock, for acquisitions that succeeded.",
		Buckets: waitBuckets,
	})
	// LockHold observes, per Lock, the seconds from acquired to released
	// or lost.
	LockHold = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "jobstate_lock_hold_seconds",
		Help:    "Time a Lease lock was held: from acquired to released (Release, or the Acquire context ending) or lost.",
		Buckets: holdBuckets,
	})
	// LockHandoff observes, per acquisition that waited for a release, the
	// seconds from seeing the release to holding the lock.
	LockHandoff = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "jobstate_lock_handoff_seconds",
		Help:    "For an acquisition that found the lock held and then saw it released (holderIdentity cleared, read or delivered by the watch), the time from seeing the release to holding the lock; a lost race to another waiter starts the wait again. Takeovers of expired Leases are not handoffs.",
		Buckets: handoffBuckets,
	})
	// LockLosses counts locks lost while held.
	LockLosses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobstate_lock_losses_total",
		Help: "Lease locks lost while held: a renewal found the Lease taken over or deleted, or no renewal succeeded within TTL - RenewInterval. Releases are not losses.",
	})
)

// The library metrics of pkg/stream.
var (
	// StreamAppends counts Appends that stored their events.
	StreamAppends = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobstate_stream_appends_total",
		Help: "Appends that stored their events (a retry recognized by its event ids stores nothing and is not counted).",
	})
	// StreamAppendedEvents counts the events those Appends stored.
	StreamAppendedEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobstate_stream_appended_events_total",
		Help: "Events stored by Appends.",
	})
	// StreamAppendConflicts counts Appends refused with
	// STREAM_VERSION_CONFLICT.
	StreamAppendConflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobstate_stream_append_conflicts_total",
		Help: "Appends refused with STREAM_VERSION_CONFLICT: the stream was not at the expected version.",
	})
	// StreamSeals counts head writes that sealed events into segments.
	StreamSeals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobstate_stream_seals_total",
		Help: "Stream head writes that sealed events into EventSegments (by the sealer: the manager, or a Client with Sealer set).",
	})
	// StreamSegmentsCreated counts EventSegments created by seals.
	StreamSegmentsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobstate_stream_segments_created_total",
		Help: "EventSegments created by seals.",
	})
	streamSegmentsDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobstate_stream_segments_deleted_total",
		Help: "EventSegments deleted, by reason: retention (spec.retention, by the manager) or replaced (a seal found a segment no seal wrote in its place).",
	}, []string{"reason"})
)

// SegmentsDeleted counts a segment deleted for reason (SegmentRetention or
// SegmentReplaced).
func SegmentsDeleted(reason string) prometheus.Counter {
	return streamSegmentsDeleted.WithLabelValues(reason)
}

// Resource is the pkg/update metrics of one resource, with their label
// values bound: what an Updater keeps, so that observing allocates nothing.
type Resource struct {
	Conflicts, Retries prometheus.Counter
	// Duration by result: ResultSuccess, ResultConflict, ResultError.
	Success, Conflict, Error prometheus.Observer
	// Batch observes the updates per stored write.
	Batch prometheus.Observer
}

// ForResource returns the metrics of resource (a lowercase plural, as in
// "jobstates"). Its series exist, at zero, from then on.
func ForResource(resource string) Resource {
	return Resource{
		Conflicts: updateConflicts.WithLabelValues(resource),
		Retries:   updateRetries.WithLabelValues(resource),
		Success:   updateDuration.WithLabelValues(resource, ResultSuccess),
		Conflict:  updateDuration.WithLabelValues(resource, ResultConflict),
		Error:     updateDuration.WithLabelValues(resource, ResultError),
		Batch:     updateBatch.WithLabelValues(resource),
	}
}

// collectors is everything this package registers.
var collectors = []prometheus.Collector{
	updateConflicts, updateRetries, updateDuration, updateBatch,
	LockWait, LockHold, LockHandoff, LockLosses,
	StreamAppends, StreamAppendedEvents, StreamAppendConflicts, StreamSeals, StreamSegmentsCreated, streamSegmentsDeleted,
	state,
}

func init() {
	// Both reasons exist at zero: a deletion is rare, and an alert on
	// replaced segments needs the series before the first.
	SegmentsDeleted(SegmentRetention)
	SegmentsDeleted(SegmentReplaced)
	ctrlmetrics.Registry.MustRegister(collectors...)
}

// Names returns the name of every metric family this package registers,
// sorted. (TestNamesAreWhatIsRegistered keeps it in step with the
// definitions.)
func Names() []string {
	return []string{
		"jobstate_jobstates",
		"jobstate_jobstates_heartbeat_overdue",
		"jobstate_jobstates_longest_running_seconds",
		"jobstate_lock_handoff_seconds",
		"jobstate_lock_hold_seconds",
		"jobstate_lock_losses_total",
		"jobstate_lock_wait_seconds",
		"jobstate_projection_lag_events",
		"jobstate_stream_append_conflicts_total",
		"jobstate_stream_appended_events_total",
		"jobstate_stream_appends_total",
		"jobstate_stream_seals_total",
		"jobstate_stream_segments_created_total",
		"jobstate_stream_segments_deleted_total",
		"jobstate_update_conflicts_total",
		"jobstate_update_duration_seconds",
		"jobstate_update_group_commit_updates",
		"jobstate_update_retries_total",
	}
}

// Observed returns how many values o has observed and their sum: for
// tests, which compare them before and after a workload. o is a Histogram,
// or an Observer of a HistogramVec (ForResource's).
func Observed(o prometheus.Observer) (count uint64, sum float64) {
	m := &dto.Metric{}
	if err := o.(prometheus.Metric).Write(m); err != nil {
		panic(err) // only a Metric with invalid label values fails, and ours have none
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}
