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

// Package metrics defines jobstate's Prometheus metrics and registers them,
// once, on controller-runtime's registry (metrics.Registry), so any process
// that uses the libraries and serves controller-runtime's metrics endpoint
// exposes them, as controller-runtime's own workqueue and REST client
// metrics are.
//
// Every family is named jobstate_<subsystem>_<name>; Names lists them all.
// Labels are bounded: a resource ("jobstates", "eventstreams", "leases": the
// types an Updater writes), a JobState phase, an outcome — never an object's
// name or namespace.
//
// Which process produces which metric:
//
//   - Every process that writes through pkg/update, pkg/lease or pkg/stream
//     — a worker using pkg/jobstate, the manager, the gateway — produces the
//     library metrics: jobstate_update_* (per resource), jobstate_lock_*
//     and jobstate_stream_*. They count what that process did; sum them
//     across processes for the whole picture. A worker exposes them only
//     if it serves controller-runtime's registry (a manager's metrics
//     server, or promhttp.HandlerFor(metrics.Registry, ...)).
//   - The manager produces, besides its own library metrics (its
//     reconcilers write JobStates, EventStreams and Leases, append timer
//     events and seal), jobstate_stream_segments_deleted_total with reason
//     "retention", and the state metrics computed from its informer cache
//     at scrape time: jobstate_jobstates, jobstate_jobstates_longest_running_seconds,
//     jobstate_jobstates_heartbeat_overdue and jobstate_projection_lag_events.
//     Only the elected leader reports them (see ReportState), so a second
//     replica does not double them.
//   - The gateway has metrics of its own, jobstate_gateway_* (package
//     internal/gateway), besides the library metrics of its stream writes.
//
// What it does not guarantee: that a counter survives a restart (they are
// in memory, as every Prometheus client's: use rate and increase), or that
// the state metrics are exact at the moment of the scrape: they are as
// current as the manager's cache.
package metrics
