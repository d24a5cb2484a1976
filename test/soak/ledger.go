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
	"sync"
)

// ledgerRow is one workload's ledger compared with what is stored. Units
// are the workload's: increments, events, jobs.
type ledgerRow struct {
	name string
	// acked, unknown and refused count the writes by outcome.
	acked, unknown, refused int64
	// stored is what the stored state holds.
	stored int64
	// lost: acknowledged, not stored. duplicated: stored more often than
	// acknowledged (and unknown). phantom: stored though refused.
	lost, duplicated, phantom int64
	// unverified counts objects whose stored state could not be read.
	unverified int64
	// problem describes the first discrepancy.
	problem string
}

// add sums o into r; r keeps its first problem.
func (r *ledgerRow) add(o ledgerRow) {
	r.acked += o.acked
	r.unknown += o.unknown
	r.refused += o.refused
	r.stored += o.stored
	r.lost += o.lost
	r.duplicated += o.duplicated
	r.phantom += o.phantom
	r.unverified += o.unverified
	if r.problem == "" {
		r.problem = o.problem
	}
}

// notef records a discrepancy, if it is the first.
func (r *ledgerRow) notef(format string, args ...any) {
	if r.problem == "" {
		r.problem = fmt.Sprintf(format, args...)
	}
}

// summary is the row's verdict so far, for the progress line.
func (r *ledgerRow) summary(what string, n int64) string {
	return fmt.Sprintf("%d %s (lost %d, duplicated %d, phantom %d)", n, what, r.lost, r.duplicated, r.phantom)
}

// check is one line of the verdict.
type check struct {
	name  string
	value int64
	// mustBeZero: the run fails unless value is 0.
	mustBeZero bool
	// ratio must not exceed maxRatio, if maxRatio is set.
	ratio, maxRatio float64
}

func (c check) passed() bool {
	return !(c.mustBeZero && c.value != 0) && !(c.maxRatio > 0 && c.ratio > c.maxRatio)
}

// render is the check's value: a count, or a ratio.
func (c check) render() string {
	if c.ratio != 0 || c.maxRatio != 0 {
		return fmt.Sprintf("%.2f", c.ratio)
	}
	return fmt.Sprint(c.value)
}

func allPassed(checks []check) bool {
	for _, c := range checks {
		if !c.passed() {
			return false
		}
	}
	return true
}

// ledgerChecks are the ledger's verdict: nothing lost, duplicated or
// phantom in any row, and every object read.
func ledgerChecks(rows []ledgerRow) []check {
	var total ledgerRow
	for _, r := range rows {
		total.add(r)
	}
	return []check{
		{name: "lost (acknowledged, not stored)", value: total.lost, mustBeZero: true},
		{name: "duplicated (stored more often than acknowledged or unknown)", value: total.duplicated, mustBeZero: true},
		{name: "phantom (stored though refused)", value: total.phantom, mustBeZero: true},
		{name: "objects that could not be verified", value: total.unverified, mustBeZero: true},
	}
}

// tally counts one counter's increments by outcome.
type tally struct{ acked, unknown, refused int64 }

// counterLedger counts the increments of counters, by counter name
// ("object/field"), each counter written by one goroutine.
type counterLedger struct {
	mu      sync.Mutex
	tallies map[string]*tally
}

// note records one increment of counter with outcome o.
func (l *counterLedger) note(counter string, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tallies == nil {
		l.tallies = map[string]*tally{}
	}
	t := l.tallies[counter]
	if t == nil {
		t = &tally{}
		l.tallies[counter] = t
	}
	switch o {
	case stored:
		t.acked++
	case unknown:
		t.unknown++
	case refused:
		t.refused++
	}
}

// check compares the stored counters with the ledger: each must hold at
// least its acknowledged increments and at most those plus the unknown
// ones.
func (l *counterLedger) check(name string, values map[string]int64) ledgerRow {
	l.mu.Lock()
	defer l.mu.Unlock()
	row := ledgerRow{name: name}
	for counter, t := range l.tallies {
		v := values[counter]
		row.acked, row.unknown, row.refused, row.stored = row.acked+t.acked, row.unknown+t.unknown, row.refused+t.refused, row.stored+v
		switch {
		case v < t.acked:
			row.lost += t.acked - v
			row.notef("%s: stored %d, acknowledged %d", counter, v, t.acked)
		case v > t.acked+t.unknown:
			row.duplicated += v - t.acked - t.unknown
			row.notef("%s: stored %d, acknowledged %d + unknown %d", counter, v, t.acked, t.unknown)
		}
	}
	for counter, v := range values {
		if _, ok := l.tallies[counter]; !ok && v != 0 {
			row.phantom += v
			row.notef("%s: stored %d, never written", counter, v)
		}
	}
	return row
}
