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
	"container/heap"
	"context"
	"errors"
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

// SubscribeOptions configure GET /subscribe.
type SubscribeOptions struct {
	// Watch is a shared informer on EventStreams of every namespace the
	// gateway serves (a controller-runtime cache's GetInformer, or a
	// client-go SharedIndexInformer), started by the caller. Every
	// subscription follows this one watch; none polls. nil: GET /subscribe
	// answers 503.
	Watch Informer
	// Keepalive is how often a subscription gets a ": keepalive" comment,
	// so that proxies keep an idle connection open. Default
	// DefaultKeepalive.
	Keepalive time.Duration
	// Buffer bounds the stream changes waiting to be sent to one
	// subscriber. One that falls further behind is disconnected rather
	// than slowing the watch or anyone else; it reconnects from its last
	// position, as EventoDB's clients do. Default DefaultSubscriberBuffer.
	Buffer int
	// WriteTimeout bounds one write to a subscriber: a client that reads
	// nothing for that long is disconnected. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Defaults of SubscribeOptions.
const (
	DefaultKeepalive        = 15 * time.Second
	DefaultSubscriberBuffer = 1024
	DefaultWriteTimeout     = 30 * time.Second
)

// historyPage is how many events of each stream a category subscription's
// history holds in memory at once.
const historyPage = 64

// Close ends every subscription and stops following the watch; later
// subscriptions get 503. http.Server.Shutdown waits for handlers but does
// not end one that streams, so register it: srv.RegisterOnShutdown(gw.Close).
func (s *Server) Close() {
	if s.subs != nil {
		s.subs.close()
	}
}

// Subscriptions is the number of open GET /subscribe connections.
func (s *Server) Subscriptions() int {
	if s.subs == nil {
		return 0
	}
	return s.subs.open()
}

// serveSubscribe is GET /subscribe: Server-Sent Events, one
// `event: poke` per event of a stream (stream=S), of a category's streams
// (category=C, optionally one consumer group member's: consumer=M&size=N)
// or of every stream of the namespace (all=true), from position=P on: a
// stream position for a stream, a global position otherwise.
//
// It guarantees: history first, then what is written meanwhile, with
// neither a gap nor a duplicate between them or later; a stream's pokes in
// position order; history in global order, and live pokes in the order
// the watch delivers them, which is commit order (global order) while the
// watch runs. A subscriber sees its namespace's streams only.
//
// It does not guarantee: global order across streams after the informer
// relists (a watch gap): the relisted streams come in list order, each
// one's events still in order and once. A subscriber that falls behind is
// disconnected, not waited for: it reconnects from its last position. The
// consumer group is Message DB's hash of the cardinal id, as category.get
// uses (EventoDB's own /subscribe hashes the whole name differently). Events
// are announced, not sent: the client reads them with stream.get or
// category.get.
//
// Steps:
//  1. Refuse without a watch (503), before anything else.
//  2. Validate every parameter (400) before any stream is read.
//  3. Verify the token (401, 403), which names the namespace.
//  4. Wait for the watch's first list: the hub sees every later change.
//  5. Follow the subscription (see follow).
func (s *Server) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	// 1.
	if s.subs == nil {
		writeError(w, &Error{Code: CodeBackendError, Message: "this gateway serves no subscriptions: it runs without a watch on EventStreams", Status: http.StatusServiceUnavailable})
		return
	}
	// 2.
	q, e := parseSubscription(r.URL.Query())
	if e != nil {
		writeError(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	// 3.
	namespace, err := s.opts.Auth.Authorize(ctx, Token(r), r.Header.Get(NamespaceHeader), auth.Read)
	if err != nil {
		writeError(w, s.toError("subscribe", err))
		return
	}
	// 4.
	select {
	case <-s.subs.synced():
	case <-ctx.Done():
		writeError(w, &Error{Code: CodeBackendError, Message: "the gateway's watch on EventStreams has not synced yet; retry", Status: http.StatusServiceUnavailable})
		return
	}
	// 5.
	s.follow(w, r, namespace, q)
}

// follow serves an authorized subscription. Steps, each protecting what
// it says:
//  1. Register with the hub before reading anything: a commit the read
//     below does not see is delivered to the buffer after this (no gap).
//  2. Read the subscription's streams live (a quorum read); its errors
//     are still JSON errors.
//  3. Send their events from the position, in stream order (a stream) or
//     global order (a category, all), and note each stream's version.
//  4. Send what the watch delivers, each stream's positions after what
//     was sent (no duplicate), until the client leaves, falls behind, or
//     the gateway closes.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, namespace string, q subscription) {
	// 1.
	sub, err := s.subs.register(namespace, q)
	if err != nil {
		writeError(w, &Error{Code: CodeBackendError, Message: err.Error(), Status: http.StatusServiceUnavailable})
		return
	}
	defer s.subs.unregister(sub)
	out := newPokeWriter(w, s.subs.opts.WriteTimeout)
	defer out.interruptOn(r.Context(), sub.behind, s.subs.done)()
	// 2.
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	streams, err := s.subscribed(ctx, namespace, q)
	cancel()
	if err != nil {
		writeError(w, s.toError("subscribe", err))
		return
	}
	// 3.
	t := newTracker(q)
	if err := out.start(); err != nil {
		return
	}
	if err := s.sendHistory(r.Context(), out, streams, t); err != nil {
		s.ended(err, sub)
		return
	}
	// 4.
	s.ended(s.sendLive(r.Context(), out, sub, t), sub)
}

// ended logs why a subscription ended, if that is worth a line: a client
// that leaves, falls behind or stops reading is routine; a read that
// fails is not.
func (s *Server) ended(err error, sub *subscriber) {
	select {
	case <-sub.behind:
		err = errBehind
	default:
	}
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, errClosed), errors.Is(err, errInterrupted):
	case errors.Is(err, errBehind), errors.Is(err, errConnection):
		s.opts.Log.V(1).Info("Subscriber disconnected", "namespace", sub.namespace, "subscription", sub.wants.String(), "reason", err.Error())
	default:
		s.opts.Log.Error(err, "Subscription failed", "namespace", sub.namespace, "subscription", sub.wants.String())
	}
}

// errBehind: the subscriber missed a change because its buffer was full.
var errBehind = errors.New("the subscriber fell behind")

// subscribed reads the streams q follows that have events, live.
func (s *Server) subscribed(ctx context.Context, namespace string, q subscription) ([]*jobstatev1alpha1.EventStream, error) {
	if q.stream != "" {
		es, err := s.liveStream(ctx, namespace, q.stream)
		if es == nil || err != nil {
			return nil, err
		}
		return []*jobstatev1alpha1.EventStream{es}, nil
	}
	list := &jobstatev1alpha1.EventStreamList{}
	if err := s.opts.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	var out []*jobstatev1alpha1.EventStream
	for i := range list.Items {
		es := &list.Items[i]
		if version(es) >= 0 && q.matches(es, streamName(es)) {
			out = append(out, es)
		}
	}
	return out, nil
}

// sendHistory sends the events of streams from t's position on and notes
// each stream's version in t: the watch's repeats of them are skipped.
func (s *Server) sendHistory(ctx context.Context, out *pokeWriter, streams []*jobstatev1alpha1.EventStream, t *tracker) error {
	var err error
	if t.global {
		err = s.sendMerged(ctx, out, streams, t.position)
	} else if len(streams) == 1 {
		err = s.readPages(ctx, streams[0], query{from: t.position}, func(ev *event) error { return out.poke(pokeOf(ev)) })
	}
	if err != nil {
		return err
	}
	for _, es := range streams {
		t.seen(es.Name, es.Head.Version)
	}
	return out.flush()
}

// readPages calls send for each event of es that q selects, a chunk at a
// time.
func (s *Server) readPages(ctx context.Context, es *jobstatev1alpha1.EventStream, q query, send func(*event) error) error {
	q.limit = readChunk
	for {
		events, err := s.read(ctx, es, q)
		if err != nil {
			return err
		}
		for i := range events {
			if err := send(&events[i]); err != nil {
				return err
			}
		}
		if len(events) < readChunk {
			return nil
		}
		q.from = events[len(events)-1].Position + 1
	}
}

// sendMerged sends the events of streams from global position minGlobal
// on, in global order: a merge of each stream's events (a stream's global
// positions grow with its positions), holding a page of each.
func (s *Server) sendMerged(ctx context.Context, out *pokeWriter, streams []*jobstatev1alpha1.EventStream, minGlobal int64) error {
	h := &cursors{}
	for _, es := range streams {
		c := &cursor{es: es}
		if err := s.fill(ctx, c, minGlobal); err != nil {
			return err
		}
		if len(c.page) > 0 {
			h.list = append(h.list, c)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		c := h.list[0]
		if err := out.poke(pokeOf(&c.page[0])); err != nil {
			return err
		}
		c.page = c.page[1:]
		if len(c.page) == 0 && c.more {
			if err := s.fill(ctx, c, minGlobal); err != nil {
				return err
			}
		}
		if len(c.page) == 0 {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return nil
}

// fill reads c's next page.
func (s *Server) fill(ctx context.Context, c *cursor, minGlobal int64) error {
	page, err := s.read(ctx, c.es, query{from: c.next, minGlobal: minGlobal, limit: historyPage})
	if err != nil {
		return err
	}
	c.page, c.more = page, len(page) == historyPage
	if len(page) > 0 {
		c.next = page[len(page)-1].Position + 1
	}
	return nil
}

// cursor is where a merge is in one stream.
type cursor struct {
	es *jobstatev1alpha1.EventStream
	// page holds its next events; more: there may be more after them,
	// from position next.
	page []event
	more bool
	next int64
}

// cursors is a heap of cursors by their next event's global position.
type cursors struct{ list []*cursor }

func (h *cursors) Len() int           { return len(h.list) }
func (h *cursors) Less(i, j int) bool { return h.list[i].page[0].global < h.list[j].page[0].global }
func (h *cursors) Swap(i, j int)      { h.list[i], h.list[j] = h.list[j], h.list[i] }
func (h *cursors) Push(x any)         { h.list = append(h.list, x.(*cursor)) }
func (h *cursors) Pop() any {
	c := h.list[len(h.list)-1]
	h.list = h.list[:len(h.list)-1]
	return c
}

// sendLive sends the changes the hub delivers to sub until the client
// leaves, falls behind or the gateway closes, with a keepalive comment
// every Keepalive. It sends what is ready before flushing.
func (s *Server) sendLive(ctx context.Context, out *pokeWriter, sub *subscriber, t *tracker) error {
	tick := time.NewTicker(s.subs.opts.Keepalive)
	defer tick.Stop()
	for {
		select {
		case c := <-sub.changes:
			if err := s.sendChange(ctx, out, c, t); err != nil {
				return err
			}
			for ready := true; ready; {
				select {
				case c := <-sub.changes:
					if err := s.sendChange(ctx, out, c, t); err != nil {
						return err
					}
				default:
					ready = false
				}
			}
		case <-tick.C:
			if err := out.comment("keepalive"); err != nil {
				return err
			}
		case <-sub.behind:
			return errBehind
		case <-s.subs.done:
			return errClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := out.flush(); err != nil {
			return err
		}
	}
}

// sendChange sends the events of c that t has not sent.
func (s *Server) sendChange(ctx context.Context, out *pokeWriter, c *change, t *tracker) error {
	key := c.es.Name
	if c.reset {
		t.forget(key)
	}
	if c.deleted {
		return nil
	}
	send := func(p poke) error {
		if !t.wants(key, p) {
			return nil
		}
		t.sent(key, p.Position)
		return out.poke(p)
	}
	if !c.read {
		for _, p := range c.pokes {
			if err := send(p); err != nil {
				return err
			}
		}
		return nil
	}
	q := query{from: max(c.from, t.next[key])}
	if t.global {
		q.minGlobal = t.position
	}
	return s.readPages(ctx, c.es, q, func(ev *event) error { return send(pokeOf(ev)) })
}

// headPokes reads the pokes of es's events from position from, all in its
// head: a read of the object in hand, without a request.
func (s *Server) headPokes(es *jobstatev1alpha1.EventStream, from int64) ([]poke, error) {
	events, err := s.read(context.Background(), es, query{from: from, limit: -1})
	if err != nil {
		return nil, err
	}
	pokes := make([]poke, len(events))
	for i := range events {
		pokes[i] = pokeOf(&events[i])
	}
	return pokes, nil
}

// tracker remembers, for each stream, the next position a subscriber has
// not been sent: what makes the seam between history and live, and a
// relist's repeats, duplicate-free.
type tracker struct {
	// global: position is a global position (category, all); otherwise a
	// stream position.
	global   bool
	position int64
	next     map[string]int64
}

func newTracker(q subscription) *tracker {
	return &tracker{global: q.stream == "", position: q.position, next: map[string]int64{}}
}

// wants reports whether p, of the stream named key, is to be sent.
func (t *tracker) wants(key string, p poke) bool {
	if p.Position < t.next[key] {
		return false
	}
	if t.global {
		return p.GlobalPosition >= t.position
	}
	return p.Position >= t.position
}

// sent notes that position was sent.
func (t *tracker) sent(key string, position int64) { t.next[key] = position + 1 }

// seen notes that every event up to version was sent or not wanted.
func (t *tracker) seen(key string, version int64) { t.next[key] = max(t.next[key], version+1) }

// forget drops what was sent of a deleted stream.
func (t *tracker) forget(key string) { delete(t.next, key) }
