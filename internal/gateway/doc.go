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

// Package gateway serves EventoDB's HTTP protocol on EventStreams, so that
// EventoDB's clients — curl, its SDKs, any language — read and write
// streams stored in the Kubernetes API, with Kubernetes RBAC for access.
//
// # What it guarantees
//
//   - The protocol is EventoDB's: POST /rpc with ["method", ...args],
//     the bare result on success, {"error":{"code","message","details"}}
//     otherwise, with EventoDB's codes and statuses; GET /subscribe, GET
//     /health, GET /version. An EventoDB client works unchanged.
//   - Every write goes through pkg/stream, so a stream's positions have no
//     gaps and no duplicates, an expected version is checked atomically
//     with the write (STREAM_VERSION_CONFLICT: "Expected version 2, stream
//     is at version 3", details {expected, actual}), and a message id is
//     stored at most once. Concurrent writes to one stream through one
//     Server share API requests (group commit); Servers in several
//     replicas are correct together (every write carries its
//     resourceVersion precondition), as the gateway keeps no state that
//     matters.
//   - Reads are live (stream.get, stream.last, stream.version: a GET;
//     category.get: one List of the namespace's heads), so a client reads
//     its own writes from any replica.
//   - A namespace is a Kubernetes namespace; a call acts in the one its
//     token names (package auth), and nothing in another is reachable.
//   - Nothing a client sends makes a 500: a malformed body, a wrong
//     argument type, an oversized body, an unknown method are a 4xx that
//     says what and where, and store nothing. BACKEND_ERROR (503) is the
//     API server failing or the gateway's own RBAC missing.
//
// # Where it differs from EventoDB, on purpose
//
//   - A write whose id the stream already holds answers the position it
//     was stored at (EventoDB: 500), so a client may retry a write whose
//     answer it lost. The id decides: a retry with different content is
//     still the original.
//   - Conflict details are always present.
//   - Only an admin manages namespaces (ns.create, ns.delete, ns.list); in
//     EventoDB any token can delete any namespace. ns.info needs a token
//     of that namespace.
//   - stream.write's message may be an array of messages, stored
//     atomically at consecutive positions (the answer adds positions and
//     globalPositions); a plain client never sends one.
//   - globalPosition is the commit revision × 1000 + the event's index in
//     its write (see position.go): it increases in commit order across a
//     namespace's streams, but is sparse, not 1, 2, 3.
//   - GET /subscribe's consumer groups use Message DB's hash, as
//     category.get does (EventoDB's /subscribe hashes the stream name
//     another way, so there its pokes and its category.get disagree on
//     members). It reads consumer and size; EventoDB's documented
//     consumerGroupMember and consumerGroupSize are refused with a 400
//     naming those, rather than ignored.
//   - A namespace id must be a Kubernetes namespace name (a DNS label).
//   - A stream name is any UTF-8 string up to 1024 bytes; one that is not
//     an object name is stored under a mapped name, and the EventStream's
//     eventodb.jobstate.dev/stream annotation (kubectl get es: STREAM)
//     keeps the original.
//
// # What it does not guarantee
//
//   - category.get reads every head of the namespace (one List) and the
//     segments of streams with events at or after the position: it is
//     made for namespaces of hundreds of streams, not millions.
//   - A message is at most 64 KiB, and a write at most 100 messages and
//     256 KiB (pkg/stream's bounds). A stream's head takes 128 events
//     until the EventStream controller seals it: writes to a stream wait
//     (and fail with BACKEND_ERROR after their deadline) if the controller
//     is not running.
//   - Two stream names whose mapped object names collide (64 bits of
//     SHA-256: a deliberate collision takes about 2^32 tries) share one
//     EventStream. Only names of one namespace can collide, which whoever
//     makes them can write anyway.
//   - Idempotency by id reaches back as far as pkg/stream's: the events
//     still in the head (at least the newest 16).
//   - Pokes carry no SSE id, so a browser EventSource reconnecting by
//     itself starts again from the position it first asked for; no CORS
//     header is sent. Nothing bounds how many subscriptions a token opens.
package gateway
