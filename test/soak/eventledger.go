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
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// eventLedger is what the writers of one stream were told about each event
// id.
type eventLedger struct {
	mu      sync.Mutex
	entries map[string]*eventEntry
	problem string
}

type eventEntry struct {
	state outcome
	// positions are the positions acknowledged for it (the original append
	// and any retry by id), which must all be the same.
	positions []int64
}

// note records the outcome of an append (or a retry of it) of events.
// Stored is final; a refusal after an unknown outcome settles it (a retry
// by id refused: the ids are not in the stream).
func (l *eventLedger) note(events []stream.EventData, o outcome, positions []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range events {
		entry := l.entries[e.ID]
		if entry == nil {
			entry = &eventEntry{state: o}
			l.entries[e.ID] = entry
		}
		switch {
		case o == stored && i < len(positions):
			entry.state = stored
			entry.positions = append(entry.positions, positions[i])
		case entry.state != stored:
			entry.state = o
		}
	}
}

func (l *eventLedger) notef(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.problem == "" {
		l.problem = fmt.Sprintf(format, args...)
	}
}

// check reads the stream back and compares it with the ledger: every
// acknowledged event stored once, at its acknowledged position; unknown
// ones at most once; refused ones and ids nobody appended never.
func (l *streamLoad) check(key client.ObjectKey, led *eventLedger) ledgerRow {
	row := ledgerRow{}
	found, n, err := l.readAll(l.s.ctx, key)
	if err != nil {
		row.unverified++
		row.notef("reading stream %s: %v", key.Name, err)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	row.stored = n
	for id, e := range led.entries {
		at := found[id]
		switch e.state {
		case stored:
			row.acked++
			if err == nil && !holdsAll(at, e.positions) {
				row.lost++
				row.notef("stream %s: event %s acknowledged at %v, stored at %v", key.Name, id, e.positions, at)
			}
		case unknown:
			row.unknown++
		case refused:
			row.refused++
			if len(at) > 0 {
				row.phantom++
				row.notef("stream %s: event %s refused, stored at %v", key.Name, id, at)
			}
		}
		if len(at) > 1 {
			row.duplicated += int64(len(at) - 1)
			row.notef("stream %s: event %s stored at %v", key.Name, id, at)
		}
	}
	for id, at := range found {
		if led.entries[id] == nil {
			row.phantom += int64(len(at))
			row.notef("stream %s: event %s stored at %v, never appended", key.Name, id, at)
		}
	}
	if led.problem != "" {
		row.notef("%s", led.problem)
	}
	return row
}

// holdsAll reports whether every acknowledged position is one the event is
// stored at.
func holdsAll(at, acknowledged []int64) bool {
	for _, p := range acknowledged {
		if !slices.Contains(at, p) {
			return false
		}
	}
	return len(at) > 0
}

// readAll reads the whole stream: the positions of every event id, and the
// number of events. Positions must run from 0 without a gap (nothing here
// sets a retention).
func (l *streamLoad) readAll(ctx context.Context, key client.ObjectKey) (map[string][]int64, int64, error) {
	found := map[string][]int64{}
	// Every page but the last moves on by readPage events, and a stream
	// holds at most this many.
	maxPages := streamWriters*streamEpoch*maxBatch*(1+resolveAttempts)/readPage + 2
	var next int64
	for range maxPages {
		events, err := l.reader.Read(ctx, key, next, readPage)
		if errors.Is(err, stream.ErrStreamNotFound) || (err == nil && len(events) == 0) {
			return found, next, nil // no events at all, or the end
		}
		if err != nil {
			return nil, 0, err
		}
		for _, e := range events {
			if e.Position != next {
				return nil, 0, fmt.Errorf("event %s at position %d, expected %d: a gap", e.ID, e.Position, next)
			}
			found[e.ID] = append(found[e.ID], e.Position)
			next++
		}
	}
	return nil, 0, fmt.Errorf("more than %d pages of %d events", maxPages, readPage)
}
