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

import (
	"encoding/json"
	"reflect"
	"testing"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// log is what FuzzLogDecoding needs of EventLog and CommitLog.
type log interface {
	json.Marshaler
	json.Unmarshaler
}

// FuzzLogDecoding: no stored value makes decoding an EventLog or a
// CommitLog fail, panic or block (one object must not stop a List). A
// string that decodes re-encodes to exactly the stored text (writers
// re-encode the head, and the CRD refuses any change to committed text);
// one that does not is kept verbatim, so writing the object back does not
// change it.
func FuzzLogDecoding(f *testing.F) {
	for _, seed := range []string{
		"",
		"this is not json\n",
		`{"position":0,"id":"7a1c0c1e-8a1b-4f0e-9d55-8a4f1a0c3b21","type":"Opened","data":{"balance":100},"time":"2026-01-01T00:00:00.000000Z"}` + "\n",
		`{"position":0,"id":"x","type":"Forged","data":{,"time":"t"}` + "\n",
		`{"from":3,"revision":"1234"}` + "\n" + `{"from":5,"revision":"1240"}` + "\n",
		"\n\n\n",
		"null\n[]\n{}\n",
		`{"position":"zero"}`,
		"\xff\xfe\n",
		`{"position":0,"id":"x","type":"T","data":{"a": 1},"time":"2026-01-01T00:00:00.000000Z"}` + "\n",
		`{"position":0,"id":"x","type":"<b>","data":{},"time":"2026-01-01T00:00:00.000000Z"}` + "\n",
		`{"position":0,"id":"x","type":"T","data":{},"time":"2026-01-01T01:00:00.000000+01:00"}` + "\n",
		`{"position":0,"id":"x","type":"T","data":{},"time":"2026-01-01T00:00:00.000000Z","extra":1}` + "\n",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, text string, asString bool) {
		stored := []byte(text)
		if asString {
			stored, _ = json.Marshal(text)
		}
		for _, l := range []log{&jobstatev1alpha1.EventLog{}, &jobstatev1alpha1.CommitLog{}} {
			if err := l.UnmarshalJSON(stored); err != nil {
				t.Fatalf("%T: decoding %q failed: %v", l, stored, err)
			}
			items, malformed := parts(l)
			if malformed != nil {
				if items.Len() != 0 {
					t.Fatalf("%T: malformed and %d items", l, items.Len())
				}
				var want string // text as JSON carries it (invalid UTF-8 replaced)
				if err := json.Unmarshal(stored, &want); asString && (err != nil || malformed.Text != want) {
					t.Fatalf("%T: malformed text %q, stored %q", l, malformed.Text, want)
				}
			}
			out, err := l.MarshalJSON()
			if err != nil {
				t.Fatalf("%T: re-encoding %q: %v", l, stored, err)
			}
			again := reflect.New(reflect.TypeOf(l).Elem()).Interface().(log)
			if err := again.UnmarshalJSON(out); err != nil {
				t.Fatal(err)
			}
			var back string
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("%T: re-encoded as %q, not a JSON string", l, out)
			}
			if malformed == nil && asString && back != decodedText(stored) {
				t.Fatalf("%T: decodes, but re-encodes as %q instead of the stored %q: writers would change committed text", l, back, decodedText(stored))
			}
			items2, malformed2 := parts(again)
			// A value that is not a string (the CRD's schema keeps those
			// out) is re-encoded as one, so only strings round-trip.
			if asString && ((malformed == nil) != (malformed2 == nil) || items.Len() != items2.Len()) {
				t.Fatalf("%T: %q re-encoded as %q decodes differently", l, stored, out)
			}
		}
	})
}

// decodedText is the string a JSON string value holds.
func decodedText(stored []byte) string {
	var s string
	_ = json.Unmarshal(stored, &s)
	return s
}

func parts(l log) (reflect.Value, *jobstatev1alpha1.MalformedLog) {
	switch l := l.(type) {
	case *jobstatev1alpha1.EventLog:
		return reflect.ValueOf(l.Items), l.Malformed
	case *jobstatev1alpha1.CommitLog:
		return reflect.ValueOf(l.Items), l.Malformed
	}
	panic("unknown log")
}
