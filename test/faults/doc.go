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

// Package faults checks jobstate's guarantees under faults, all on
// 127.0.0.1 and bounded in time, against a real kube-apiserver and etcd
// (internal/testenv, restartable) and the manager built from cmd/manager
// running as a process:
//
//   - the kube-apiserver stopped and started again on the same etcd while
//     workers update and append and the manager projects and seals;
//   - the manager killed with SIGKILL in the middle of its work
//     (transitions under Leases, projection, sealing, retention) and a new
//     one started;
//   - responses lost after the API server committed the write
//     (internal/faultproxy between the client and the API server);
//   - a lock holder paused past its TTL (a blocked goroutine on a fake
//     clock, and a process stopped with SIGSTOP) writing late.
//
// Each test states the exact outcome it expects and stops every process it
// starts, also when it fails.
package faults
