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

// Package lease is a distributed lock on coordination.k8s.io/v1 Lease
// objects: Acquire blocks until the lock is held (or a timeout passes),
// TryAcquire returns at once, Release hands it over. A Client serves one
// holder identity in every namespace: each call names its Lease by a
// client.ObjectKey, so one Client (and one client cache) per process does.
//
// The holder's own writes of its Lease — renewals and the release — go
// through pkg/update: a conflict re-reads the Lease live and writes again
// after a backoff, and an action that finds the Lease no longer ours stops
// the retries. Acquiring does not: its conflicts are lost races that send
// the waiter back to reading and watching, not writes to repeat.
//
// Acquisitions (wait and handoff times), holds and losses are counted in
// the jobstate_lock_* metrics on controller-runtime's metrics registry
// (internal/metrics).
//
// What it guarantees:
//   - Mutual exclusion among live holders: acquiring is a write with the
//     Lease's resourceVersion as precondition, so of two waiters racing for
//     a free or expired lock exactly one succeeds (Conflict and
//     AlreadyExists are the losers' signals to wait again).
//   - Fast handoff: waiters watch the Lease and try again as soon as it is
//     released — milliseconds, where client-go leaderelection polls every
//     RetryPeriod (2s by default).
//   - Crash recovery without trusting clocks across machines: a Lease whose
//     holder stopped renewing is taken over once TTL has passed on the
//     waiter's own clock since it last saw the Lease change (the
//     observed-time rule of client-go leaderelection).
//   - Self-fencing: the holder renews in the background; when a renewal is
//     rejected or cannot be made for TTL minus RenewInterval, Lost() is
//     closed and the Lock's Context() cancelled — before the TTL lets
//     anyone else in, as long as the holder's clock runs at the rate of the
//     waiters' clocks.
//   - A fencing token, Token(): the Lease's leaseTransitions after this
//     acquisition, which grows with every acquisition. Writes guarded with
//     update.Fenced store it in the object and are rejected once a newer
//     token has been stored there.
//
// What it does not guarantee: that a holder which paused (GC, SIGSTOP, a
// partition) past its TTL has stopped acting — it may not know yet. That is
// what the fencing token is for, and it protects only writes that carry it.
// Nor does it order waiters fairly: whoever writes first after a release
// wins.
package lease
