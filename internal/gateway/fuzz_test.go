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

package gateway

import (
	"net/http"
	"testing"
)

// FuzzDecodeCall: no request body makes the decoder or the argument
// readers panic, and every refusal is a 400 with a message. Run with
// go test -run '^$' -fuzz FuzzDecodeCall ./internal/gateway.
func FuzzDecodeCall(f *testing.F) {
	for _, seed := range []string{
		`["stream.write", "account-123", {"type": "Deposited", "data": {"amount": 100}}, {"expectedVersion": 0}]`,
		`["stream.write", "a-1", [{"type": "A", "data": {}, "id": "6f1e1c8e-1d0e-4a7e-9a53-0c7d3c1e2f10"}]]`,
		`["stream.get", "a-1", {"position": 1e2, "globalPosition": 5, "batchSize": -1}]`,
		`["category.get", "a", {"consumerGroup": {"member": 1, "size": 2}, "correlation": "w"}]`,
		`["stream.last", "a-1", {"type": null}]`,
		`[]`, `{}`, `[1]`, `["x", {"a": [}]`, "[\"\xff\"]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, e := decodeCall(body)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if c.method == "" {
			t.Fatal("decoded a call without a method")
		}
		a := args{method: c.method, list: c.args}
		if _, e := streamArg(a); e != nil {
			checkRefusal(t, e)
		}
		opts, e := a.object(2, "options")
		if e != nil {
			checkRefusal(t, e)
		} else if _, _, e := messages(a, opts); e != nil {
			checkRefusal(t, e)
		}
		q, o, e := readQuery(a, 1, c.method == "category.get")
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if q.from < 0 || q.minGlobal < 0 || q.limit == 0 || q.limit < -1 || q.limit > maxBatchSize {
			t.Fatalf("query out of range: %+v", q)
		}
		if g, e := consumerGroup(o); e != nil {
			checkRefusal(t, e)
		} else if g != nil && (g.member < 0 || g.member >= g.size) {
			t.Fatalf("group out of range: %+v", g)
		}
	})
}

func checkRefusal(t *testing.T, e *Error) {
	t.Helper()
	if e.Status != http.StatusBadRequest || e.Code != CodeInvalidRequest || e.Message == "" {
		t.Fatalf("refusal %+v is not a 400 with a message", e)
	}
}
