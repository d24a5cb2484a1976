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

// Package jobstate is the worker-facing API of a JobState: Claim an attempt,
// Heartbeat its progress and data, Succeed or Fail it, Cancel the job, or
// apply any updateAction with Update.
//
// Every call but Cancel is one conflict-free update (pkg/update) of the
// JobState's status: it reads the live object, applies a lifecycle
// transition (pkg/lifecycle), and writes it with the resourceVersion
// precondition, re-applying on conflict. So a worker's heartbeat and the
// controller's status write never overwrite each other. (The write itself
// happens in one place: pkg/update's Updater.) Cancel makes two such
// updates: first spec.cancel, the intent, which the controller acts on
// even if this process stops right after; then the Cancel transition of
// the status, which the controller would otherwise make at its next
// reconcile.
//
// An event-sourced JobState (spec.eventStreamRef) is not written this way:
// its status is projected by the controller from its EventStream. Workers
// append events instead — NewEvent with one of the Event* types, through
// pkg/stream, expecting the projected version (ProjectedPosition) — and
// Project is the pure function that applies them, through the same
// lifecycle transitions, each event exactly once.
//
// The attempt number is the fencing token. Claim returns an Attempt (the job,
// this worker's identity and the attempt number); Heartbeat, Succeed and Fail
// present it and fail with an error matching lifecycle.ErrFenced once the
// attempt is no longer current — because the controller declared the holder
// lost and a newer attempt started, or the job was cancelled. A worker that
// sees ErrFenced must stop working on the job.
//
// What it does not guarantee: that only one worker *runs* the job at a time.
// A worker that was declared lost may still be executing; fencing only
// guarantees that it cannot change the JobState any more. Side effects
// outside the JobState need their own fencing (pass Attempt.Attempt along).
package jobstate
