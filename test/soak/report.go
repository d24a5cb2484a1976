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
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// printInterval prints the progress line; label is when, e.g. "1m0s".
func (s *soak) printInterval(label string, rss string) {
	calls, errs, p99 := s.stats.interval()
	var checked []string
	for _, l := range s.loads {
		if p, ok := l.(progresser); ok {
			checked = append(checked, p.progress())
		}
	}
	fmt.Printf("[%s] calls so far: %s | errors so far: %s | p99 this interval: %s | checked so far: %s | RSS: %s\n",
		label, calls, errs, p99, strings.Join(checked, ", "), rss)
}

// printTotals prints the calls, the ledger, memory and the checks; rows
// and checks are nil for an interrupted run.
func (s *soak) printTotals(elapsed time.Duration, rows []ledgerRow, checks []check, mem *memory) {
	fmt.Printf("\nTotals after %s of load\n\n", elapsed.Round(time.Second))
	s.printCalls()
	if rows != nil {
		fmt.Println()
		printLedger(rows)
	}
	fmt.Println()
	printMemory(mem)
	if checks != nil {
		fmt.Println()
		printChecks(checks)
	}
}

// printCalls prints one row per kind of call, then the first message of
// every error kind.
func (s *soak) printCalls() {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "call\tcalls\tok\trefused\tunknown\tp50\tp99\tmax\terrors")
	var firsts []string
	for _, kind := range s.stats.sortedKinds() {
		k := s.stats.kinds[kind]
		var errs []string
		for _, e := range slices.Sorted(maps.Keys(k.errs)) {
			errs = append(errs, fmt.Sprintf("%s=%d", e, k.errs[e]))
			firsts = append(firsts, fmt.Sprintf("  %s %s: %s", kind, e, truncate(k.firstErr[e], 240)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", kind, k.total.n, k.outcomes[stored], k.outcomes[refused], k.outcomes[unknown],
			fmtDuration(k.total.quantile(0.5)), fmtDuration(k.total.quantile(0.99)), fmtDuration(k.total.max), strings.Join(errs, " "))
	}
	_ = tw.Flush()
	if len(firsts) > 0 {
		fmt.Println("first error of each kind:")
		fmt.Println(strings.Join(firsts, "\n"))
	}
}

func printLedger(rows []ledgerRow) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ledger\tacknowledged\tunknown\trefused\tstored\tlost\tduplicated\tphantom\tunverified")
	var problems []string
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.name, r.acked, r.unknown, r.refused, r.stored, r.lost, r.duplicated, r.phantom, r.unverified)
		if r.problem != "" {
			problems = append(problems, fmt.Sprintf("  %s: %s", r.name, truncate(r.problem, 400)))
		}
	}
	_ = tw.Flush()
	if len(problems) > 0 {
		fmt.Println("first discrepancy:")
		fmt.Println(strings.Join(problems, "\n"))
	}
}

func printMemory(m *memory) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RSS\tbaseline\tend\tpeak\tend / baseline")
	for i, p := range m.procs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\n", p.name, fmtKiB(m.base[i]), fmtKiB(m.last[i]), fmtKiB(m.peak[i]), m.growth(i))
	}
	_ = tw.Flush()
}

// printChecks prints the checks that decide the run, then the figures
// reported alongside.
func printChecks(checks []check) {
	fmt.Println("checks:")
	for _, c := range checks {
		if !c.mustBeZero && c.maxRatio == 0 {
			continue
		}
		mark := "✓"
		if !c.passed() {
			mark = "✗"
		}
		fmt.Printf("  %s %s: %s\n", mark, c.name, c.render())
	}
	fmt.Println("reported:")
	for _, c := range checks {
		if !c.mustBeZero && c.maxRatio == 0 {
			fmt.Printf("  %s: %s\n", c.name, c.render())
		}
	}
}

// objectCounts reports what is left in the run's namespace: bounded
// whatever the run's length (streams are deleted as they are checked,
// jobs by the manager).
func (s *soak) objectCounts() []check {
	lists := []struct {
		name string
		list client.ObjectList
	}{
		{"JobStates", &jobstatev1alpha1.JobStateList{}},
		{"EventStreams", &jobstatev1alpha1.EventStreamList{}},
		{"EventSegments", &jobstatev1alpha1.EventSegmentList{}},
		{"Leases", &coordinationv1.LeaseList{}},
	}
	var parts []string
	var total int64
	for _, l := range lists {
		if err := s.env.Client.List(s.ctx, l.list, client.InNamespace(s.ns)); err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", l.name, err))
			continue
		}
		n := int64(meta.LenList(l.list))
		total += n
		parts = append(parts, fmt.Sprintf("%d %s", n, l.name))
	}
	return []check{{name: "objects left in the namespace (" + strings.Join(parts, ", ") + ")", value: total}}
}
