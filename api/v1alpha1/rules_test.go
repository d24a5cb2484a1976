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

package v1alpha1_test

// The rules of validation_test.go's tables, for every resource and policy:
// one row per rule (keyed as crdrules_test.go says), each an illegal write
// made to the real API server, refused with the field named, leaving the
// stored object exactly as it was.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// Who makes a rule case's write.
const (
	asSealer = ""       // env.Client: the manager's ServiceAccount, in system:masters
	asAdmin  = "admin"  // a cluster admin (system:masters) who is not the sealer
	asWorker = "worker" // config/rbac/worker_role.yaml in the test's namespace
	// asGateway is the EventoDB gateway's ServiceAccount, in system:masters.
	asGateway = "gateway"
	// asDeleter is a worker that may also delete EventStreams: on a
	// cluster enforcing OwnerReferencesPermissionEnforcement (the test
	// control plane does) only such a client gets past it to set an
	// ownerReference, and so to the policy's own refusal.
	asDeleter = "deleter"
)

// ruleCase is one illegal write of any resource.
type ruleCase struct {
	rule string // the rule's key (crdrules_test.go)
	name string
	// stored is the legal object the write starts from, created by the
	// sealer; nil for a create.
	stored func(ns, name string) client.Object
	// create is the illegal object to create, when stored is nil.
	create func(ns, name string) client.Object
	// write is the illegal write of a copy of the stored object.
	write objectWrite
	as    string
	// field is the field a cause of an Invalid error must be on; for a
	// Forbidden one (an admission policy), want names the fields.
	field     string
	want      []string
	forbidden bool
}

// objectWrite is a write of any object (validation_test.go's write is of a
// JobState).
type objectWrite func(ctx context.Context, c client.Client, obj client.Object) error

// t0 is when the test events happened.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testEvents are events at positions from to to, as pkg/stream stores them.
func testEvents(from, to int64) []jobstatev1alpha1.Event {
	var out []jobstatev1alpha1.Event
	for p := from; p <= to; p++ {
		out = append(out, jobstatev1alpha1.Event{
			Position: p, ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", p), Type: "Counted",
			Data: runtime.RawExtension{Raw: fmt.Appendf(nil, `{"i":%d}`, p)},
			Time: metav1.NewMicroTime(t0.Add(time.Duration(p) * time.Second)),
		})
	}
	return out
}

// chars is the number of characters the events take in a head.
func chars(events []jobstatev1alpha1.Event) int64 {
	n, err := jobstatev1alpha1.NewEventLog(events...).Chars()
	if err != nil {
		panic(err)
	}
	return n
}

// streamAt is an EventStream whose head holds events first to version, the
// ones before first sealed (head.sealed records a chain), and whose latest
// append's commit revision is recorded, so anyone may write it.
func streamAt(first, version int64) func(ns, name string) client.Object {
	return func(ns, name string) client.Object {
		all := testEvents(0, version)
		h := &jobstatev1alpha1.EventStreamHead{
			Version: version, First: first, SealedChars: chars(all[:first]),
			Events:    jobstatev1alpha1.NewEventLog(all[first:]...),
			Commits:   jobstatev1alpha1.NewCommitLog(jobstatev1alpha1.Commit{From: first, Revision: "100"}),
			Unstamped: jobstatev1alpha1.Unstamped{From: version + 1, Base: "101"},
		}
		if first > 0 {
			h.Sealed = &jobstatev1alpha1.SealedChain{From: 0, Chain: strings.Repeat("a", 64)}
		}
		return &jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Head: h}
	}
}

// unstampedStream is a stream whose latest append (events 2 and 3) has no
// commit record yet.
func unstampedStream(ns, name string) client.Object {
	es := streamAt(0, 3)(ns, name).(*jobstatev1alpha1.EventStream)
	es.Head.Unstamped = jobstatev1alpha1.Unstamped{From: 2, Base: "101"}
	return es
}

// segment is a legal EventSegment holding events 0 to 1 of stream s.
func segment(ns, name string) client.Object {
	return &jobstatev1alpha1.EventSegment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: jobstatev1alpha1.EventSegmentSpec{
			Stream: "s", First: 0, Last: 1,
			Events:  jobstatev1alpha1.NewEventLog(testEvents(0, 1)...),
			Commits: jobstatev1alpha1.NewCommitLog(jobstatev1alpha1.Commit{From: 0, Revision: "100"}),
		},
	}
}

// jobState is a legal JobState with status Pending; eventSourced ones
// project from a stream.
func jobState(eventSourced bool) func(ns, name string) client.Object {
	return func(ns, name string) client.Object {
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if eventSourced {
			js.Spec.EventStreamRef = &jobstatev1alpha1.EventStreamReference{Name: "events"}
		}
		js.Status = stPending
		return js
	}
}

// leaseJob is a Pending JobState with lockPolicy Lease.
func leaseJob(ns, name string) client.Object {
	js := jobState(false)(ns, name).(*jobstatev1alpha1.JobState)
	js.Spec.LockPolicy = jobstatev1alpha1.LockPolicyLease
	return js
}

// cancelledLeaseJob is an event-sourced JobState with lockPolicy Lease and
// spec.cancel set.
func cancelledLeaseJob(ns, name string) client.Object {
	js := jobState(true)(ns, name).(*jobstatev1alpha1.JobState)
	js.Spec.LockPolicy = jobstatev1alpha1.LockPolicyLease
	js.Spec.Cancel = true
	return js
}

// succeededJob is a JobState that Succeeded.
func succeededJob(ns, name string) client.Object {
	js := jobState(false)(ns, name).(*jobstatev1alpha1.JobState)
	js.Status = stSucceeded
	return js
}

// projected is an event-sourced JobState that projected events up to 5,
// rejecting one.
func projected(ns, name string) client.Object {
	js := jobState(true)(ns, name).(*jobstatev1alpha1.JobState)
	js.Status.Projection = &jobstatev1alpha1.ProjectionStatus{
		Position:      ptr.To[int64](5),
		Rejected:      []jobstatev1alpha1.RejectedEvent{{Position: 2, Type: "Exploded", Reason: "UnknownType"}},
		RejectedCount: 1,
	}
	return js
}

// raw is an object of kind as a client outside Go sends it: the JSON body
// as given, which may lack fields the Go types always send.
func raw(kind, body string) func(ns, name string) client.Object {
	return func(ns, name string) client.Object {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal([]byte(body), &u.Object); err != nil {
			panic(fmt.Sprintf("%s: %v", body, err))
		}
		u.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind(kind))
		u.SetNamespace(ns)
		u.SetName(name)
		return u
	}
}

// segmentJSON is segment's spec as JSON, with fields replaced (a null
// value removes the field).
func segmentJSON(replace map[string]any) string {
	spec := map[string]any{
		"stream": "s", "first": 0, "last": 1,
		"events":  mustText(jobstatev1alpha1.NewEventLog(testEvents(0, 1)...).Text()),
		"commits": `{"from":0,"revision":"100"}` + "\n",
	}
	for k, v := range replace {
		if v == nil {
			delete(spec, k)
		} else {
			spec[k] = v
		}
	}
	b, _ := json.Marshal(map[string]any{"spec": spec})
	return string(b)
}

func mustText(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// updateAs writes obj changed by mutate through the main resource.
func updateAs[T client.Object](mutate func(T)) objectWrite {
	return func(ctx context.Context, c client.Client, obj client.Object) error {
		mutate(obj.(T))
		return c.Update(ctx, obj)
	}
}

// mergePatch sends a JSON merge patch (no precondition), as kubectl patch
// --type=merge does.
func mergePatch(patch string) objectWrite {
	return func(ctx context.Context, c client.Client, obj client.Object) error {
		return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
}

// statusMergePatch sends a JSON merge patch to the status subresource.
func statusMergePatch(patch string) objectWrite {
	return func(ctx context.Context, c client.Client, obj client.Object) error {
		return c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
}

// updateHead writes the stream with its head changed by mutate.
func updateHead(mutate func(h *jobstatev1alpha1.EventStreamHead)) objectWrite {
	return updateAs(func(es *jobstatev1alpha1.EventStream) { mutate(es.Head) })
}

// seal changes h as a seal of its events up to (not including) end does;
// with keepChain, head.sealed stays as it was.
func seal(h *jobstatev1alpha1.EventStreamHead, end int64, keepChain bool) {
	n := end - h.First
	h.SealedChars += chars(h.Events.Items[:n])
	h.Events.Items = h.Events.Items[n:]
	h.First = end
	if !keepChain {
		h.Sealed = &jobstatev1alpha1.SealedChain{From: 0, Chain: strings.Repeat("b", 64)}
	}
}

// conditionJSON is a legal condition of type typ with fields replaced (a
// null value removes the field).
func conditionJSON(typ string, replace map[string]any) map[string]any {
	c := map[string]any{
		"type": typ, "status": "False", "reason": "Created", "message": "",
		"lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
	}
	for k, v := range replace {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// conditionsPatch is a status merge patch setting status.conditions.
func conditionsPatch(conditions ...map[string]any) objectWrite {
	b, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": conditions}})
	return statusMergePatch(string(b))
}

// conditionCases are the rules of metav1.Condition, which both resources'
// status.conditions use, written to a stored object of resource.
func conditionCases(resource string, stored func(ns, name string) client.Object) []ruleCase {
	key := func(path, keyword string) string { return resource + " status.conditions" + path + " " + keyword }
	one := func(replace map[string]any) objectWrite { return conditionsPatch(conditionJSON("Ready", replace)) }
	var nine []map[string]any
	for i := range 9 {
		nine = append(nine, conditionJSON(fmt.Sprintf("T%d", i), nil))
	}
	c0 := "status.conditions[0]"
	cases := []ruleCase{
		{rule: key("", "maxItems"), name: "9 conditions", write: conditionsPatch(nine...), field: "status.conditions", want: []string{"must have at most 8 items"}},
		{rule: key("", "listType=map"), name: "two of one type", write: conditionsPatch(conditionJSON("Ready", nil), conditionJSON("Ready", map[string]any{"status": "True"})), field: "status.conditions[1]", want: []string{"Duplicate value"}},
		{rule: key("[].type", "pattern"), name: "type with a space", write: one(map[string]any{"type": "Not Ready"}), field: c0 + ".type", want: []string{"should match"}},
		{rule: key("[].type", "maxLength"), name: "type 317 chars", write: one(map[string]any{"type": strings.Repeat("t", 317)}), field: c0 + ".type", want: []string{"Too long", "316"}},
		{rule: key("[].type", "required"), name: "no type", write: one(map[string]any{"type": nil}), field: c0 + ".type", want: []string{"Required value"}},
		{rule: key("[].status", "enum"), name: "status Maybe", write: one(map[string]any{"status": "Maybe"}), field: c0 + ".status", want: []string{"Unsupported value", `"Maybe"`}},
		{rule: key("[].status", "required"), name: "no status", write: one(map[string]any{"status": nil}), field: c0 + ".status", want: []string{"Required value"}},
		{rule: key("[].reason", "pattern"), name: "reason with a space", write: one(map[string]any{"reason": "Not created"}), field: c0 + ".reason", want: []string{"should match"}},
		{rule: key("[].reason", "minLength"), name: "empty reason", write: one(map[string]any{"reason": ""}), field: c0 + ".reason", want: []string{"at least 1 chars long"}},
		{rule: key("[].reason", "maxLength"), name: "reason 1025 chars", write: one(map[string]any{"reason": strings.Repeat("R", 1025)}), field: c0 + ".reason", want: []string{"Too long", "1024"}},
		{rule: key("[].reason", "required"), name: "no reason", write: one(map[string]any{"reason": nil}), field: c0 + ".reason", want: []string{"Required value"}},
		{rule: key("[].message", "maxLength"), name: "message 32769 chars", write: one(map[string]any{"message": strings.Repeat("m", 32769)}), field: c0 + ".message", want: []string{"Too long", "32768"}},
		{rule: key("[].message", "required"), name: "no message", write: one(map[string]any{"message": nil}), field: c0 + ".message", want: []string{"Required value"}},
		{rule: key("[].lastTransitionTime", "required"), name: "no lastTransitionTime", write: one(map[string]any{"lastTransitionTime": nil}), field: c0 + ".lastTransitionTime", want: []string{"Required value"}},
		{rule: key("[].observedGeneration", "minimum"), name: "observedGeneration -1", write: one(map[string]any{"observedGeneration": -1}), field: c0 + ".observedGeneration", want: []string{"greater than or equal to 0"}},
	}
	for i := range cases {
		cases[i].stored = stored
	}
	return cases
}

// Messages of the CEL rules in eventstream_types.go and of the policies in
// config/admission, matched verbatim.
const (
	msgEventsImmutable = "committed events are immutable: head.events may only grow at its end, or lose its oldest events by sealing them"
	msgCommitsGrow     = "head.commits may only grow at its end (sealing trims its front): the commit revisions of stored events cannot change"
	msgFirstBeyond     = "head.first cannot be beyond head.version + 1"
	msgFirstBySealing  = "head.first grows only by sealing, which records the new segments in head.sealed"
	msgFirstDecrease   = "head.first may not decrease: sealed events cannot be reopened"
	msgSealedChanges   = "head.sealed changes only when events are sealed (head.first grows), and head.sealed.from never"
	msgSealedChars     = "head.sealedChars may only grow, and only when events are sealed (head.first grows)"
	msgVersionDecrease = "head.version may not decrease: committed events cannot be removed"
	msgUnstampedBack   = "head.unstamped.from may not decrease: events whose commit revision is recorded cannot be made the latest write's again"
	msgUnstamped       = "the commit revision of this stream's latest append is not recorded yet: a status write waits until pkg/stream records it (stream.Seal); any other write is recorded by config/admission's eventstream-stamp policy, if it is installed. Retry in a second"
	msgStreamName      = "metadata.name of an EventStream has at most 240 characters (its segments append a 13-character suffix)"
	msgMaxAge          = "spec.retention.maxAge must be a positive Go duration, e.g. 720h or 90m"
	msgSegment         = "an EventSegment is immutable: its events are committed"
	msgProjection      = "status.projection.position may not decrease: events are applied exactly once"
	msgStreamRef       = "spec.eventStreamRef is immutable"
	// Rules added with these tests: without them, each of these writes
	// was stored.
	msgStreamRefFixed    = "spec.eventStreamRef cannot be added or removed after the JobState is created"
	msgProjectionRemoved = "status.projection cannot be removed once set: events are applied exactly once"
	msgSpecRemoved       = "spec cannot be removed once set: the rules on spec.cancel, spec.lockPolicy and spec.eventStreamRef hold for every write"
	msgStatusRemoved     = "status cannot be removed once set: the rules on status.phase, status.attempt, status.lockToken and status.projection hold for every write"
)

// ruleCases are the rows of TestRulesRefuseIllegalWrites.
func ruleCases() []ruleCase {
	head := func(rule string) string { return "eventstreams head rule: " + rule }
	stream := func(path, keyword string) string { return "eventstreams " + path + " " + keyword }
	seg := func(path, keyword string) string { return "eventsegments " + path + " " + keyword }
	job := func(path, keyword string) string { return "jobstates " + path + " " + keyword }
	headJSON := func(head string) func(ns, name string) client.Object {
		return raw("EventStream", `{"head":`+head+`}`)
	}
	onHead := func(field string) string { return "head." + field }
	events := func(from, to int64) string {
		return mustText(jobstatev1alpha1.NewEventLog(testEvents(from, to)...).Text())
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }

	cases := []ruleCase{
		// EventStream: the CEL rules of the head, each written by the
		// sealer, whom the admission policies let through, so that only
		// the rule refuses.
		{rule: head(msgEventsImmutable), name: "edit an event's data", stored: streamAt(0, 3),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { h.Events.Items[1].Data.Raw = []byte(`{"i":-1}`) }),
			field: "head", want: []string{msgEventsImmutable}},
		{rule: head(msgEventsImmutable), name: "drop the oldest event without sealing it", stored: streamAt(4, 9),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { h.Events.Items = h.Events.Items[1:] }),
			field: "head", want: []string{msgEventsImmutable}},
		{rule: head(msgEventsImmutable), name: "remove head.events", stored: streamAt(0, 3),
			write: mergePatch(`{"head":{"events":null}}`), field: "head", want: []string{msgEventsImmutable}},
		{rule: head(msgCommitsGrow), name: "rewrite a commit revision", stored: streamAt(0, 3),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { h.Commits.Items[0].Revision = "1" }),
			field: "head", want: []string{msgCommitsGrow}},
		{rule: head(msgCommitsGrow), name: "remove head.commits", stored: streamAt(0, 3),
			write: mergePatch(`{"head":{"commits":null}}`), field: "head", want: []string{msgCommitsGrow}},
		{rule: head(msgFirstBeyond), name: "create with first 3 > version 1 + 1", create: headJSON(`{"version":1,"first":3}`),
			field: "head", want: []string{msgFirstBeyond}},
		{rule: head(msgFirstBeyond), name: "seal past the last event", stored: streamAt(0, 3),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { seal(h, 4, false); h.First = 5 }),
			field: "head", want: []string{msgFirstBeyond}},
		{rule: head(msgFirstBySealing), name: "advance first without recording a chain", stored: streamAt(4, 9),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { seal(h, 6, true) }),
			field: "head", want: []string{msgFirstBySealing}},
		{rule: head(msgFirstDecrease), name: "reopen sealed events", stored: streamAt(4, 9),
			write: mergePatch(`{"head":{"first":0}}`), field: "head", want: []string{msgFirstDecrease}},
		{rule: head(msgSealedChanges), name: "change the chain without sealing", stored: streamAt(4, 9),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { h.Sealed.Chain = strings.Repeat("c", 64) }),
			field: "head", want: []string{msgSealedChanges}},
		{rule: head(msgSealedChanges), name: "move sealed.from while sealing", stored: streamAt(4, 9),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { seal(h, 6, false); h.Sealed.From = 2 }),
			field: "head", want: []string{msgSealedChanges}},
		{rule: head(msgSealedChanges), name: "remove head.sealed", stored: streamAt(4, 9),
			write: mergePatch(`{"head":{"sealed":null}}`), field: "head", want: []string{msgSealedChanges}},
		{rule: head(msgSealedChars), name: "grow sealedChars without sealing", stored: streamAt(4, 9),
			write: mergePatch(`{"head":{"sealedChars":1000000}}`), field: "head", want: []string{msgSealedChars}},
		{rule: head(msgSealedChars), name: "shrink sealedChars of a head with every event sealed", stored: streamAt(4, 3),
			write: mergePatch(`{"head":{"sealedChars":1}}`), field: "head", want: []string{msgSealedChars}},
		{rule: head(msgVersionDecrease), name: "drop the newest event", stored: streamAt(0, 3),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) {
				h.Version--
				h.Events.Items = h.Events.Items[:len(h.Events.Items)-1]
			}),
			field: "head", want: []string{msgVersionDecrease}},
		{rule: head(msgVersionDecrease), name: "remove the head (it defaults to an empty one)", stored: streamAt(0, 3),
			write: mergePatch(`{"head":null}`), field: "head", want: []string{msgVersionDecrease}},
		{rule: head(msgUnstampedBack), name: "move unstamped.from back over recorded events", stored: streamAt(0, 3),
			write: mergePatch(`{"head":{"unstamped":{"from":2,"base":"999"}}}`), field: "head", want: []string{msgUnstampedBack}},
		// (A label is accepted: the eventstream-stamp policy records the
		// revision for it; see pkg/stream's TestForeignWritesRecordTheCommitRevision.)
		{rule: head(msgUnstamped), name: "status write before the append is recorded", stored: unstampedStream,
			write: statusMergePatch(`{"status":{"events":4}}`), field: "head", want: []string{msgUnstamped}},
		{rule: "eventstreams . rule: " + msgStreamName, name: "name of 241 characters",
			create: func(ns, _ string) client.Object { return streamAt(0, 0)(ns, strings.Repeat("s", 241)) },
			// A rule on the object itself has no field path (fieldPath
			// cannot point into metadata): its message names the field.
			field: "<nil>", want: []string{msgStreamName}},

		// EventStream: the bounds of the head, at create.
		{rule: stream("head.version", "minimum"), name: "version -2", create: headJSON(`{"version":-2}`), field: onHead("version"), want: []string{"greater than or equal to -1"}},
		{rule: stream("head.first", "minimum"), name: "first -1", create: headJSON(`{"version":-1,"first":-1}`), field: onHead("first"), want: []string{"greater than or equal to 0"}},
		{rule: stream("head.sealedChars", "minimum"), name: "sealedChars -1", create: headJSON(`{"version":-1,"sealedChars":-1}`), field: onHead("sealedChars"), want: []string{"greater than or equal to 0"}},
		{rule: stream("head.unstamped.from", "minimum"), name: "unstamped.from -1", create: headJSON(`{"version":-1,"unstamped":{"from":-1}}`), field: onHead("unstamped.from"), want: []string{"greater than or equal to 0"}},
		{rule: stream("head.unstamped.base", "maxLength"), name: "unstamped.base 33 chars", create: headJSON(`{"version":-1,"unstamped":{"base":"` + strings.Repeat("9", 33) + `"}}`), field: onHead("unstamped.base"), want: []string{"Too long", "32"}},
		{rule: stream("head.sealed.chain", "minLength"), name: "chain 63 chars", create: headJSON(`{"version":-1,"sealed":{"from":0,"chain":"` + strings.Repeat("a", 63) + `"}}`), field: onHead("sealed.chain"), want: []string{"at least 64 chars long"}},
		{rule: stream("head.sealed.chain", "maxLength"), name: "chain 65 chars", create: headJSON(`{"version":-1,"sealed":{"from":0,"chain":"` + strings.Repeat("a", 65) + `"}}`), field: onHead("sealed.chain"), want: []string{"Too long", "64"}},
		{rule: stream("head.sealed.chain", "required"), name: "sealed without chain", create: headJSON(`{"version":-1,"sealed":{"from":0}}`), field: onHead("sealed.chain"), want: []string{"Required value"}},
		{rule: stream("head.sealed.from", "minimum"), name: "sealed.from -1", create: headJSON(`{"version":-1,"sealed":{"from":-1,"chain":"` + strings.Repeat("a", 64) + `"}}`), field: onHead("sealed.from"), want: []string{"greater than or equal to 0"}},
		{rule: stream("head.sealed.from", "required"), name: "sealed without from", create: headJSON(`{"version":-1,"sealed":{"chain":"` + strings.Repeat("a", 64) + `"}}`), field: onHead("sealed.from"), want: []string{"Required value"}},
		{rule: stream("head.events", "pattern"), name: "events not JSON lines", create: headJSON(`{"version":0,"events":"this is not json\n"}`), field: onHead("events"), want: []string{"should match"}},
		{rule: stream("head.events", "pattern"), name: "events without the last newline", create: headJSON(`{"version":0,"events":` + q(strings.TrimSuffix(events(0, 0), "\n")) + `}`), field: onHead("events"), want: []string{"should match"}},
		{rule: stream("head.events", "pattern"), name: "append a line that is not an event", stored: streamAt(0, 3),
			write: mergePatch(`{"head":{"version":4,"events":` + q(events(0, 3)+"garbage\n") + `}}`), field: onHead("events"), want: []string{"should match"}},
		{rule: stream("head.events", "maxLength"), name: "events of 1 Mi + 1 characters", create: headJSON(`{"version":0,"events":` + q(oversizedLog()) + `}`), field: onHead("events"), want: []string{"Too long", "1048576"}},
		{rule: stream("head.commits", "pattern"), name: "commits not JSON lines", create: headJSON(`{"version":-1,"commits":"garbage\n"}`), field: onHead("commits"), want: []string{"should match"}},
		{rule: stream("head.commits", "maxLength"), name: "commits of 256 Ki + 1 characters", create: headJSON(`{"version":-1,"commits":` + q(oversizedCommits()) + `}`), field: onHead("commits"), want: []string{"Too long", "262144"}},

		// EventStream: spec.retention, written by the sealer (who may
		// decide retention).
		{rule: stream("spec.retention.maxEvents", "minimum"), name: "maxEvents 0", stored: streamAt(0, 3), write: mergePatch(`{"spec":{"retention":{"maxEvents":0}}}`), field: "spec.retention.maxEvents", want: []string{"greater than or equal to 1"}},
		{rule: stream("spec.retention.maxAge", "rule: "+msgMaxAge), name: "maxAge 0s", stored: streamAt(0, 3), write: mergePatch(`{"spec":{"retention":{"maxAge":"0s"}}}`), field: "spec.retention.maxAge", want: []string{msgMaxAge}},
		{rule: stream("spec.retention.maxAge", "rule: "+msgMaxAge), name: "maxAge -1h", stored: streamAt(0, 3), write: mergePatch(`{"spec":{"retention":{"maxAge":"-1h"}}}`), field: "spec.retention.maxAge", want: []string{msgMaxAge}},
		{rule: stream("spec.retention.maxAge", "rule: "+msgMaxAge), name: "maxAge 30d (not a Go duration)", create: raw("EventStream", `{"spec":{"retention":{"maxAge":"30d"}}}`), field: "spec.retention.maxAge", want: []string{msgMaxAge}},
		{rule: stream("spec.retention.maxAge", "rule: "+msgMaxAge), name: "maxAge empty", create: raw("EventStream", `{"spec":{"retention":{"maxAge":""}}}`), field: "spec.retention.maxAge", want: []string{msgMaxAge}},

		// EventStream: status, through the status subresource.
		{rule: stream("status.bytes", "minimum"), name: "bytes -1", stored: streamAt(0, 3), write: statusMergePatch(`{"status":{"bytes":-1}}`), field: "status.bytes", want: []string{"greater than or equal to 0"}},
		{rule: stream("status.events", "minimum"), name: "events -1", stored: streamAt(0, 3), write: statusMergePatch(`{"status":{"events":-1}}`), field: "status.events", want: []string{"greater than or equal to 0"}},
		{rule: stream("status.firstPosition", "minimum"), name: "firstPosition -1", stored: streamAt(0, 3), write: statusMergePatch(`{"status":{"firstPosition":-1}}`), field: "status.firstPosition", want: []string{"greater than or equal to 0"}},
		{rule: stream("status.segments", "minimum"), name: "segments -1", stored: streamAt(0, 3), write: statusMergePatch(`{"status":{"segments":-1}}`), field: "status.segments", want: []string{"greater than or equal to 0"}},

		// EventSegment, created by the sealer.
		{rule: seg("spec", "rule: "+msgSegment), name: "edit a segment's events", stored: segment,
			write: updateAs(func(s *jobstatev1alpha1.EventSegment) { s.Spec.Events.Items[0].Type = "Forged" }), field: "spec", want: []string{msgSegment}},
		{rule: seg("spec", "rule: "+msgSegment), name: "move a segment's last", stored: segment,
			write: mergePatch(`{"spec":{"last":0}}`), field: "spec", want: []string{msgSegment}},
		{rule: seg("spec", "required"), name: "no spec", create: raw("EventSegment", `{}`), field: "spec", want: []string{"Required value"}},
		{rule: seg("spec.stream", "required"), name: "no stream", create: raw("EventSegment", segmentJSON(map[string]any{"stream": nil})), field: "spec.stream", want: []string{"Required value"}},
		{rule: seg("spec.stream", "minLength"), name: "empty stream", create: raw("EventSegment", segmentJSON(map[string]any{"stream": ""})), field: "spec.stream", want: []string{"at least 1 chars long"}},
		{rule: seg("spec.stream", "maxLength"), name: "stream 241 chars", create: raw("EventSegment", segmentJSON(map[string]any{"stream": strings.Repeat("s", 241)})), field: "spec.stream", want: []string{"Too long", "240"}},
		{rule: seg("spec.first", "minimum"), name: "first -1", create: raw("EventSegment", segmentJSON(map[string]any{"first": -1})), field: "spec.first", want: []string{"greater than or equal to 0"}},
		{rule: seg("spec.last", "minimum"), name: "last -1", create: raw("EventSegment", segmentJSON(map[string]any{"last": -1})), field: "spec.last", want: []string{"greater than or equal to 0"}},
		{rule: seg("spec.last", "required"), name: "no last", create: raw("EventSegment", segmentJSON(map[string]any{"last": nil})), field: "spec.last", want: []string{"Required value"}},
		{rule: seg("spec.events", "required"), name: "no events", create: raw("EventSegment", segmentJSON(map[string]any{"events": nil})), field: "spec.events", want: []string{"Required value"}},
		{rule: seg("spec.events", "minLength"), name: "empty events", create: raw("EventSegment", segmentJSON(map[string]any{"events": ""})), field: "spec.events", want: []string{"at least 1 chars long"}},
		{rule: seg("spec.events", "maxLength"), name: "events of 1 Mi + 1 characters", create: raw("EventSegment", segmentJSON(map[string]any{"events": oversizedLog()})), field: "spec.events", want: []string{"Too long", "1048576"}},
		{rule: seg("spec.events", "pattern"), name: "events not JSON lines", create: raw("EventSegment", segmentJSON(map[string]any{"events": "garbage\n"})), field: "spec.events", want: []string{"should match"}},
		{rule: seg("spec.commits", "required"), name: "no commits", create: raw("EventSegment", segmentJSON(map[string]any{"commits": nil})), field: "spec.commits", want: []string{"Required value"}},
		{rule: seg("spec.commits", "minLength"), name: "empty commits", create: raw("EventSegment", segmentJSON(map[string]any{"commits": ""})), field: "spec.commits", want: []string{"at least 1 chars long"}},
		{rule: seg("spec.commits", "maxLength"), name: "commits of 256 Ki + 1 characters", create: raw("EventSegment", segmentJSON(map[string]any{"commits": oversizedCommits()})), field: "spec.commits", want: []string{"Too long", "262144"}},
		{rule: seg("spec.commits", "pattern"), name: "commits not JSON lines", create: raw("EventSegment", segmentJSON(map[string]any{"commits": `{"from":0}` + "\n"})), field: "spec.commits", want: []string{"should match"}},

		// JobState: what validation_test.go's tables do not cover.
		{rule: job("spec.activeDeadlineSeconds", "maximum"), name: "activeDeadlineSeconds a year + 1s", create: raw("JobState", `{"spec":{"activeDeadlineSeconds":31536001}}`), field: "spec.activeDeadlineSeconds", want: []string{"less than or equal to 31536000"}},
		{rule: job("spec.ttlSecondsAfterFinished", "maximum"), name: "ttlSecondsAfterFinished a year + 1s", create: raw("JobState", `{"spec":{"ttlSecondsAfterFinished":31536001}}`), field: "spec.ttlSecondsAfterFinished", want: []string{"less than or equal to 31536000"}},
		{rule: job("spec.eventStreamRef.name", "minLength"), name: "empty stream name", create: raw("JobState", `{"spec":{"eventStreamRef":{"name":""}}}`), field: "spec.eventStreamRef.name", want: []string{"at least 1 chars long"}},
		{rule: job("spec.eventStreamRef.name", "maxLength"), name: "stream name 241 chars", create: raw("JobState", `{"spec":{"eventStreamRef":{"name":"`+strings.Repeat("s", 241)+`"}}}`), field: "spec.eventStreamRef.name", want: []string{"Too long", "240"}},
		{rule: job("spec.eventStreamRef.name", "required"), name: "eventStreamRef without name", create: raw("JobState", `{"spec":{"eventStreamRef":{}}}`), field: "spec.eventStreamRef.name", want: []string{"Required value"}},
		{rule: job("spec.eventStreamRef", "rule: "+msgStreamRef), name: "point to another stream", stored: jobState(true),
			write: mergePatch(`{"spec":{"eventStreamRef":{"name":"other"}}}`), field: "spec.eventStreamRef", want: []string{msgStreamRef}},
		{rule: job("spec", "rule: "+msgStreamRefFixed), name: "add eventStreamRef", stored: jobState(false),
			write: mergePatch(`{"spec":{"eventStreamRef":{"name":"events"}}}`), field: "spec.eventStreamRef", want: []string{msgStreamRefFixed}},
		{rule: job("spec", "rule: "+msgStreamRefFixed), name: "remove eventStreamRef", stored: jobState(true),
			write: mergePatch(`{"spec":{"eventStreamRef":null}}`), field: "spec.eventStreamRef", want: []string{msgStreamRefFixed}},
		{rule: job("spec.lockPolicy", "rule: "+msgLockPolicy), name: "remove lockPolicy of a Lease job (it defaults to Optimistic)", stored: leaseJob,
			write: mergePatch(`{"spec":{"lockPolicy":null}}`), field: "spec.lockPolicy", want: []string{msgLockPolicy}},
		{rule: job(".", "rule: "+msgSpecRemoved), name: "remove the spec of a cancelled Lease job", stored: cancelledLeaseJob,
			write: mergePatch(`{"spec":null}`), field: "spec", want: []string{msgSpecRemoved}},
		{rule: job(".", "rule: "+msgStatusRemoved), name: "remove the status of a Succeeded job", stored: succeededJob,
			write: statusMergePatch(`{"status":null}`), field: "status", want: []string{msgStatusRemoved}},
		{rule: job("status", "rule: "+msgProjectionRemoved), name: "remove status.projection", stored: projected,
			write: statusMergePatch(`{"status":{"projection":null}}`), field: "status.projection", want: []string{msgProjectionRemoved}},
		{rule: job("status.lockToken", "maximum"), name: "lockToken 2^31-1", stored: jobState(false), write: statusMergePatch(`{"status":{"lockToken":2147483647}}`), field: "status.lockToken", want: []string{"less than or equal to 2147483646"}},
		{rule: job("status.lockToken", "minimum"), name: "lockToken -1", stored: jobState(false), write: statusMergePatch(`{"status":{"lockToken":-1}}`), field: "status.lockToken", want: []string{"greater than or equal to 0"}},
		{rule: job("status.message", "maxLength"), name: "message 4097 chars", stored: jobState(false), write: statusMergePatch(`{"status":{"message":"` + strings.Repeat("é", 4097) + `"}}`), field: "status.message", want: []string{"Too long", "4096"}},
		{rule: job("status.reason", "maxLength"), name: "reason 129 chars", stored: jobState(false), write: statusMergePatch(`{"status":{"reason":"` + strings.Repeat("R", 129) + `"}}`), field: "status.reason", want: []string{"Too long", "128"}},
		{rule: job("status.projection", "rule: "+msgProjection), name: "position 5 to 3", stored: projected, write: statusMergePatch(`{"status":{"projection":{"position":3}}}`), field: "status.projection", want: []string{msgProjection}},
		{rule: job("status.projection", "rule: "+msgProjection), name: "position removed", stored: projected, write: statusMergePatch(`{"status":{"projection":{"position":null}}}`), field: "status.projection", want: []string{msgProjection}},
		{rule: job("status.projection.position", "minimum"), name: "position -1", stored: jobState(true), write: statusMergePatch(`{"status":{"projection":{"position":-1}}}`), field: "status.projection.position", want: []string{"greater than or equal to 0"}},
		{rule: job("status.projection.rejectedCount", "minimum"), name: "rejectedCount -1", stored: jobState(true), write: statusMergePatch(`{"status":{"projection":{"rejectedCount":-1}}}`), field: "status.projection.rejectedCount", want: []string{"greater than or equal to 0"}},
		{rule: job("status.projection.rejected", "maxItems"), name: "17 rejected events", stored: jobState(true), write: rejectedPatch(17, nil), field: "status.projection.rejected", want: []string{"must have at most 16 items"}},
		{rule: job("status.projection.rejected[].type", "maxLength"), name: "rejected type 129 chars", stored: jobState(true), write: rejectedPatch(1, map[string]any{"type": strings.Repeat("語", 129)}), field: "status.projection.rejected[0].type", want: []string{"Too long", "128"}},
		{rule: job("status.projection.rejected[].reason", "maxLength"), name: "rejected reason 65 chars", stored: jobState(true), write: rejectedPatch(1, map[string]any{"reason": strings.Repeat("R", 65)}), field: "status.projection.rejected[0].reason", want: []string{"Too long", "64"}},
		{rule: job("status.projection.rejected[].message", "maxLength"), name: "rejected message 1025 chars", stored: jobState(true), write: rejectedPatch(1, map[string]any{"message": strings.Repeat("m", 1025)}), field: "status.projection.rejected[0].message", want: []string{"Too long", "1024"}},
		{rule: job("status.projection.rejected[].position", "required"), name: "rejected without position", stored: jobState(true), write: rejectedPatch(1, map[string]any{"position": nil}), field: "status.projection.rejected[0].position", want: []string{"Required value"}},
		{rule: job("status.projection.rejected[].type", "required"), name: "rejected without type", stored: jobState(true), write: rejectedPatch(1, map[string]any{"type": nil}), field: "status.projection.rejected[0].type", want: []string{"Required value"}},
		{rule: job("status.projection.rejected[].reason", "required"), name: "rejected without reason", stored: jobState(true), write: rejectedPatch(1, map[string]any{"reason": nil}), field: "status.projection.rejected[0].reason", want: []string{"Required value"}},

		// The admission policies: legal writes (every schema and CEL rule
		// holds) by identities the policy refuses.
		{rule: policyKey("eventstream-sealer", 0), name: "an admin creates a stream with sealed events", as: asAdmin,
			create: headJSON(`{"version":3,"first":2,"sealedChars":10}`), forbidden: true,
			want: []string{"only the EventStream sealer", "head.first, head.sealedChars and head.sealed", "cluster-admin"}},
		{rule: policyKey("eventstream-sealer", 0), name: "an admin seals", as: asAdmin, stored: streamAt(4, 9),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) { seal(h, 6, false) }), forbidden: true,
			want: []string{"only the EventStream sealer", "head.first, head.sealedChars and head.sealed"}},
		{rule: policyKey("eventstream-sealer", 0), name: "a worker adds head.sealed", as: asWorker, stored: streamAt(0, 3),
			write: updateHead(func(h *jobstatev1alpha1.EventStreamHead) {
				h.Sealed = &jobstatev1alpha1.SealedChain{From: 0, Chain: strings.Repeat("a", 64)}
			}), forbidden: true,
			want: []string{"only the EventStream sealer", "head.first, head.sealedChars and head.sealed", "worker"}},
		{rule: policyKey("eventsegment-sealer", 0), name: "an admin creates a segment", as: asAdmin, create: segment, forbidden: true,
			want: []string{"only the EventStream sealer", "may create or change EventSegments", "cluster-admin"}},
		{rule: policyKey("eventsegment-sealer", 0), name: "an admin labels a segment", as: asAdmin, stored: segment,
			write: mergePatch(`{"metadata":{"labels":{"x":"y"}}}`), forbidden: true,
			want: []string{"only the EventStream sealer", "may create or change EventSegments"}},
		{rule: policyKey("eventstream-lifetime", 0), name: "a worker creates a stream with retention", as: asWorker,
			create: raw("EventStream", `{"spec":{"retention":{"maxEvents":1}}}`), forbidden: true,
			want: []string{"worker may not change how long this stream keeps its events", "spec.retention, metadata.ownerReferences", "eventstreams/lifetime"}},
		{rule: policyKey("eventstream-lifetime", 0), name: "a worker sets retention", as: asWorker, stored: streamAt(0, 3),
			write: updateAs(func(es *jobstatev1alpha1.EventStream) {
				es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxAge: &metav1.Duration{Duration: time.Hour}}
			}), forbidden: true,
			want: []string{"spec.retention, metadata.ownerReferences", "eventstreams/lifetime"}},
		{rule: policyKey("eventstream-lifetime", 0), name: "a worker that may delete streams adds an owner", as: asDeleter, stored: streamAt(0, 3),
			write: updateAs(func(es *jobstatev1alpha1.EventStream) {
				es.OwnerReferences = append(es.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "gone", UID: "0"})
			}), forbidden: true,
			want: []string{"spec.retention, metadata.ownerReferences", "eventstreams/lifetime"}},
		{rule: policyKey("gateway-namespaces", 0), name: "the gateway deletes a namespace its ns.create did not make", as: asGateway,
			stored: func(ns, name string) client.Object {
				return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}}
			},
			write:     func(ctx context.Context, c client.Client, obj client.Object) error { return c.Delete(ctx, obj) },
			forbidden: true, want: []string{"the gateway may delete only the namespaces its ns.create made", "eventodb.jobstate.dev/created-by"}},
	}
	cases = append(cases, conditionCases("jobstates", jobState(false))...)
	cases = append(cases, conditionCases("eventstreams", streamAt(0, 3))...)
	return cases
}

// rejectedPatch is a status merge patch with n rejected events, the first
// with fields replaced (a null value removes the field).
func rejectedPatch(n int, replace map[string]any) objectWrite {
	var rejected []map[string]any
	for i := range n {
		r := map[string]any{"position": i, "type": "Exploded", "reason": "UnknownType", "message": "no such type"}
		if i == 0 {
			for k, v := range replace {
				if v == nil {
					delete(r, k)
				} else {
					r[k] = v
				}
			}
		}
		rejected = append(rejected, r)
	}
	b, _ := json.Marshal(map[string]any{"status": map[string]any{"projection": map[string]any{"rejected": rejected, "rejectedCount": n}}})
	return statusMergePatch(string(b))
}

// oversizedLog is an event log of 1 Mi + 1 characters that matches the
// CRD's pattern: only its length is wrong.
func oversizedLog() string {
	e := testEvents(0, 0)[0]
	e.Data.Raw = []byte(`{"p":""}`)
	pad := jobstatev1alpha1.MaxEventLogLength + 1 - len(mustText(jobstatev1alpha1.NewEventLog(e).Text()))
	e.Data.Raw = []byte(`{"p":"` + strings.Repeat("x", pad) + `"}`)
	return mustText(jobstatev1alpha1.NewEventLog(e).Text())
}

// oversizedCommits is a commit log of 256 Ki + 1 characters that matches
// the CRD's pattern.
func oversizedCommits() string {
	frame := len(`{"from":0,"revision":""}` + "\n")
	return `{"from":0,"revision":"` + strings.Repeat("1", 262144+1-frame) + `"}` + "\n"
}

// deleter returns a client with config/rbac/worker_role.yaml and delete on
// EventStreams in ns.
func deleter(t *testing.T, ns string) client.Client {
	t.Helper()
	c := env.ClientAs(t, ns, asDeleter, "worker_role.yaml")
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "delete-streams"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{jobstatev1alpha1.GroupVersion.Group}, Resources: []string{"eventstreams"}, Verbs: []string{"delete"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "delete-streams"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: asDeleter}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestRulesRefuseIllegalWrites: each illegal write is refused by the API
// server — Invalid naming the field for a schema or CEL rule, Forbidden
// naming the fields for an admission policy — and the stored object is
// unchanged (same resourceVersion and content); a refused create stores
// nothing.
func TestRulesRefuseIllegalWrites(t *testing.T) {
	ns := env.Namespace(t)
	clients := map[string]client.Client{
		asSealer:  env.Client,
		asAdmin:   env.AdminAs(t, "cluster-admin"),
		asWorker:  env.ClientAs(t, ns, "worker", "worker_role.yaml"),
		asGateway: env.AdminAs(t, testenv.GatewayUser),
		asDeleter: deleter(t, ns),
	}
	for i, tc := range ruleCases() {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			ctx := t.Context()
			name := fmt.Sprintf("rule-%d", i)
			c := clients[tc.as]
			var stored client.Object
			var err error
			if tc.stored != nil {
				stored = createStored(t, tc.stored(ns, name))
				err = tc.write(ctx, c, stored.DeepCopyObject().(client.Object))
			} else {
				obj := tc.create(ns, name)
				name = obj.GetName()
				err = c.Create(ctx, obj.DeepCopyObject().(client.Object))
				stored = obj
			}
			if tc.forbidden {
				assertForbidden(t, err, tc.want...)
			} else {
				assertInvalid(t, err, tc.field, tc.want...)
			}
			if tc.stored == nil {
				gone := stored.DeepCopyObject().(client.Object)
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, gone); !apierrors.IsNotFound(err) {
					t.Errorf("after a refused create, Get returned %v; want NotFound", err)
				}
				return
			}
			after := reread(t, stored)
			if after.GetResourceVersion() != stored.GetResourceVersion() {
				t.Errorf("resourceVersion changed from %s to %s after a refused write", stored.GetResourceVersion(), after.GetResourceVersion())
			}
			if !equality.Semantic.DeepEqual(after, stored) {
				t.Errorf("the stored object changed after a refused write:\nbefore %+v\nafter  %+v", stored, after)
			}
		})
	}
}

// createStored creates obj as the sealer, then writes its status if it is
// a JobState with one (a create ignores status), and returns it as stored.
func createStored(t *testing.T, obj client.Object) client.Object {
	t.Helper()
	var status *jobstatev1alpha1.JobStateStatus
	if js, ok := obj.(*jobstatev1alpha1.JobState); ok && !equality.Semantic.DeepEqual(js.Status, jobstatev1alpha1.JobStateStatus{}) {
		status = js.Status.DeepCopy()
	}
	if err := env.Client.Create(t.Context(), obj); err != nil {
		t.Fatalf("setup: creating the legal object: %v", err)
	}
	if status != nil {
		js := obj.(*jobstatev1alpha1.JobState)
		js.Status = *status
		if err := env.Client.Status().Update(t.Context(), js); err != nil {
			t.Fatalf("setup: writing the legal status: %v", err)
		}
	}
	return reread(t, obj)
}

// reread reads obj afresh from the API server.
func reread(t *testing.T, obj client.Object) client.Object {
	t.Helper()
	fresh := obj.DeepCopyObject().(client.Object)
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(obj), fresh); err != nil {
		t.Fatalf("reading %s: %v", obj.GetName(), err)
	}
	return fresh
}

// assertForbidden checks that err is a 403 Forbidden whose message contains
// every string in want.
func assertForbidden(t *testing.T, err error, want ...string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v (reason %q); want Forbidden with %q", err, apierrors.ReasonForError(err), want)
	}
	t.Logf("refused: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err.Error(), w)
		}
	}
}
