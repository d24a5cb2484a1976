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
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// terminal is a screen on a 20x4 terminal, writing into the returned
// builders.
func terminal(tty bool) (*screen, *strings.Builder, *strings.Builder) {
	out, errOut := &strings.Builder{}, &strings.Builder{}
	return &screen{out: out, errOut: errOut, tty: tty, size: func() (int, int) { return 20, 4 }}, out, errOut
}

func TestScreen(t *testing.T) {
	const up2 = "\r\x1b[2A\x1b[J"
	tests := []struct {
		name    string
		tty     bool
		do      func(s *screen)
		out     string
		errOut  string
		drawnTo int
	}{{
		name: "a line, then a live region under it",
		tty:  true,
		do:   func(s *screen) { s.linef("started"); s.setLive([]string{"a", "b"}) },
		out:  "started\na\nb\n", drawnTo: 2,
	}, {
		name: "a line while the live region shows goes above it",
		tty:  true,
		do:   func(s *screen) { s.setLive([]string{"a", "b"}); s.linef("event") },
		out:  "a\nb\n" + up2 + "event\na\nb\n", drawnTo: 2,
	}, {
		name: "an error too, on stderr",
		tty:  true,
		do:   func(s *screen) { s.setLive([]string{"a", "b"}); s.errorf("make run: %s", "bad") },
		out:  "a\nb\n" + up2 + "a\nb\n", errOut: "make run: bad\n", drawnTo: 2,
	}, {
		name: "lines are cut to the width, so none wraps",
		tty:  true,
		do:   func(s *screen) { s.setLive([]string{strings.Repeat("x", 25)}) },
		out:  strings.Repeat("x", 19) + "\n", drawnTo: 1,
	}, {
		name: "a region taller than the terminal is cut, saying so",
		tty:  true,
		do:   func(s *screen) { s.setLive([]string{"1", "2", "3", "4", "5"}) },
		out:  "1\n2\n... 3 more lines (a\n", drawnTo: 3,
	}, {
		name: "removing the region erases it",
		tty:  true,
		do:   func(s *screen) { s.setLive([]string{"a", "b"}); s.setLive(nil) },
		out:  "a\nb\n" + up2,
	}, {
		name: "not a terminal: lines only, no escape sequences",
		do:   func(s *screen) { s.setLive([]string{"a"}); s.linef("event"); s.item("Manager", "in %s", "here") },
		out:  "event\nManager        in here\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out, errOut := terminal(tt.tty)
			tt.do(s)
			if out.String() != tt.out || errOut.String() != tt.errOut || s.drawn != tt.drawnTo {
				t.Errorf("stdout %q, stderr %q, %d lines drawn; want %q, %q, %d", out, errOut, s.drawn, tt.out, tt.errOut, tt.drawnTo)
			}
		})
	}
}

func TestTransitionLine(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 4, 5, 0, time.UTC)
	js := func(s jobstatev1alpha1.JobStateStatus) *jobstatev1alpha1.JobState {
		return &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "flaky-export"}, Status: s}
	}
	tests := []struct {
		status jobstatev1alpha1.JobStateStatus
		want   string
	}{{
		status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseRunning, Attempt: 2, Holder: "w1", Reason: "Claimed"},
		want:   "15:04:05  default/flaky-export         Running    attempt 2, held by w1 (Claimed)",
	}, {
		status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhasePending, Attempt: 1, Holder: "w1", Reason: "WorkerFailed", Message: "demo failure"},
		want:   "15:04:05  default/flaky-export         Pending    attempt 1 (WorkerFailed: demo failure)",
	}, {
		status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Attempt: 2},
		want:   "15:04:05  default/flaky-export         Succeeded  attempt 2",
	}}
	for _, tt := range tests {
		if got := transitionLine(js(tt.status), now); got != tt.want {
			t.Errorf("transitionLine(%+v)\n got %q\nwant %q", tt.status, got, tt.want)
		}
	}
}
