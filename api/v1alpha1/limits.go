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

package v1alpha1

// Defaults and bounds of the JobState API that code relies on. Each is also
// written as a literal in a +kubebuilder marker in jobstate_types.go, since
// markers cannot name constants; limits_test.go checks every one against the
// generated CRD, so the two cannot drift apart. Lengths count characters
// (Unicode code points), as the API server's maxLength does.
const (
	// DefaultBackoffLimit is spec.backoffLimit's default: 2 retries, 3
	// attempts in all.
	DefaultBackoffLimit int32 = 2
	// DefaultHeartbeatTimeoutSeconds is spec.heartbeatTimeoutSeconds'
	// default.
	DefaultHeartbeatTimeoutSeconds int32 = 60
	// MaxProgress is status.progress's maximum: the job is done.
	MaxProgress int32 = 100
	// MaxHolderLength is status.holder's maxLength.
	MaxHolderLength = 253
	// MaxMessageLength is status.message's maxLength.
	MaxMessageLength = 4096
	// MaxRejectedEvents is status.projection.rejected's maxItems.
	MaxRejectedEvents = 16
	// MaxRejectedTypeLength is status.projection.rejected[].type's maxLength.
	MaxRejectedTypeLength = 128
	// MaxRejectedMessageLength is status.projection.rejected[].message's
	// maxLength.
	MaxRejectedMessageLength = 1024
)

// Bounds of the EventStream API that code relies on, checked the same way
// (eventstream_types.go).
const (
	// MaxEventLogLength is the maxLength of head.events and of a segment's
	// spec.events: what one object may hold of events, in characters.
	MaxEventLogLength = 1048576
	// MaxStreamNameLength bounds an EventStream's name (a CEL rule) and a
	// segment's spec.stream: a segment's name adds 13 characters.
	MaxStreamNameLength = 240
	// MaxEventTypeLength bounds an event's type. Events are stored as
	// text (EventLog), so the CRD cannot check it: pkg/stream does.
	MaxEventTypeLength = 128
)
