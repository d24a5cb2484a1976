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

// Package history records what concurrent callers saw of jobstate's
// libraries — each operation's input, output, and the times it was called
// and returned — and checks those histories for linearizability with
// porcupine against sequential models of a counter (pkg/update), an event
// stream (pkg/stream) and a lock (pkg/lease).
//
// An operation whose outcome the caller cannot know — its write was sent,
// but the response never came (a timeout, a lost connection, its own
// deadline) — is recorded as returning at +∞, as etcd's robustness tests
// do: the checker may then place its effect at any time after it was
// called, or (by placing it after every other operation) nowhere. Only a
// definite refusal (a conflict, a version conflict, a validation error) is
// recorded as having no effect. OutcomeOf is that classification.
//
// What it guarantees: a history the checker reports Ok has an order of its
// operations, each placed between its call and return, that the model
// accepts; Illegal means there is none.
//
// What it does not guarantee: anything about operations that were not
// recorded, nor about time the models do not have — the lock model lets
// any acquisition take over from a holder that vanished (its TTL passed)
// without measuring the TTL. A check that times out reports Unknown, which
// is no verdict.
package history
