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

package stream

// Fuzz targets for the text this package reads from objects any client with
// update on EventStreams can write (head fields, segment names and
// annotations) and for what it writes from an Append's caller. They are
// pure: the package's TestMain starts no control plane under -fuzz. Run one
// with
//
//	go test ./pkg/stream -run '^$' -fuzz FuzzStoredHead -fuzztime 30s

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

var fuzzKey = client.ObjectKey{Namespace: "ns", Name: "s"}

// FuzzSegmentName: the position parsed back from a segment's name is the
// one it was named for, whatever the stream's name (dots included); any
// name parses without panicking; and below 10^12 (12 digits) names sort
// as their positions do.
func FuzzSegmentName(f *testing.F) {
	for _, s := range []struct {
		stream      string
		first, next int64
	}{
		{"s", 0, 1}, {"account.1", 12, 11}, {"a.b.c", 999999999999, 0}, {"", 5, 5},
		{"s.000000000007", 1e12, 1e12 + 1}, {"s", math.MaxInt64, -1}, {"s.", -5, 3},
	} {
		f.Add(s.stream, s.first, s.next)
	}
	f.Fuzz(func(t *testing.T, stream string, first, next int64) {
		segmentFirst(stream) // any text
		if p, ok := segmentFirst(SegmentName(stream, first)); !ok || p != first {
			t.Fatalf("SegmentName(%q, %d) = %q parses as %d, %v", stream, first, SegmentName(stream, first), p, ok)
		}
		const digits = 1e12
		if first >= 0 && next >= 0 && first < digits && next < digits {
			a, b := SegmentName(stream, first), SegmentName(stream, next)
			if (a < b) != (first < next) || (a == b) != (first == next) {
				t.Fatalf("names %q and %q do not sort as positions %d and %d", a, b, first, next)
			}
		}
	})
}

// fuzzEvents are events at positions from to to, as this package stores
// them.
func fuzzEvents(from, to int64) []jobstatev1alpha1.Event {
	var out []jobstatev1alpha1.Event
	for p := from; p <= to; p++ {
		out = append(out, jobstatev1alpha1.Event{
			Position: p, ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", p), Type: "Counted",
			Data: runtime.RawExtension{Raw: fmt.Appendf(nil, `{"i":%d}`, p)},
			Time: metav1.NewMicroTime(time.Date(2026, 1, 1, 0, 0, int(p), 0, time.UTC)),
		})
	}
	return out
}

func logText(events []jobstatev1alpha1.Event) string {
	s, err := jobstatev1alpha1.NewEventLog(events...).Text()
	if err != nil {
		panic(err)
	}
	return s
}

// FuzzStoredHead: any head a client can store (its text fields and
// numbers as the API server hands them back) is either refused by
// CheckStored or safe to work on: every event in it has a global position;
// a retry of its events is recognised at their positions; and stamping it
// and sealing what sealPlan says — what the next write does — leaves a
// head CheckStored accepts, in which (or in whose new segment) every event
// keeps its global position.
func FuzzStoredHead(f *testing.F) {
	seed := func(first, version int64, commits string, unstampedFrom int64, base string) {
		f.Add(logText(fuzzEvents(first, version)), commits, version, first, unstampedFrom, base)
	}
	seed(0, -1, "", 0, "0")                                                                        // new, empty
	seed(0, 0, "", 0, "0")                                                                         // one unstamped event
	seed(0, 3, `{"from":0,"revision":"100"}`+"\n", 4, "101")                                       // stamped
	seed(0, 3, `{"from":0,"revision":"100"}`+"\n", 2, "101")                                       // 2 and 3 unstamped
	seed(5, 9, `{"from":3,"revision":"100"}`+"\n"+`{"from":7,"revision":"120"}`+"\n", 10, "121")   // sealed front
	seed(0, 60, `{"from":0,"revision":"100"}`+"\n"+`{"from":50,"revision":"140"}`+"\n", 55, "150") // to seal
	seed(2, 3, "", 2, "")
	seed(5, 9, "", 5, "121") // every event from the latest write
	f.Add("not json\n", "", int64(0), int64(0), int64(0), "")
	f.Fuzz(func(t *testing.T, events, commits string, version, first, unstampedFrom int64, base string) {
		// The head as a List or Get decodes it.
		raw, err := json.Marshal(map[string]any{"version": version, "first": first, "events": events, "commits": commits,
			"unstamped": map[string]any{"from": unstampedFrom, "base": base}})
		if err != nil {
			t.Fatalf("encoding a head: %v", err) // a map of strings and numbers always encodes
		}
		es := &jobstatev1alpha1.EventStream{Head: &jobstatev1alpha1.EventStreamHead{}}
		es.Namespace, es.Name = fuzzKey.Namespace, fuzzKey.Name
		if err := json.Unmarshal(raw, es.Head); err != nil {
			t.Fatalf("decoding a head: %v", err)
		}
		h := es.Head
		if CheckStored(es) != nil {
			return
		}
		const rv, next = "200", "201"
		before := map[int64]GlobalPosition{}
		// By index: p <= h.Version; p++ never ends at math.MaxInt64 (the
		// CRD refuses such a head: head.version + 1 overflows its rule).
		for i := range h.Events.Items {
			p := h.First + int64(i)
			gp, err := revisionOf(h, rv, p)
			if err != nil {
				t.Fatalf("CheckStored accepted the head, but event %d has no global position: %v", p, err)
			}
			before[p] = gp
		}
		if n := len(h.Events.Items); n > 0 {
			retry := h.Events.Items[n/2:]
			positions, err := duplicate(fuzzKey, h, retry)
			if err != nil || len(positions) != len(retry) || positions[0] != retry[0].Position {
				t.Fatalf("a retry of the events from %d: positions %v, %v", retry[0].Position, positions, err)
			}
		}

		// The next write: stamp, then seal what sealPlan says.
		w := h.DeepCopy()
		stamp(w, rv)
		end := sealPlan(w, 0, 0)
		if end < w.First || end > w.Version+1 || end > committedEnd(w) && end > w.First {
			t.Fatalf("sealPlan of a head holding %d to %d (committed to %d) is %d", w.First, w.Version, committedEnd(w), end)
		}
		segCommits := commitsFor(w.Commits.Items, w.First, end)
		if err := trim(w, end); err != nil {
			t.Fatal(err)
		}
		after := &jobstatev1alpha1.EventStream{Head: w}
		after.Namespace, after.Name = es.Namespace, es.Name
		if err := CheckStored(after); err != nil {
			t.Fatalf("the head after stamping and sealing to %d is malformed: %v\nbefore: %+v\nafter: %+v", end, err, h, w)
		}
		for p, want := range before {
			var got GlobalPosition
			var err error
			if p < end {
				got, err = positionIn(segCommits, p)
			} else {
				got, err = revisionOf(w, next, p)
			}
			if err != nil || got != want {
				t.Fatalf("event %d: global position %v before the write, %v (%v) after it (sealed to %d)", p, want, got, err, end)
			}
		}
	})
}

// FuzzEncodeEvent: what an Append's caller passes either is refused with an
// *InvalidEventError or *TooLargeError, or becomes an event this package
// can read back: its stored line, also after the API server's JSON round
// trip, decodes as that very event (never as malformed text, which would
// make the stream unreadable), within MaxEventBytes.
func FuzzEncodeEvent(f *testing.F) {
	for _, s := range []struct{ id, typ, data, meta string }{
		{"", "Deposited", `{"amount":100}`, ""},
		{"7a1c0c1e-8a1b-4f0e-9d55-8a4f1a0c3b21", "T", ` { "a" : [1, 2.50, "<b>&"] } `, `{"cause":"x"}`},
		{"", "Déposé<&>", `{"name":"Zoë 🚀","s":"\u2028"}`, `{}`},
		{"", "T", `{"a":1,"a":2}`, "null"},
		{"", "T", `{"bad":"\xff"}`, ""},
		{"", "T", `[1]`, ""},
		{"", "T", `{"n":1e400}`, ""},
		{"", "T", `{"s":"\ud800"}`, ""},
		{"not-a-uuid", "T", `{}`, ""},
	} {
		f.Add(s.id, s.typ, s.data, s.meta)
	}
	now := metav1.NewMicroTime(time.Date(2026, 1, 1, 0, 0, 0, 123456000, time.UTC))
	f.Fuzz(func(t *testing.T, id, typ, data, meta string) {
		e := EventData{ID: id, Type: typ, Data: json.RawMessage(data)}
		if meta != "" {
			e.Metadata = json.RawMessage(meta)
		}
		ev, size, err := encodeEvent(fuzzKey, 0, e, now, map[string]int{})
		if err != nil {
			var invalid *InvalidEventError
			var tooLarge *TooLargeError
			if !errors.As(err, &invalid) && !errors.As(err, &tooLarge) {
				t.Fatalf("refused with %T: %v", err, err)
			}
			return
		}
		if size > MaxEventBytes {
			t.Fatalf("an event of %d bytes was accepted", size)
		}
		ev.Position = 7
		text := logText([]jobstatev1alpha1.Event{ev})
		stored, err := json.Marshal(text)
		if err != nil {
			t.Fatal(err)
		}
		// The API server decodes the request and encodes what it stores.
		var server string
		if err := json.Unmarshal(stored, &server); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{text, server} {
			quoted, _ := json.Marshal(s)
			var l jobstatev1alpha1.EventLog
			if err := l.UnmarshalJSON(quoted); err != nil || l.Malformed != nil {
				t.Fatalf("the event this package writes, %q, decodes as malformed: %v %v", s, err, l.Malformed)
			}
			if len(l.Items) != 1 || l.Items[0].ID != ev.ID || l.Items[0].Type != ev.Type || l.Items[0].Position != 7 {
				t.Fatalf("%q decodes as %+v", s, l.Items)
			}
		}
	})
}

// FuzzSealedChain: whatever segments a List returns (their names,
// positions and chain annotations are text any segment creator wrote),
// picking the ones to serve never panics or loops, serves them in
// position order, serves from the chained range only segments on the
// chain that ends at head.sealed (each one's previous value the chain
// after the one before it), and reports a break if a segment in that range
// below the chain's start is left out.
func FuzzSealedChain(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 1, 2, 2, 2, 3}, int64(0))
	f.Add([]byte{5, 1, 0, 9, 2, 1, 9, 3, 7, 1}, int64(32))
	f.Add([]byte{}, int64(0))
	f.Fuzz(func(t *testing.T, spec []byte, from int64) {
		// A true chain over four digests, and other values to pick from.
		digests := []string{"d0", "d1", "d2", "d3", "forged", ""}
		values := []string{""}
		for _, d := range digests[:4] {
			values = append(values, chainAfter(values[len(values)-1], d))
		}
		values = append(values, "garbage", strings.Repeat("0", 64))
		var refs []SegmentRef
		seen := map[int64]bool{}
		for i := 0; i+2 < len(spec) && len(refs) < 64; i += 3 {
			first := int64(spec[i]) * 8
			if seen[first] {
				continue
			}
			seen[first] = true
			refs = append(refs, SegmentRef{
				Name: SegmentName("s", first), First: first, Last: first + 7,
				Digest: digests[int(spec[i+1])%len(digests)], Previous: values[int(spec[i+2])%len(values)],
			})
		}
		slices.SortFunc(refs, func(a, b SegmentRef) int { return cmp.Compare(a.First, b.First) })
		h := &jobstatev1alpha1.EventStreamHead{First: 256 * 8, Version: 256*8 + 1}
		if len(spec) > 0 {
			h.Sealed = &jobstatev1alpha1.SealedChain{From: max(from, 0) % 2048, Chain: values[int(spec[len(spec)-1])%len(values)]}
		}
		segs, trusted, broken := sealedSegments(fuzzKey, h, refs)
		for i := 1; i < len(segs); i++ {
			if segs[i].First <= segs[i-1].First {
				t.Fatalf("segments served out of order: %v", segs)
			}
		}
		if h.Sealed == nil {
			return
		}
		var chained []SegmentRef
		for _, r := range segs {
			if r.First >= h.Sealed.From {
				if _, ok := trusted[r.Name]; !ok {
					t.Fatalf("segment %s in the chained range is served unverified", r.Name)
				}
				chained = append(chained, r)
			}
		}
		for i, r := range chained {
			want := h.Sealed.Chain
			if i+1 < len(chained) {
				want = chained[i+1].Previous
			}
			if chainAfter(r.Previous, r.Digest) != want {
				t.Fatalf("segment %s is served as chained, but its chain value does not lead to %q", r.Name, want)
			}
		}
		start := int64(math.MaxInt64)
		if len(chained) > 0 {
			start = chained[0].First
		}
		for _, r := range refs {
			if r.First >= h.Sealed.From && r.First < start && broken == nil {
				t.Fatalf("segment %s below the chain's start (%d) is left out, and no break is reported", r.Name, start)
			}
		}
	})
}

// FuzzGlobalPositionCompare: Compare is a total order on whatever
// revisions a head's commit records hold (text any client can write):
// reflexive, antisymmetric and transitive, and for the revisions the API
// server produces it is the numeric order.
func FuzzGlobalPositionCompare(f *testing.F) {
	f.Add("100", int64(0), "99", int64(5), "1000", int64(1))
	f.Add("100", int64(2), "100", int64(1), "0100", int64(0))
	f.Add("", int64(0), "abc", int64(0), "9", int64(-1))
	f.Add("18446744073709551616", int64(0), "9", int64(0), "-1", int64(0))
	f.Fuzz(func(t *testing.T, r1 string, i1 int64, r2 string, i2 int64, r3 string, i3 int64) {
		a, b, c := GlobalPosition{r1, i1}, GlobalPosition{r2, i2}, GlobalPosition{r3, i3}
		for _, p := range []GlobalPosition{a, b, c} {
			if p.Compare(p) != 0 {
				t.Fatalf("%v is not equal to itself", p)
			}
		}
		for _, pq := range [][2]GlobalPosition{{a, b}, {b, c}, {a, c}} {
			if x, y := pq[0].Compare(pq[1]), pq[1].Compare(pq[0]); x != -y || x < -1 || x > 1 {
				t.Fatalf("%v vs %v: %d, and the other way %d", pq[0], pq[1], x, y)
			}
		}
		if a.Compare(b) <= 0 && b.Compare(c) <= 0 && a.Compare(c) > 0 {
			t.Fatalf("not transitive: %v <= %v <= %v, but %v > %v", a, b, c, a, c)
		}
		if n1, ok1 := revisionNumber(r1); ok1 {
			if n2, ok2 := revisionNumber(r2); ok2 && n1 != n2 && (n1 < n2) != (a.Compare(b) < 0) {
				t.Fatalf("revisions %s and %s compare as %d", r1, r2, a.Compare(b))
			}
		}
	})
}

// revisionNumber parses a resourceVersion as the API server writes them: a
// decimal without leading zeros, in uint64.
func revisionNumber(s string) (uint64, bool) {
	if s == "" || s[0] == '0' || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + uint64(r-'0')
	}
	return n, true
}

// TestUnstampedBeforeFirstIsMalformed: a head whose latest write starts
// before its first event (a forged unstamped.from) would never get those
// events' revision recorded; it is reported, not served.
func TestUnstampedBeforeFirstIsMalformed(t *testing.T) {
	h := &jobstatev1alpha1.EventStreamHead{
		Version: 7, First: 6,
		Events:    jobstatev1alpha1.NewEventLog(jobstatev1alpha1.Event{ID: "6", Type: "T", Position: 6}, jobstatev1alpha1.Event{ID: "7", Type: "T", Position: 7}),
		Unstamped: jobstatev1alpha1.Unstamped{From: 5, Base: "10"},
	}
	err := checkHead(client.ObjectKey{Namespace: "ns", Name: "s"}, h)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "unstamped.from (5) is before the head's first event (6)") {
		t.Fatalf("checkHead = %v, want a *MalformedError naming unstamped.from", err)
	}
}
