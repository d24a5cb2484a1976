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

// Package update applies updateActions to Kubernetes objects so that no write
// is lost, whoever else writes the same object at the same time.
//
// An updateAction is a func(obj) error that changes obj in memory. Update
// reads the object, applies the action, and writes it back with the
// object's resourceVersion as a precondition, so the API server (etcd's
// compare-and-swap) rejects the write with 409 Conflict if anyone else wrote
// in between. On Conflict the object is re-read live from the API server —
// never from an informer cache, which may be behind — and the action is
// applied again to the fresh copy. Retries follow a jittered exponential
// backoff (a wait.Backoff, as client-go's retry.RetryOnConflict takes) that
// grows and then stays flat until the attempts or the time run out; the
// sleeps are on an injectable clock (Options.Clock).
//
// Where the write happens: Updater.write (readwrite.go) is the one call
// here that stores an object, and pkg/jobstate, pkg/stream and the
// controllers change JobStates and EventStreams only through an Updater's
// Update. (pkg/lease renews and releases through one too; taking a Lease is
// its own create or precondition update, and sealing creates immutable
// EventSegments directly.)
//
// Two things make it fast without weakening that guarantee:
//
//   - Carrying: the object passed in is updated in place to what the API
//     server returned. Passed again, its resourceVersion lets the next Update
//     write at once instead of reading first; if it has gone stale the write
//     conflicts and the object is re-read. An uncontended Update is one round
//     trip, like a raw client Update.
//   - Group commit: Updates of the same object through one Updater that
//     arrive while a write is in flight are applied together, in arrival
//     order, to one copy and written once. Each action still sees the
//     effects of all actions committed before it; a caller whose action
//     fails gets its error and its changes are left out of the write.
//
// Every Updater counts its writes' conflicts, its retries, each Update's
// latency by outcome and each stored write's batch size in the
// jobstate_update_* metrics, labelled with the resource it writes, on
// controller-runtime's metrics registry (internal/metrics).
//
// What it guarantees: an Update that returns nil had its action applied
// exactly once to the object state it was written over, and that write was
// accepted by the API server with the resourceVersion precondition. An
// Update that returns an error wrote nothing on behalf of its caller — except
// an *UnknownOutcomeError (errors.Is(err, ErrOutcomeUnknown)): the write
// carrying the action was sent, and then the caller's own context ended or
// the response was lost (a timeout, a dropped connection, a 5xx). The
// action was then applied once or not at all; the library does not apply it
// again.
//
// Each call is bounded by its own context only. A group commit's writes
// last while any of its callers still waits; a caller whose deadline passes
// returns at once — with its context's error if its action had not reached
// a write, else with an *UnknownOutcomeError — and is left out of the
// batch's later attempts, while the others carry on.
//
// What it does not guarantee: fairness between processes (a writer can lose
// every race until its attempts run out — it then gets a *ConflictError, not
// a silent loss); that an action is called once (it is called again after
// every conflict, so it must be a pure function of the object); or any
// ordering between Updates made through different Updaters.
package update
