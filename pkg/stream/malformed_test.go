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

package stream_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// badLine is a line that looks like one pkg/stream writes (so the CRD's
// pattern lets it through) but is not JSON.
func badLine(position int) string {
	return fmt.Sprintf(`{"position":%d,"id":"x","type":"Forged","data":{,"time":"t"}`+"\n", position)
}

// rawStream is an EventStream as a client outside pkg/stream (kubectl, a
// hostile worker) sends it: head fields as given.
func rawStream(ns, name string, head map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"head": head}}
	u.SetGroupVersionKind(jobstatev1alpha1.GroupVersion.WithKind("EventStream"))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// Text a worker stores by hand that pkg/stream cannot decode is refused by
// the API server where it can tell cheaply, and otherwise confined to its
// stream: decoding a List never fails, and Read and Append on that stream
// fail with an error naming the object, field and line.
func TestMalformedText(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	worker := env.ClientAs(t, ns, "worker", "worker_role.yaml")
	good := newClient(t)
	appendN(t, good, streamKey(ns, "good"), 40)

	// Refused: text that does not look like JSON lines of events.
	for _, tc := range []struct{ name, events, commits string }{
		{"not json", "this is not json\n", ""},
		{"no newline", `{"position":0,"id":"x","type":"T","data":{},"time":"t"}`, ""},
		{"commits not json", "", "garbage\n"},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			head := map[string]any{"version": int64(0)}
			if tc.events != "" {
				head["events"] = tc.events
			}
			if tc.commits != "" {
				head["commits"] = tc.commits
			}
			err := worker.Create(ctx, rawStream(ns, "bad-"+strings.ReplaceAll(tc.name, " ", "-"), head))
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "head.") {
				t.Fatalf("create with head text %q / %q: %v, want Invalid naming the field", tc.events, tc.commits, err)
			}
		})
	}

	// Stored, because it looks like ours: a line that is not JSON.
	if err := worker.Create(ctx, rawStream(ns, "created-bad", map[string]any{"version": int64(0), "events": badLine(0)})); err != nil {
		t.Fatalf("create: %v", err)
	}
	// And a live stream a worker appends a bad line to by hand, as an
	// update that passes every CEL rule.
	appendN(t, good, streamKey(ns, "appended-bad"), 20)
	live := &jobstatev1alpha1.EventStream{}
	if err := worker.Get(ctx, client.ObjectKey{Namespace: ns, Name: "appended-bad"}, live); err != nil {
		t.Fatal(err)
	}
	before, _ := live.Head.Events.Text()
	live.Head.Version = 20
	live.Head.Events = jobstatev1alpha1.EventLog{Malformed: &jobstatev1alpha1.MalformedLog{Text: before + badLine(20)}}
	live.Head.Unstamped = jobstatev1alpha1.Unstamped{From: 20, Base: "forged"}
	if err := worker.Update(ctx, live); err != nil {
		t.Fatalf("update: %v", err)
	}

	// And one a worker appends a line to that is JSON, but not in the form
	// pkg/stream writes (a space in data): every writer would re-encode
	// it, which the CEL rules refuse as an edit, so it is malformed too.
	appendN(t, good, streamKey(ns, "non-canonical"), 20)
	if err := worker.Get(ctx, client.ObjectKey{Namespace: ns, Name: "non-canonical"}, live); err != nil {
		t.Fatal(err)
	}
	before, _ = live.Head.Events.Text()
	live.Head.Version = 20
	live.Head.Events = jobstatev1alpha1.EventLog{Malformed: &jobstatev1alpha1.MalformedLog{Text: before +
		`{"position":20,"id":"00000000-0000-0000-0000-000000000000","type":"T","data":{"a": 1},"time":"2026-01-01T00:00:00.000000Z"}` + "\n"}}
	live.Head.Unstamped = jobstatev1alpha1.Unstamped{From: 20, Base: "forged"}
	if err := worker.Update(ctx, live); err != nil {
		t.Fatalf("update: %v", err)
	}
	// A retention age the controllers could not decode is refused.
	forever := rawStream(ns, "forever", map[string]any{"version": int64(-1)})
	forever.Object["spec"] = map[string]any{"retention": map[string]any{"maxAge": "forever"}}
	if err := env.Client.Create(ctx, forever); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.retention.maxAge must be a positive Go duration") {
		t.Fatalf("create with maxAge forever: %v; want Invalid naming spec.retention.maxAge", err)
	}

	// Every List decodes, the malformed objects included.
	var list jobstatev1alpha1.EventStreamList
	if err := worker.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list with malformed streams: %v", err)
	}
	if len(list.Items) != 4 { // good, created-bad, appended-bad, non-canonical
		t.Fatalf("listed %d streams, want 4", len(list.Items))
	}

	fresh := newClient(t)
	for _, tc := range []struct{ stream, want string }{
		{"created-bad", "stream created-bad is malformed: head.events line 1 of EventStream created-bad: invalid character ','"},
		{"appended-bad", "stream appended-bad is malformed: head.events line 21 of EventStream appended-bad: invalid character ','"},
		{"non-canonical", "stream non-canonical is malformed: head.events line 21 of EventStream non-canonical: not in the form pkg/stream writes"},
	} {
		_, err := fresh.Read(ctx, streamKey(ns, tc.stream), 0, 100)
		if !errors.Is(err, stream.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read %s: %v, want ErrMalformed: %s", tc.stream, err, tc.want)
		}
		_, err = fresh.Append(ctx, streamKey(ns, tc.stream), []stream.EventData{ev("After", nil)}, stream.AppendOptions{})
		if !errors.Is(err, stream.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Append %s: %v, want ErrMalformed: %s", tc.stream, err, tc.want)
		}
	}
	// A segment whose text does not decode (stored by an identity that may
	// create segments) is reported by Read, naming it.
	appendN(t, good, streamKey(ns, "sealed"), 60)
	sealed := &jobstatev1alpha1.EventStream{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sealed"}, sealed); err != nil {
		t.Fatal(err)
	}
	seg := &jobstatev1alpha1.EventSegment{}
	name := stream.SegmentName("sealed", 0)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, seg); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, seg); err != nil {
		t.Fatal(err)
	}
	seg.ResourceVersion, seg.UID = "", ""
	seg.Spec.Events = jobstatev1alpha1.EventLog{Malformed: &jobstatev1alpha1.MalformedLog{Text: badLine(0)}}
	if err := env.Client.Create(ctx, seg); err != nil {
		t.Fatal(err)
	}
	want := "stream sealed is malformed: spec.events line 1 of EventSegment " + name
	if _, err := newClient(t).Read(ctx, streamKey(ns, "sealed"), 0, 100); !errors.Is(err, stream.ErrMalformed) || !strings.Contains(err.Error(), want) {
		t.Errorf("Read sealed: %v, want ErrMalformed: %s", err, want)
	}

	// The stream's committed events are as appended: the bad line added
	// nothing readable, and the good stream is untouched.
	checkContiguous(t, readAll(t, fresh, streamKey(ns, "good")), 40)
	appendN(t, fresh, streamKey(ns, "good"), 1)
	checkContiguous(t, readAll(t, fresh, streamKey(ns, "good")), 41)
}
