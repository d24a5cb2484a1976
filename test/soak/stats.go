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

package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// outcome is what a call did to the stored state, as far as its caller can
// know.
type outcome int

const (
	// stored: the call succeeded.
	stored outcome = iota + 1
	// refused: the call failed and stored nothing.
	refused
	// unknown: the call failed in a way that may or may not have stored it.
	unknown
)

// kindOrder is the order in which kinds are printed; kinds not listed
// follow, sorted.
var kindOrder = []string{
	"inc", "locked", "create", "init", "claim", "beat", "succeed", "lost", "retime", "stale-beat", "cancel",
	"append", "append-retry", "acquire", "handoff", "fenced", "release", "cleanup",
}

// stats are the calls made so far, by kind: counts by outcome, errors by
// kind, and latency histograms for the whole run and the current report
// interval. Memory is bounded whatever the run's length.
type stats struct {
	mu    sync.Mutex
	kinds map[string]*kindStats
}

type kindStats struct {
	outcomes map[outcome]int64
	errs     map[string]int64
	// firstErr is the first message of each error kind.
	firstErr      map[string]string
	total, window histogram
}

func newStats() *stats { return &stats{kinds: map[string]*kindStats{}} }

// record adds one call of kind that took d. errKind is empty for a success.
func (s *stats) record(kind string, d time.Duration, o outcome, errKind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kinds[kind]
	if k == nil {
		k = &kindStats{outcomes: map[outcome]int64{}, errs: map[string]int64{}, firstErr: map[string]string{}}
		s.kinds[kind] = k
	}
	k.outcomes[o]++
	k.total.add(d)
	k.window.add(d)
	if errKind != "" {
		k.errs[errKind]++
		if _, ok := k.firstErr[errKind]; !ok && err != nil {
			k.firstErr[errKind] = err.Error()
		}
	}
}

// sortedKinds returns the kinds recorded so far in kindOrder. Call with mu
// held.
func (s *stats) sortedKinds() []string {
	var kinds []string
	for k := range s.kinds {
		kinds = append(kinds, k)
	}
	rank := func(k string) int {
		if i := slices.Index(kindOrder, k); i >= 0 {
			return i
		}
		return len(kindOrder)
	}
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
	return kinds
}

// interval renders the progress line's parts — calls by kind so far, errors
// by kind so far, p99 by kind over the interval — and starts a new
// interval.
func (s *stats) interval() (calls, errs, p99 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c, p []string
	errTotals := map[string]int64{}
	for _, kind := range s.sortedKinds() {
		k := s.kinds[kind]
		c = append(c, fmt.Sprintf("%s=%d", kind, k.total.n))
		if k.window.n > 0 {
			p = append(p, fmt.Sprintf("%s=%s", kind, fmtDuration(k.window.quantile(0.99))))
		}
		k.window = histogram{}
		for e, n := range k.errs {
			errTotals[e] += n
		}
	}
	var e []string
	for _, name := range slices.Sorted(maps.Keys(errTotals)) {
		e = append(e, fmt.Sprintf("%s=%d", name, errTotals[name]))
	}
	if len(e) == 0 {
		e = []string{"none"}
	}
	return strings.Join(c, " "), strings.Join(e, " "), strings.Join(p, " ")
}

// foreignDeadlines reports the calls that failed with a context error
// although their own context had not ended: another caller's deadline in
// the same group commit failed them too.
func (s *stats) foreignDeadlines() check {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, k := range s.kinds {
		n += k.errs["foreign-deadline"]
	}
	return check{name: "calls failed by another caller's deadline (foreign-deadline: a group commit's leader's context ended its batch)", value: n}
}

// histogram counts durations in buckets growing by 5% from 10µs: bounded
// memory for any number of samples, quantiles within 5%.
type histogram struct {
	counts [histBuckets]int64
	n      int64
	max    time.Duration
}

const (
	histBase    = 10 * time.Microsecond
	histGrowth  = 1.05
	histBuckets = 400 // 10µs × 1.05^400 ≈ 3 days
)

func (h *histogram) add(d time.Duration) {
	i := 0
	if d > histBase {
		i = min(int(math.Log(float64(d)/float64(histBase))/math.Log(histGrowth))+1, histBuckets-1)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// quantile is the upper bound of the bucket holding the q-quantile, capped
// at the largest sample.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			upper := time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
			return min(upper, h.max)
		}
	}
	return h.max
}

// fmtDuration rounds d to what a table needs: 3 significant digits.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}
