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

// Package plugin is kubectl-jobstate, the kubectl plugin: `kubectl
// jobstate jobs|streams|locks ...`, built on k8s.io/cli-runtime (the
// kubeconfig flags and printers kubectl has) and on pkg/jobstate and
// pkg/stream for every write, so what it writes is fenced and
// conflict-free like any worker's.
//
// # Exit codes
//
//   - 0: done.
//   - 1: an error (the API server, a missing object, ...).
//   - 2: bad usage (a flag, an argument): nothing was written.
//   - 3: STREAM_VERSION_CONFLICT: `streams append --expected-version N`
//     found the stream at another version; nothing was written.
//   - 4: refused by the job's state: a fenced write (another holder or
//     attempt owns the job) or an illegal transition; nothing was
//     written.
package plugin
