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
	"fmt"
	"time"
	"unicode/utf8"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// writeResult is stream.write's answer. Positions and GlobalPositions are
// sent only for a write of several messages (an extension).
type writeResult struct {
	Position        int64   `json:"position"`
	GlobalPosition  int64   `json:"globalPosition"`
	Positions       []int64 `json:"positions,omitempty"`
	GlobalPositions []int64 `json:"globalPositions,omitempty"`
}

// streamWrite is ["stream.write", stream, message, {id?, expectedVersion?}?].
// message is {type, data, metadata?}, or (an extension) an array of them,
// each with an optional id, stored atomically at consecutive positions.
// A message whose id the stream already holds is not stored again: the
// answer is the position it was stored at (EventoDB answers 500).
func (s *Server) streamWrite(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(3); e != nil {
		return nil, e
	}
	name, e := streamArg(a)
	if e != nil {
		return nil, e
	}
	opts, e := a.object(2, "options")
	if e != nil {
		return nil, e
	}
	events, batch, e := messages(a, opts)
	if e != nil {
		return nil, e
	}
	ao := stream.AppendOptions{Annotations: map[string]string{StreamAnnotation: name}}
	if v, ok, e := opts.int("expectedVersion"); e != nil {
		return nil, e
	} else if ok {
		if v < stream.NoStream {
			return nil, invalid("stream.write: options.expectedVersion must be -1 (no stream yet) or a version >= 0, got %d", v)
		}
		ao.ExpectedVersion = ptr.To(v)
	}
	s.metrics.messages.Observe(float64(len(events)))
	res, err := s.streams.Append(ctx, streamKey(namespace, name), events, ao)
	if err != nil {
		return nil, err
	}
	out := writeResult{}
	for i, p := range res.Positions {
		gp, err := globalPosition(res.GlobalPositions[i])
		if err != nil {
			return nil, err
		}
		out.Position, out.GlobalPosition = p, gp
		if batch {
			out.Positions = append(out.Positions, p)
			out.GlobalPositions = append(out.GlobalPositions, gp)
		}
	}
	return out, nil
}

// messages reads stream.write's message argument: one object, or an array
// of them.
func messages(a args, opts object) ([]stream.EventData, bool, *Error) {
	if !a.present(1) {
		return nil, false, invalid("stream.write requires argument 2: the message {type, data, metadata?}")
	}
	id, hasID, e := opts.string("id")
	if e != nil {
		return nil, false, e
	}
	raw := a.list[1]
	if jsonKind(raw) != "an array" {
		o, e := parseObject(raw, "stream.write: message")
		if e != nil {
			return nil, false, e
		}
		ev, e := message(o)
		ev.ID = id
		return []stream.EventData{ev}, false, e
	}
	if hasID {
		return nil, false, invalid("stream.write: options.id is for one message; give each message of an array its own id")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return nil, false, invalid("stream.write: the messages array must hold at least one message object")
	}
	events := make([]stream.EventData, len(list))
	for i, m := range list {
		o, e := parseObject(m, fmt.Sprintf("stream.write: messages[%d]", i))
		if e != nil {
			return nil, false, e
		}
		if events[i], e = message(o); e != nil {
			return nil, false, e
		}
		if events[i].ID, _, e = o.string("id"); e != nil {
			return nil, false, e
		}
	}
	return events, true, nil
}

// message reads one {type, data, metadata?}.
func message(o object) (stream.EventData, *Error) {
	typ, ok, e := o.string("type")
	if e != nil {
		return stream.EventData{}, e
	}
	if !ok || typ == "" {
		return stream.EventData{}, invalid("%s.type must be a non-empty string", o.path)
	}
	data, ok, e := o.rawObject("data")
	if e != nil {
		return stream.EventData{}, e
	}
	if !ok {
		return stream.EventData{}, invalid("%s.data must be an object", o.path)
	}
	ev := stream.EventData{Type: typ, Data: data}
	if meta, ok, e := o.rawObject("metadata"); e != nil {
		return stream.EventData{}, e
	} else if ok {
		ev.Metadata = meta
	}
	return ev, nil
}

// streamArg reads argument 1, a stream name.
func streamArg(a args) (string, *Error) {
	name, e := a.name(0, "streamName", false)
	if e != nil {
		return "", e
	}
	if len(name) > maxStreamName || !utf8.ValidString(name) {
		return "", invalid("%s: streamName must be valid UTF-8 of at most %d bytes", a.method, maxStreamName)
	}
	return name, nil
}

// streamKey is the EventStream of an EventoDB stream.
func streamKey(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: objectName(name)}
}

// streamVersion is ["stream.version", stream]: the position of its last
// message, or null.
func (s *Server) streamVersion(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(1); e != nil {
		return nil, e
	}
	name, e := streamArg(a)
	if e != nil {
		return nil, e
	}
	v, ok, err := s.streams.Version(ctx, streamKey(namespace, name))
	if err != nil || !ok {
		return nil, err
	}
	return v, nil
}

// streamGet is ["stream.get", stream, {position?, globalPosition?,
// batchSize?}?]: messages as [id, type, position, globalPosition, data,
// metadata, time] from position on; [] for a stream with none.
func (s *Server) streamGet(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(2); e != nil {
		return nil, e
	}
	name, e := streamArg(a)
	if e != nil {
		return nil, e
	}
	q, _, e := readQuery(a, 1, false)
	if e != nil {
		return nil, e
	}
	es, err := s.liveStream(ctx, namespace, name)
	if es == nil || err != nil {
		return []any{}, err
	}
	events, err := s.read(ctx, es, q)
	if err != nil {
		return nil, err
	}
	rows := make([]any, len(events))
	for i, ev := range events {
		rows[i] = ev.streamRow()
	}
	return rows, nil
}

// streamLast is ["stream.last", stream, {type?}?]: its last message (of
// that type), or null.
func (s *Server) streamLast(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(2); e != nil {
		return nil, e
	}
	name, e := streamArg(a)
	if e != nil {
		return nil, e
	}
	opts, e := a.object(1, "options")
	if e != nil {
		return nil, e
	}
	typ, byType, e := opts.string("type")
	if e != nil {
		return nil, e
	}
	es, err := s.liveStream(ctx, namespace, name)
	if es == nil || err != nil {
		return nil, err
	}
	ev, err := s.last(ctx, es, func(ev *stream.RecordedEvent) bool { return !byType || ev.Type == typ })
	if ev == nil || err != nil {
		return nil, err
	}
	return ev.streamRow(), nil
}

// sysVersion is ["sys.version"].
func (s *Server) sysVersion(context.Context, string, args) (any, error) {
	return s.opts.Version, nil
}

// sysHealth is ["sys.health"].
func (s *Server) sysHealth(context.Context, string, args) (any, error) {
	return map[string]string{"status": "ok", "backend": "kubernetes"}, nil
}

// timestamp is EventoDB's time format.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
