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

// Package lifecycle is the JobState state machine: which phase transitions
// are legal, who may make them, and exactly how each one changes the status.
//
// It is pure — no client, no clock, no I/O — so the worker library
// (pkg/jobstate) and the reconciler (controllers/) share one definition of
// the lifecycle and a table test can cover all of it:
//
//	             Claim                 Succeed
//	Pending ───────────────► Running ───────────► Succeeded
//	   ▲  │                  │  │ │
//	   │  │   Fail / Lose    │  │ │ Fail / Lose (attempt = backoffLimit+1)
//	   │  │   (retries left) │  │ └──────────────► Failed ◄── ExceedDeadline
//	   └──┼──────────────────┘  │
//	      │ Cancel              │ Cancel
//	      └──────────────► Cancelled ◄┘
//
// The attempt number is the fencing token: Heartbeat, Succeed and Fail
// require the Holder and Attempt of the current attempt, and fail with a
// *FencedError for anyone else — a worker whose attempt was declared lost
// cannot overwrite its successor's progress.
//
// What this package does not do: it does not make a change durable or
// atomic. Callers apply these functions inside an update action
// (pkg/update), which writes with a resourceVersion precondition and
// re-applies them to the live object after a conflict. The API server's CEL
// rules enforce the coarse invariants (terminal phases are final, attempt
// never decreases) for writers that bypass this package.
package lifecycle
