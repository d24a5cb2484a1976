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

package faults

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// callTimeout bounds one call of a worker; a call that fails is tried
// again (an Append with the same event ids) after retryPause.
const (
	callTimeout = 10 * time.Second
	retryPause  = 100 * time.Millisecond
)

// progress counts what a worker did, for the test to wait on and report.
type progress struct {
	done, errors atomic.Int64
	mu           sync.Mutex
	lastErr      error
}

func (p *progress) failed(err error) {
	p.errors.Add(1)
	p.mu.Lock()
	p.lastErr = err
	p.mu.Unlock()
}

func (p *progress) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d done, %d errors (last: %v)", p.done.Load(), p.errors.Load(), p.lastErr)
}

// appendAll appends events to the stream key one Append each, as a lone
// writer: an Append that fails is sent again with the same event ids until
// it is acknowledged, each at the position after the previous one. pace
// is the pause between appends.
func appendAll(ctx context.Context, streams *stream.Client, key client.ObjectKey, events []stream.EventData, pace time.Duration, p *progress) error {
	for i, ev := range events {
		for {
			callCtx, cancel := context.WithTimeout(ctx, callTimeout)
			res, err := streams.Append(callCtx, key, []stream.EventData{ev}, stream.AppendOptions{})
			cancel()
			if err == nil {
				if len(res.Positions) != 1 || res.Positions[0] != int64(i) {
					return fmt.Errorf("event %d of %s acknowledged at positions %v, want [%d]", i, key, res.Positions, i)
				}
				p.done.Add(1)
				break
			}
			p.failed(err)
			if ctx.Err() != nil {
				return fmt.Errorf("appending event %d of %s: %w (%s)", i, key, ctx.Err(), p)
			}
			time.Sleep(retryPause)
		}
		time.Sleep(pace)
	}
	return nil
}

// updateAll applies apply(<name>-<i>) to the JobState key through jobs
// until quota Updates were acknowledged, each with a new id, filing every
// outcome in o.
func updateAll(ctx context.Context, jobs *jobstate.Client, key client.ObjectKey, name string, quota int, pace time.Duration, o *outcomes, p *progress) error {
	for i := 0; p.done.Load() < int64(quota); i++ {
		id := fmt.Sprintf("%s-%d", name, i)
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := jobs.Update(callCtx, key, apply(id))
		cancel()
		o.record(id, err)
		if err == nil {
			p.done.Add(1)
		} else {
			p.failed(err)
			if ctx.Err() != nil {
				return fmt.Errorf("updating %s: %w (%s)", key, ctx.Err(), p)
			}
			time.Sleep(retryPause)
		}
		time.Sleep(pace)
	}
	return nil
}

// lifecycleEvents are a worker's events for one attempt of an
// event-sourced JobState: Claimed, heartbeats heartbeats, Succeeded, with
// ids of series series.
func lifecycleEvents(series int, holder string, heartbeats int) []stream.EventData {
	evs := []stream.EventData{jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: holder})}
	for i := 1; i <= heartbeats; i++ {
		evs = append(evs, jobstate.NewEvent(jobstate.EventHeartbeat, jobstate.EventPayload{Holder: holder, Attempt: 1, Progress: int32(i * 99 / heartbeats)}))
	}
	evs = append(evs, jobstate.NewEvent(jobstate.EventSucceeded, jobstate.EventPayload{Holder: holder, Attempt: 1}))
	for i := range evs {
		evs[i].ID = eventID(series, i)
	}
	return evs
}

// testEvents are n events of type Tested with ids of series series.
func testEvents(series, n int) []stream.EventData {
	evs := make([]stream.EventData, n)
	for i := range evs {
		evs[i] = stream.EventData{ID: eventID(series, i), Type: "Tested", Data: map[string]int{"n": i}}
	}
	return evs
}

// idsOf are the events' ids.
func idsOf(evs []stream.EventData) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}
