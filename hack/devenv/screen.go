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
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// screen is make run's output: lines that stay (what started, transitions,
// errors) and, when stdout is a terminal, a live region under them that is
// redrawn in place (ANSI cursor-up and clear-to-end). Every write goes
// through it, so that a line printed while the live region is on screen
// goes above it instead of into it.
type screen struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	// tty: stdout is a terminal; size is its width and height.
	tty  bool
	size func() (width, height int)
	// live is the live region as drawn; drawn is how many lines it took.
	live  []string
	drawn int
}

func newScreen(out, errOut *os.File) *screen {
	fd := int(out.Fd())
	size := func() (int, int) {
		w, h, err := term.GetSize(fd)
		if err != nil || w <= 0 || h <= 0 {
			return 80, 24
		}
		return w, h
	}
	return &screen{out: out, errOut: errOut, tty: term.IsTerminal(fd), size: size}
}

// linef prints a line (several, if it has newlines) that stays.
func (s *screen) linef(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	fmt.Fprintf(s.out, strings.TrimSuffix(format, "\n")+"\n", args...)
	s.draw()
}

// item prints what started: "Manager        ...".
func (s *screen) item(label, format string, args ...any) {
	s.linef("%-14s %s", label, fmt.Sprintf(format, args...))
}

// errorf prints an error line to stderr.
func (s *screen) errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	fmt.Fprintf(s.errOut, format+"\n", args...)
	s.draw()
}

// setLive replaces the live region with lines (none: removes it). It does
// nothing when stdout is not a terminal.
func (s *screen) setLive(lines []string) {
	if !s.tty {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	s.live = lines
	s.draw()
}

// erase moves the cursor back to the start of the live region and clears
// from there to the end of the screen.
func (s *screen) erase() {
	if s.drawn > 0 {
		fmt.Fprintf(s.out, "\r\x1b[%dA\x1b[J", s.drawn)
		s.drawn = 0
	}
}

// draw prints the live region, cut to the terminal so that no line wraps
// and it never scrolls (either would leave erase short of its top).
func (s *screen) draw() {
	if len(s.live) == 0 {
		return
	}
	width, height := s.size()
	lines := s.live
	if room := max(height-1, 2); len(lines) > room {
		lines = append(lines[:room-1:room-1], fmt.Sprintf("... %d more lines (a taller terminal shows them)", len(s.live)-room+1))
	}
	var b strings.Builder
	for _, line := range lines {
		if r := []rune(line); len(r) >= width {
			line = string(r[:width-1])
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(s.out, b.String())
	s.drawn = len(lines)
}
