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
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// Informer is what subscriptions need of a shared informer on EventStreams:
// controller-runtime's cache.Informer and client-go's SharedIndexInformer
// are both one.
type Informer interface {
	AddEventHandler(handler toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error)
	RemoveEventHandler(handle toolscache.ResourceEventHandlerRegistration) error
}

// errClosed: the gateway is shutting down.
var errClosed = errors.New("the gateway is shutting down")

// change is what one watch event says about a stream: the events from
// position from to es.Head.Version are new.
type change struct {
	// es is the stream as the watch delivered it. Shared by every
	// subscriber and the informer's cache: read only.
	es *jobstatev1alpha1.EventStream
	// from is the first new position.
	from int64
	// reset: the stream was deleted (and, if deleted is false, created
	// again under its name): what a subscriber was sent of it is void.
	reset, deleted bool
	// pokes are the new events, read from the head once for every
	// subscriber; unless read is set: some are sealed already (a relist
	// after a watch gap) and each subscriber reads them from segments.
	pokes []poke
	read  bool
}

// subscriber is one open subscription, as the hub sees it.
type subscriber struct {
	namespace string
	wants     subscription
	// changes holds what the subscriber has not sent yet, bounded.
	changes chan *change
	// behind is closed when changes was full: the subscriber missed a
	// change and must be disconnected. The hub closes it once (full).
	behind chan struct{}
	full   bool
}

// hub follows one informer for the whole gateway and fans its stream
// changes out to the subscribers of each namespace, in the order the watch
// delivers them. It never blocks the informer: a subscriber whose buffer
// is full is marked behind and gets nothing more.
type hub struct {
	opts SubscribeOptions
	reg  toolscache.ResourceEventHandlerRegistration
	// headPokes reads the pokes of events at from and after, all in es's
	// head: no API request.
	headPokes func(es *jobstatev1alpha1.EventStream, from int64) ([]poke, error)
	log       logr.Logger

	mu    sync.Mutex
	subs  map[string]map[*subscriber]struct{}
	count int
	// done is closed by close: every subscription ends.
	done   chan struct{}
	closed bool
}

// newHub validates opts, applies their defaults and registers with
// opts.Watch; nil without a Watch.
func newHub(opts SubscribeOptions, headPokes func(*jobstatev1alpha1.EventStream, int64) ([]poke, error), log logr.Logger) (*hub, error) {
	switch {
	case opts.Keepalive < 0:
		return nil, fmt.Errorf("gateway: Options.Subscribe.Keepalive must be >= 0, got %v", opts.Keepalive)
	case opts.Buffer < 0:
		return nil, fmt.Errorf("gateway: Options.Subscribe.Buffer must be >= 0, got %d", opts.Buffer)
	case opts.WriteTimeout < 0:
		return nil, fmt.Errorf("gateway: Options.Subscribe.WriteTimeout must be >= 0, got %v", opts.WriteTimeout)
	case opts.Watch == nil:
		return nil, nil
	}
	if opts.Keepalive == 0 {
		opts.Keepalive = DefaultKeepalive
	}
	if opts.Buffer == 0 {
		opts.Buffer = DefaultSubscriberBuffer
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	h := &hub{opts: opts, headPokes: headPokes, log: log, subs: map[string]map[*subscriber]struct{}{}, done: make(chan struct{})}
	reg, err := opts.Watch.AddEventHandler(toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    h.onAdd,
		UpdateFunc: h.onUpdate,
		DeleteFunc: h.onDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: watching EventStreams: %w", err)
	}
	h.reg = reg
	return h, nil
}

// synced is closed once the informer has listed every stream and handed
// them to the hub: from then on every change reaches it as a watch event.
func (h *hub) synced() <-chan struct{} { return h.reg.HasSyncedChecker().Done() }

// onAdd publishes a stream created after the informer's first list. The
// streams of that list are the starting point, not news: no subscriber can
// be registered before it is delivered (see synced).
func (h *hub) onAdd(obj any, isInInitialList bool) {
	if es, ok := obj.(*jobstatev1alpha1.EventStream); ok && !isInInitialList && version(es) >= 0 {
		h.publish(&change{es: es, from: 0})
	}
}

// onUpdate publishes the events after the old copy's version. An update
// whose version did not grow (a seal, a status write, a resync that
// delivers the same object twice) has none; a relist after a watch gap
// can deliver many at once.
func (h *hub) onUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*jobstatev1alpha1.EventStream)
	es, ok2 := newObj.(*jobstatev1alpha1.EventStream)
	switch {
	case !ok1 || !ok2:
	case old.UID != es.UID:
		// Deleted and created again while the watch was away.
		h.publish(&change{es: es, from: 0, reset: true})
	case version(es) > version(old):
		h.publish(&change{es: es, from: version(old) + 1})
	}
}

// onDelete publishes that a stream is gone: a subscriber forgets what it
// sent of it, so that one created again under its name is sent from 0.
func (h *hub) onDelete(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if es, ok := obj.(*jobstatev1alpha1.EventStream); ok {
		h.publish(&change{es: es, reset: true, deleted: true})
	}
}

// version is a stream's version; -1 without events.
func version(es *jobstatev1alpha1.EventStream) int64 {
	if es.Head == nil {
		return -1
	}
	return es.Head.Version
}

// publish hands c to every subscriber of its namespace that follows its
// stream. The pokes are read once, and only if someone wants them.
func (h *hub) publish(c *change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[c.es.Namespace]
	if len(subs) == 0 {
		return
	}
	name := streamName(c.es)
	loaded := false
	for sub := range subs {
		if !sub.wants.matches(c.es, name) {
			continue
		}
		if !loaded && !c.deleted {
			h.loadPokes(c)
			loaded = true
		}
		select {
		case sub.changes <- c:
		default:
			if !sub.full {
				sub.full = true
				close(sub.behind)
			}
		}
	}
}

// loadPokes fills in c's pokes from the head, or marks it for each
// subscriber to read if some of its events are sealed already.
func (h *hub) loadPokes(c *change) {
	if version(c.es) < c.from {
		return // A stream created again without events yet.
	}
	if c.from < c.es.Head.First {
		c.read = true
		return
	}
	pokes, err := h.headPokes(c.es, c.from)
	if err != nil {
		// Each subscriber reads again, fails the same way and ends:
		// better than a gap.
		h.log.Error(err, "Reading a stream's new events for its subscribers", "stream", klog.KObj(c.es))
		c.read = true
		return
	}
	c.pokes = pokes
}

// register adds a subscriber in namespace for q.
func (h *hub) register(namespace string, q subscription) (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	sub := &subscriber{namespace: namespace, wants: q, changes: make(chan *change, h.opts.Buffer), behind: make(chan struct{})}
	if h.subs[namespace] == nil {
		h.subs[namespace] = map[*subscriber]struct{}{}
	}
	h.subs[namespace][sub] = struct{}{}
	h.count++
	return sub, nil
}

// unregister removes sub; what it had not sent is dropped.
func (h *hub) unregister(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub.namespace][sub]; !ok {
		return
	}
	delete(h.subs[sub.namespace], sub)
	if len(h.subs[sub.namespace]) == 0 {
		delete(h.subs, sub.namespace)
	}
	h.count--
}

// open is the number of registered subscribers.
func (h *hub) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// close ends every subscription, refuses new ones and stops following the
// informer.
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.done)
	h.mu.Unlock()
	if err := h.opts.Watch.RemoveEventHandler(h.reg); err != nil {
		h.log.Error(err, "Removing the gateway's handler from the EventStream informer")
	}
}
