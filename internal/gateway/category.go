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
	"cmp"
	"context"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// group is a consumer group member: streams whose cardinal id hashes to
// member (see consumerMember).
type group struct {
	member, size int64
}

// categoryGet is ["category.get", category, {position?, globalPosition?,
// batchSize?, correlation?, consumerGroup: {member, size}?}?]: the messages
// of every stream of the category ("" is every stream of the namespace)
// from a global position on, in global order, as [id, streamName, type,
// position, globalPosition, data, metadata, time].
//
// One List reads every stream's head, consistently (a quorum read, so a
// client reads its own writes); sealed events come from segments, which
// pkg/stream caches, and only for streams with events at or after the
// position.
func (s *Server) categoryGet(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(2); e != nil {
		return nil, e
	}
	cat, e := a.name(0, "categoryName", true)
	if e != nil {
		return nil, e
	}
	q, opts, e := readQuery(a, 1, true)
	if e != nil {
		return nil, e
	}
	g, e := consumerGroup(opts)
	if e != nil {
		return nil, e
	}
	if corr, ok, e := opts.string("correlation"); e != nil {
		return nil, e
	} else if ok {
		q.keep = func(ev *event) bool { return correlated(ev, corr) }
	}
	list := &jobstatev1alpha1.EventStreamList{}
	if err := s.opts.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	var events []event
	for i := range list.Items {
		es := &list.Items[i]
		name := streamName(es)
		if es.Head == nil || es.Head.Version < 0 || cat != "" && category(name) != cat || g != nil && consumerMember(name, g.size) != g.member {
			continue
		}
		got, err := s.read(ctx, es, q)
		if err != nil {
			return nil, err
		}
		events = append(events, got...)
	}
	slices.SortFunc(events, func(x, y event) int { return cmp.Compare(x.global, y.global) })
	if q.limit >= 0 && len(events) > q.limit {
		events = events[:q.limit]
	}
	rows := make([]any, len(events))
	for i := range events {
		rows[i] = events[i].categoryRow()
	}
	return rows, nil
}

// consumerGroup reads options.consumerGroup: nil if absent.
func consumerGroup(opts object) (*group, *Error) {
	o, ok, e := opts.object("consumerGroup")
	if e != nil || !ok {
		return nil, e
	}
	member, hasMember, e := o.int("member")
	if e != nil {
		return nil, e
	}
	size, hasSize, e := o.int("size")
	if e != nil {
		return nil, e
	}
	switch {
	case !hasMember || !hasSize:
		return nil, invalid("%s needs both member and size", o.path)
	case size < 1:
		return nil, invalid("%s.size must be >= 1, got %d", o.path, size)
	case member < 0 || member >= size:
		return nil, invalid("%s.member must be 0 to size-1 (%d), got %d", o.path, size-1, member)
	}
	return &group{member: member, size: size}, nil
}
