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

// Package e2e runs jobstate the way a user does: the CRDs applied with
// kubectl, the manager and the demo worker as their own processes (built
// from cmd/manager and examples/worker), the samples applied with kubectl,
// and illegal edits attempted with kubectl — all against a real
// kube-apiserver on 127.0.0.1.
package e2e
