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
	"context"
	"encoding/json"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// Batch sizes, as EventoDB has them.
const (
	defaultBatchSize = 1000
	maxBatchSize     = 10000
	// readChunk is how many events one ReadFrom returns.
	readChunk = 1000
)

// query says which events of a stream a read returns.
type query struct {
	// from is the first stream position.
	from int64
	// minGlobal is the first global position.
	minGlobal int64
	// limit bounds the events returned; -1: all.
	limit int
	// keep, if set, also filters.
	keep func(*event) bool
}

// readQuery reads argument i, {position?, globalPosition?, batchSize?}. For
// stream.get, position is a stream position; for category.get (global
// true) both name a global position.
func readQuery(a args, i int, global bool) (query, object, *Error) {
	o, e := a.object(i, "options")
	if e != nil {
		return query{}, o, e
	}
	q := query{limit: defaultBatchSize}
	pos, _, e := o.int("position")
	if e != nil {
		return q, o, e
	}
	gp, hasGP, e := o.int("globalPosition")
	if e != nil {
		return q, o, e
	}
	switch {
	case global && hasGP:
		q.minGlobal = gp
	case global:
		q.minGlobal = pos
	default:
		q.from, q.minGlobal = pos, gp
	}
	if q.from < 0 || q.minGlobal < 0 {
		return q, o, invalid("%s: options.position and options.globalPosition must be >= 0", a.method)
	}
	if n, ok, e := o.int("batchSize"); e != nil {
		return q, o, e
	} else if ok {
		if n != -1 && n < 1 {
			return q, o, invalid("%s: options.batchSize must be at least 1, or -1 for all, got %d", a.method, n)
		}
		// Past the maximum it is capped, as EventoDB's SDK tests expect
		// of a server (EDGE-003), rather than refused.
		q.limit = int(min(n, maxBatchSize)) // -1 stays -1: all
	}
	return q, o, nil
}

// event is a stored event as EventoDB serves it.
type event struct {
	stream.RecordedEvent
	// name is the EventoDB stream name; global the global position.
	name   string
	global int64
}

// streamRow is [id, type, position, globalPosition, data, metadata, time].
func (e *event) streamRow() []any {
	return []any{e.ID, e.Type, e.Position, e.global, e.Data, e.Metadata, timestamp(e.Time)}
}

// categoryRow is [id, streamName, type, position, globalPosition, data,
// metadata, time].
func (e *event) categoryRow() []any {
	return []any{e.ID, e.name, e.Type, e.Position, e.global, e.Data, e.Metadata, timestamp(e.Time)}
}

// liveStream reads an EventoDB stream's EventStream live; nil if it has no
// events.
func (s *Server) liveStream(ctx context.Context, namespace, name string) (*jobstatev1alpha1.EventStream, error) {
	es := &jobstatev1alpha1.EventStream{}
	if err := s.opts.Client.Get(ctx, streamKey(namespace, name), es); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if es.Head == nil || es.Head.Version < 0 {
		return nil, nil
	}
	return es, nil
}

// read returns es's events that q selects, in stream order.
func (s *Server) read(ctx context.Context, es *jobstatev1alpha1.EventStream, q query) ([]event, error) {
	out := []event{}
	from := max(q.from, 0)
	if skip, err := s.sealedAreOlder(ctx, es, q.minGlobal); err != nil {
		return nil, err
	} else if skip {
		from = max(from, es.Head.First)
	}
	name := streamName(es)
	for {
		chunk, err := s.streams.ReadFrom(ctx, es, from, readChunk)
		if errors.Is(err, stream.ErrStreamNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for i := range chunk {
			ev := event{RecordedEvent: chunk[i], name: name}
			if ev.global, err = globalPosition(ev.GlobalPosition); err != nil {
				return nil, err
			}
			if ev.global < q.minGlobal || q.keep != nil && !q.keep(&ev) {
				continue
			}
			out = append(out, ev)
			if len(out) == q.limit {
				return out, nil
			}
		}
		if len(chunk) < readChunk {
			return out, nil
		}
		from = chunk[len(chunk)-1].Position + 1
	}
}

// sealedAreOlder reports whether every sealed event of es is before
// minGlobal: the head's first event is, and a stream's global positions
// grow with its positions. Then a read need not open its segments.
func (s *Server) sealedAreOlder(ctx context.Context, es *jobstatev1alpha1.EventStream, minGlobal int64) (bool, error) {
	h := es.Head
	if minGlobal == 0 || h.First == 0 || h.First > h.Version {
		return false, nil
	}
	first, err := s.streams.ReadFrom(ctx, es, h.First, 1)
	if err != nil || len(first) == 0 {
		return false, err
	}
	g, err := globalPosition(first[0].GlobalPosition)
	return g < minGlobal, err
}

// last returns the newest event of es that keep accepts, or nil: it reads
// back from the end a chunk at a time.
func (s *Server) last(ctx context.Context, es *jobstatev1alpha1.EventStream, keep func(*stream.RecordedEvent) bool) (*event, error) {
	for end := es.Head.Version; end >= 0; {
		start := max(0, end-readChunk+1)
		chunk, err := s.streams.ReadFrom(ctx, es, start, int(end-start+1))
		if err != nil {
			return nil, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i].Position > end || !keep(&chunk[i]) {
				continue
			}
			ev := &event{RecordedEvent: chunk[i], name: streamName(es)}
			ev.global, err = globalPosition(ev.GlobalPosition)
			return ev, err
		}
		end = start - 1
	}
	return nil, nil
}

// correlated reports whether an event's metadata.correlationStreamName is
// in category c.
func correlated(ev *event, c string) bool {
	var meta struct {
		CorrelationStreamName string `json:"correlationStreamName"`
	}
	if len(ev.Metadata) == 0 || json.Unmarshal(ev.Metadata, &meta) != nil {
		return false
	}
	return meta.CorrelationStreamName != "" && category(meta.CorrelationStreamName) == c
}
