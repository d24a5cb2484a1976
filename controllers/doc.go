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

// Package controllers holds the manager's two reconcilers. JobStateReconciler
// drives what no worker drives in a JobState's lifecycle — the first status,
// spec.cancel, the active deadline, the heartbeat timeout, the TTL — and
// projects event-sourced JobStates (spec.eventStreamRef) from their streams.
// EventStreamReconciler keeps each EventStream's status and spec.retention.
//
// The invariants every change here must keep:
//
//   - Status is written only through the libraries workers use: a JobState's
//     through a jobstate.Client (under the job's Lease when spec.lockPolicy
//     is Lease), an EventStream's through an update.Updater; both write via
//     pkg/update with the resourceVersion precondition, so a concurrent
//     worker's write is re-read and kept, never overwritten. No reconciler
//     calls Status().Update or Patch itself.
//   - Decisions are pure functions of the object and a time read from the
//     reconciler's Clock: for JobStates applyDueTransitions, dueTimer,
//     dueEvent and nextCheck (jobstate_status.go), and likewise an
//     EventStream's status and retention. A table test calls them without a
//     client; the update library applies applyDueTransitions again to the
//     live JobState after a conflict. dueTimer alone owns the order of the
//     timers: spec.cancel, the active deadline, the heartbeat timeout.
//   - The timers of an event-sourced JobState act through its stream: the
//     reconciler appends Cancelled, DeadlineExceeded or Lost, expecting the
//     stream at the position the status was projected from, and never writes
//     that status except by projecting (jobstate.Project). An event appended
//     meanwhile makes the append a conflict; the timer is decided again once
//     that event is projected.
//   - EventStreamReconciler is the one that seals streams (only the
//     manager's identity may, config/admission): it seals a head as soon as
//     it passes the sealing size, and calls stream.Client.Seal before each
//     status write of a stream (which records the latest commit revision,
//     sealing only a head past that size).
//     JobStateReconciler only reads streams and appends to them. Each holds
//     one stream.Client for every namespace (the EventStream reconciler's a
//     Sealer), so appends and seals of one stream group-commit.
//   - Timers are RequeueAfter; input that retrying cannot fix (events lost
//     to retention, a stream recreated behind the projection) is a
//     reconcile.TerminalError. Deletes (the TTL, retention) carry a UID or
//     resourceVersion precondition.
//
// What it does not guarantee: that a timer acts at its due time — it acts
// when the reconcile it requeued runs, so later under load or while no
// manager runs; nor that a worker whose attempt was declared lost stops
// running (fencing only keeps it from writing the JobState again).
package controllers
