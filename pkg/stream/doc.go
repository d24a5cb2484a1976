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

// Package stream is an append-only event store on the Kubernetes API:
// streams of events written with an expected version, stored in EventStream
// objects and the EventSegments they own.
//
// A Client serves every namespace: each call names its stream by a
// client.ObjectKey, as controller-runtime's Reader does. So one Client per
// process and identity (the sealer's, or a worker's) does: group commit,
// the heads it carries and its segment cache are per stream, by namespace
// and name, whichever namespaces it writes.
//
// # Semantics
//
// A stream's version is the position of its last event; positions start at
// 0 and have no gaps. A stream without events has no version (Version
// returns ok false; NoStream, -1, stands for it). Append stores one or more
// events atomically at consecutive positions and can require the stream to
// be at a version (AppendOptions.ExpectedVersion: NoStream or N) or to
// exist (StreamExists). A mismatch is a *VersionConflictError with code
// STREAM_VERSION_CONFLICT and the expected and actual versions. Appending
// events whose ids the stream already holds, in the same order, is a retry:
// it returns the original positions and stores nothing.
//
// Every event has an id (Append makes a UUID for an event without one), so
// an Append whose write's response is lost — a timeout, a dropped
// connection — writes the same events again within its deadline, and gets
// the positions they were stored at, once. Only when the caller's own
// context ends with a write in flight is the outcome unknown: the error
// matches ErrOutcomeUnknown, and retrying with the same ids is safe. One
// caller's deadline never fails another's Append through the same Client.
//
// # Storage
//
// The EventStream object's head holds the newest events and is written by
// every append with the resourceVersion precondition, through pkg/update
// (group commit: concurrent appends from one Client share writes; a Client
// also carries the head it last wrote, so a lone writer makes one request
// per append). When the head grows past 48 events or 128 KiB, the sealer —
// the EventStream controller, or a Client with Options.Sealer — seals its
// older events into an EventSegment named <stream>.<first position, 12
// digits>, owned by the stream, and keeps the newest 16 (at most 32 KiB).
// So an append writes an object of bounded size whatever the stream's
// length, and a stream holds as many events as etcd holds segments. An
// append that would take the head past 128 events or 768 KiB waits for the
// sealer (ErrHeadFull if it waits in vain). Events are stored as one
// string of JSON lines (see jobstatev1alpha1.EventLog for why). Read
// crosses segments transparently (segments are immutable, so a Client
// caches them).
//
// # Who can change history
//
// Enforced by the API server, for every client, kubectl and cluster admins
// included:
//   - the text of a committed event in a head cannot change, and none can
//     be dropped from its end; events leave its front only as head.first
//     advances, and head.first, head.sealedChars and head.sealed change
//     only together (CEL rules on the CRD);
//   - a segment cannot change (CEL);
//   - only the sealer identities (the manager's and the gateway's
//     ServiceAccounts) may create or change segments, or advance head.first
//     (config/admission: ValidatingAdmissionPolicies on request.userInfo,
//     whose match conditions leave appends alone); the worker and editor
//     roles cannot create segments at all (RBAC);
//   - head.commits only grows at its end, but as sealing trims it (CEL);
//   - setting spec.retention or changing an existing stream's owners needs
//     update on eventstreams/lifetime (config/admission), which the editor
//     role has and the worker role does not.
//
// Detected by Read, for what the sealer's own identity could still do (it
// must create segments and move head.first to seal): the head records a
// SHA-256 chain over the segments it sealed (head.sealed), each segment's
// annotations its digest and the chain value before it. Read follows the
// chain back from the head and checks each segment's content against its
// digest: a segment no seal wrote is never served, and a replaced segment
// or a head.first advanced by hand is a *TamperedError naming the segment,
// for reads from before the break; reads after it still work. A seal that
// finds its segment's name taken adopts it only if it is exactly what that
// seal writes (an interrupted earlier seal's), and otherwise replaces it.
// Text that does not decode (stored by hand) is a *MalformedError naming
// the object, field and line; the API server refuses text that does not
// look like the lines this package writes.
//
// # Global position
//
// GlobalPosition orders all events of a namespace's streams: (revision,
// index), where revision is the resourceVersion produced by the EventStream
// write that committed the event and index its place among that write's
// events. etcd assigns each write a revision greater than every earlier
// write's, and resourceVersions of one resource are comparable (KEP-5504,
// resourceversion.CompareResourceVersion), so this order is the commit
// order, with no object shared by the streams.
//
// A write learns its revision only from the response, so it cannot store
// it in the events it writes. Instead the head's unstamped field marks the
// events of its latest write, whose revision is by construction the head's
// current resourceVersion; every later write made by this package records
// that revision (its own precondition) in head.commits before it changes
// anything. Readers use commits, or the head's resourceVersion for the
// unstamped events.
//
// # Metrics
//
// Appends, the events they stored and their version conflicts, seals and
// the segments created and replaced are counted in the jobstate_stream_*
// metrics on controller-runtime's metrics registry (internal/metrics); the
// head writes themselves in jobstate_update_*{resource="eventstreams"}.
//
// # What it does not guarantee
//
//   - Idempotency by id covers the events still in the head: at least the
//     newest 16 (fewer if they exceed 32 KiB). A retry arriving after its
//     events were sealed away stores them again.
//   - The global position of the latest write's events is exact because
//     no other write can hide their revision: a CEL rule requires every
//     write to a head with unrecorded events to record it (change
//     head.unstamped.base, as this package's writes do), and
//     config/admission's eventstream-stamp policy does so on behalf of any
//     other write to the main resource (kubectl label, a spec change), with
//     the revision the API server replaces. A status write is refused
//     until the next write by this package (the controller calls Seal
//     first); without the policy installed, so is every other write, which
//     on a stream appended to without pause may need retrying. The CEL rule
//     cannot see resourceVersions, so a client that forges head.unstamped
//     and head.commits by hand could record a wrong revision. Order within
//     a stream never depends on it.
//   - Segments sealed before streams were chained (before head.sealed
//     existed; head.sealed.from is where the chain starts) are served
//     without verification. Deleting a segment (retention does; a cluster
//     admin may) is not refused: Read reports the events as missing.
//   - An identity that can write head.sealed — the sealer's — can write a
//     new chain over forged segments; the chain makes history tamper-
//     evident against everyone else, not against the sealer itself.
//   - Retention (spec.retention, applied by the EventStream controller)
//     deletes whole segments; a Read from a removed position starts at the
//     oldest kept event.
//   - Deleting a stream deletes its segments through their
//     ownerReferences, which needs the garbage collector
//     (kube-controller-manager).
package stream
