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
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// t0 stamps the events of these tests, so that their size is known.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// lineBytes is the size of e as one stored JSON line, what MaxEventBytes
// bounds.
func lineBytes(t *testing.T, e stream.EventData) int {
	t.Helper()
	data, err := json.Marshal(e.Data)
	if err != nil {
		t.Fatal(err)
	}
	ev := jobstatev1alpha1.Event{ID: e.ID, Type: e.Type, Data: runtime.RawExtension{Raw: data}, Time: metav1.NewMicroTime(t0)}
	if e.Metadata != nil {
		meta, err := json.Marshal(e.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		ev.Metadata = &runtime.RawExtension{Raw: meta}
	}
	line, err := json.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	return len(line)
}

// sized is an event of type Blob whose stored line is exactly n bytes.
func sized(t *testing.T, n int) stream.EventData {
	t.Helper()
	e := stream.EventData{ID: uuid.NewString(), Type: "Blob", Data: map[string]string{"blob": ""}}
	pad := n - lineBytes(t, e)
	if pad < 0 {
		t.Fatalf("an event cannot be as small as %d bytes", n)
	}
	e.Data = map[string]string{"blob": strings.Repeat("x", pad)}
	if got := lineBytes(t, e); got != n {
		t.Fatalf("sized(%d) is %d bytes", n, got)
	}
	return e
}

// getStream reads the stream key as stored; nil if there is none.
func getStream(t *testing.T, key client.ObjectKey) *jobstatev1alpha1.EventStream {
	t.Helper()
	es := &jobstatev1alpha1.EventStream{}
	err := env.Client.Get(t.Context(), key, es)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// An append with an event over MaxEventBytes, or events over MaxAppendBytes
// in all, is refused before any request: the *TooLargeError names the
// event (index and type) or the append, its size and the limit, and the
// stream is as it was (same resourceVersion), or still absent. At exactly
// the limits the events are stored. (TestBadInput covers MaxAppendEvents
// and the other malformed events.)
func TestTooLargeAppendsWriteNothing(t *testing.T) {
	ns := env.Namespace(t)
	ctx := t.Context()
	c, err := stream.New(env.Client, stream.Options{Sealer: true, Clock: clocktesting.NewFakeClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	existing := streamKey(ns, "existing")
	appendN(t, c, existing, 1)

	withMetadata := sized(t, 1024)
	withMetadata.Metadata = map[string]string{"cause": strings.Repeat("m", stream.MaxEventBytes)}
	for _, tc := range []struct {
		name   string
		events []stream.EventData
		want   stream.TooLargeError
	}{
		{"an event one byte over", []stream.EventData{sized(t, stream.MaxEventBytes+1)},
			stream.TooLargeError{What: "event 0 (type Blob)", Size: stream.MaxEventBytes + 1, Limit: stream.MaxEventBytes, Unit: "bytes"}},
		{"the third event over", []stream.EventData{sized(t, 1024), sized(t, 1024), sized(t, 2*stream.MaxEventBytes)},
			stream.TooLargeError{What: "event 2 (type Blob)", Size: 2 * stream.MaxEventBytes, Limit: stream.MaxEventBytes, Unit: "bytes"}},
		{"an event whose metadata is over", []stream.EventData{withMetadata},
			stream.TooLargeError{What: "event 0 (type Blob)", Size: lineBytes(t, withMetadata), Limit: stream.MaxEventBytes, Unit: "bytes"}},
		{"an append one byte over", []stream.EventData{
			sized(t, stream.MaxEventBytes), sized(t, stream.MaxEventBytes), sized(t, stream.MaxEventBytes),
			sized(t, stream.MaxAppendBytes/8), sized(t, stream.MaxAppendBytes/8+1),
		}, stream.TooLargeError{What: "the append", Size: stream.MaxAppendBytes + 1, Limit: stream.MaxAppendBytes, Unit: "bytes"}},
	} {
		for _, key := range []client.ObjectKey{existing, streamKey(ns, "absent")} {
			t.Run(tc.name+"/"+key.Name, func(t *testing.T) {
				before := getStream(t, key)
				_, err := c.Append(ctx, key, tc.events, stream.AppendOptions{})
				var tooLarge *stream.TooLargeError
				if !errors.As(err, &tooLarge) || !errors.Is(err, stream.ErrTooLarge) {
					t.Fatalf("err = %v, want a *TooLargeError", err)
				}
				want := tc.want
				want.Namespace, want.Stream = key.Namespace, key.Name
				if *tooLarge != want {
					t.Errorf("error %+v, want %+v", *tooLarge, want)
				}
				msg := fmt.Sprintf("stream %s: %s is %d %s, the limit is %d", key, want.What, want.Size, want.Unit, want.Limit)
				if err.Error() != msg {
					t.Errorf("message %q, want %q", err.Error(), msg)
				}
				after := getStream(t, key)
				switch {
				case before == nil && after != nil:
					t.Errorf("a refused append created the stream (version %d)", after.Head.Version)
				case before != nil && after.ResourceVersion != before.ResourceVersion:
					t.Errorf("a refused append wrote the stream: resourceVersion %s, then %s", before.ResourceVersion, after.ResourceVersion)
				}
			})
		}
	}

	// At the limits: one event of MaxEventBytes, then an append of
	// MaxAppendBytes, and types of 128 characters (one of 256 bytes).
	atLimit := streamKey(ns, "at-limit")
	appends := [][]stream.EventData{
		{sized(t, stream.MaxEventBytes)},
		{sized(t, stream.MaxEventBytes), sized(t, stream.MaxEventBytes), sized(t, stream.MaxEventBytes), sized(t, stream.MaxEventBytes)},
		{{Type: strings.Repeat("T", 128)}},
		{{Type: strings.Repeat("é", 128)}}, // characters, not bytes
	}
	for i, events := range appends {
		if _, err := c.Append(ctx, atLimit, events, stream.AppendOptions{}); err != nil {
			t.Fatalf("append %d, at the limits: %v", i, err)
		}
	}
	got := readAll(t, c, atLimit)
	checkContiguous(t, got, 7)
	for i, e := range append(appends[0], appends[1]...) {
		if got[i].ID != e.ID || len(got[i].Data) != len(fmt.Sprintf(`{"blob":"%s"}`, e.Data.(map[string]string)["blob"])) {
			t.Errorf("event %d read back as %s with %d bytes of data", i, got[i].ID, len(got[i].Data))
		}
	}

	// One character more than a type may have is an *InvalidEventError.
	before := getStream(t, atLimit)
	_, err = c.Append(ctx, atLimit, []stream.EventData{{Type: strings.Repeat("T", 129)}}, stream.AppendOptions{})
	if !errors.Is(err, stream.ErrInvalidEvent) || !strings.Contains(err.Error(), "event 0: type must have 1 to 128 characters, got 129") {
		t.Errorf("a type of 129 characters: %v, want an *InvalidEventError", err)
	}
	if after := getStream(t, atLimit); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a refused append wrote the stream: resourceVersion %s, then %s", before.ResourceVersion, after.ResourceVersion)
	}
}
