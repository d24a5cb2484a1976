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
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

// TokenStore keeps EventoDB namespace tokens (auth.Tokens).
type TokenStore interface {
	Create(ctx context.Context, namespace, token, description string, metadata json.RawMessage) (auth.Record, error)
	Get(ctx context.Context, namespace string) (auth.Record, error)
	Delete(ctx context.Context, namespace string) error
	List(ctx context.Context) ([]auth.Record, error)
}

// CreatedByLabel marks a Kubernetes namespace that ns.create made: only
// those are deleted by ns.delete. A namespace that existed before (say,
// "default") keeps existing; ns.delete deletes its streams and its token.
const CreatedByLabel = "eventodb.jobstate.dev/created-by"

// namespaceArg reads argument 1 of an ns.* call: an EventoDB namespace id,
// which is a Kubernetes namespace name.
func namespaceArg(a args) (string, *Error) {
	id, e := a.name(0, "namespaceId", false)
	if e != nil {
		return "", e
	}
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return "", invalid("%s: namespace id %q is not a Kubernetes namespace name: %s", a.method, id, strings.Join(errs, "; "))
	}
	return id, nil
}

// nsCreate is ["ns.create", id, {description?, token?, metadata?}?]: it
// makes the Kubernetes namespace if there is none and the namespace's
// token, and answers {namespace, token, createdAt}. The token is shown
// only here; the cluster keeps its hash.
func (s *Server) nsCreate(ctx context.Context, id string, a args) (any, error) {
	if e := a.atMost(2); e != nil {
		return nil, e
	}
	opts, e := a.object(1, "options")
	if e != nil {
		return nil, e
	}
	desc, _, e := opts.string("description")
	if e != nil {
		return nil, e
	}
	token, _, e := opts.string("token")
	if e != nil {
		return nil, e
	}
	meta, _, e := opts.rawObject("metadata")
	if e != nil {
		return nil, e
	}
	if err := s.ensureNamespace(ctx, id); err != nil {
		return nil, err
	}
	rec, err := s.opts.Tokens.Create(ctx, id, token, desc, meta)
	if errors.Is(err, auth.ErrTokenExists) {
		return nil, &Error{Code: CodeNamespaceExists, Message: fmt.Sprintf("namespace %q exists", id), Status: http.StatusConflict}
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"namespace": id, "token": rec.Token, "createdAt": timestamp(rec.CreatedAt)}, nil
}

// ensureNamespace creates the Kubernetes namespace id if it does not exist.
func (s *Server) ensureNamespace(ctx context.Context, id string) error {
	ns := &corev1.Namespace{}
	err := s.opts.Client.Get(ctx, client.ObjectKey{Name: id}, ns)
	if apierrors.IsNotFound(err) {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: id, Labels: map[string]string{CreatedByLabel: "jobstate-gateway"}}}
		if err = s.opts.Client.Create(ctx, ns); !apierrors.IsAlreadyExists(err) {
			return err
		}
		// Made a moment ago by a concurrent ns.create: read it.
		err = s.opts.Client.Get(ctx, client.ObjectKey{Name: id}, ns)
	}
	if err == nil && ns.DeletionTimestamp != nil {
		return &Error{Code: CodeNamespaceExists, Message: fmt.Sprintf("namespace %q is being deleted; create it again once it is gone", id), Status: http.StatusConflict}
	}
	return err
}

// nsDelete is ["ns.delete", id]: it revokes the namespace's token and
// deletes its streams (and the Kubernetes namespace, if ns.create made
// it), and answers {namespace, deletedAt, messagesDeleted}.
func (s *Server) nsDelete(ctx context.Context, id string, a args) (any, error) {
	if e := a.atMost(1); e != nil {
		return nil, e
	}
	if _, err := s.tokenRecord(ctx, id); err != nil {
		return nil, err
	}
	stats, err := s.namespaceStats(ctx, id)
	if err != nil {
		return nil, err
	}
	// Revoke first: no write lands between counting and deleting.
	if err := s.opts.Tokens.Delete(ctx, id); err != nil {
		return nil, err
	}
	if err := s.opts.Client.DeleteAllOf(ctx, &jobstatev1alpha1.EventStream{}, client.InNamespace(id)); err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{}
	if err := s.opts.Client.Get(ctx, client.ObjectKey{Name: id}, ns); err == nil && ns.Labels[CreatedByLabel] != "" {
		if err := s.opts.Client.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
			return nil, err
		}
	}
	return map[string]any{"namespace": id, "deletedAt": timestamp(time.Now()), "messagesDeleted": stats.messages}, nil
}

// tokenRecord is the namespace's token record; NAMESPACE_NOT_FOUND if it
// has none.
func (s *Server) tokenRecord(ctx context.Context, id string) (auth.Record, error) {
	rec, err := s.opts.Tokens.Get(ctx, id)
	if errors.Is(err, auth.ErrNoToken) {
		return rec, &Error{Code: CodeNamespaceNotFound, Message: fmt.Sprintf("namespace %q not found (ns.create makes one)", id), Status: http.StatusNotFound}
	}
	return rec, err
}

// nsStats are a namespace's counts, from one List of its streams.
type nsStats struct {
	messages, streams int64
	lastActivity      time.Time
	perStream         []streamStats
}

type streamStats struct {
	name         string
	version      int64
	lastActivity time.Time
}

// namespaceStats lists the namespace's streams. A stream's last activity
// is its newest event's time, by the writer's clock.
func (s *Server) namespaceStats(ctx context.Context, id string) (nsStats, error) {
	list := &jobstatev1alpha1.EventStreamList{}
	if err := s.opts.Client.List(ctx, list, client.InNamespace(id)); err != nil {
		return nsStats{}, err
	}
	var st nsStats
	for i := range list.Items {
		h := list.Items[i].Head
		if h == nil || h.Version < 0 {
			continue
		}
		ss := streamStats{name: streamName(&list.Items[i]), version: h.Version}
		if n := len(h.Events.Items); n > 0 {
			ss.lastActivity = h.Events.Items[n-1].Time.Time
		}
		st.messages += h.Version + 1
		st.streams++
		if ss.lastActivity.After(st.lastActivity) {
			st.lastActivity = ss.lastActivity
		}
		st.perStream = append(st.perStream, ss)
	}
	slices.SortFunc(st.perStream, func(a, b streamStats) int { return strings.Compare(a.name, b.name) })
	return st, nil
}

// nsList is ["ns.list"]: every EventoDB namespace.
func (s *Server) nsList(ctx context.Context, _ string, a args) (any, error) {
	if e := a.atMost(0); e != nil {
		return nil, e
	}
	recs, err := s.opts.Tokens.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(recs))
	for _, rec := range recs {
		st, err := s.namespaceStats(ctx, rec.Namespace)
		if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"namespace": rec.Namespace, "description": rec.Description, "createdAt": timestamp(rec.CreatedAt), "messageCount": st.messages})
	}
	return out, nil
}

// nsInfo is ["ns.info", id].
func (s *Server) nsInfo(ctx context.Context, id string, a args) (any, error) {
	if e := a.atMost(1); e != nil {
		return nil, e
	}
	rec, err := s.tokenRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	st, err := s.namespaceStats(ctx, id)
	if err != nil {
		return nil, err
	}
	var last any
	if !st.lastActivity.IsZero() {
		last = timestamp(st.lastActivity)
	}
	return map[string]any{
		"namespace": id, "description": rec.Description, "createdAt": timestamp(rec.CreatedAt),
		"messageCount": st.messages, "streamCount": st.streams, "lastActivity": last,
	}, nil
}

// nsStreams is ["ns.streams", {prefix?, limit?, cursor?}?]: the
// namespace's streams by name, after cursor (exclusive), as [{stream,
// version, lastActivity}].
func (s *Server) nsStreams(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(1); e != nil {
		return nil, e
	}
	opts, e := a.object(0, "options")
	if e != nil {
		return nil, e
	}
	prefix, _, e := opts.string("prefix")
	if e != nil {
		return nil, e
	}
	cursor, _, e := opts.string("cursor")
	if e != nil {
		return nil, e
	}
	limit, ok, e := opts.int("limit")
	if e != nil {
		return nil, e
	}
	if !ok {
		limit = 100
	} else if limit < 1 || limit > 1000 {
		return nil, invalid("ns.streams: options.limit must be 1 to 1000, got %d", limit)
	}
	st, err := s.namespaceStats(ctx, namespace)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, ss := range st.perStream {
		if !strings.HasPrefix(ss.name, prefix) || cursor != "" && ss.name <= cursor {
			continue
		}
		if int64(len(out)) == limit {
			break
		}
		out = append(out, map[string]any{"stream": ss.name, "version": ss.version, "lastActivity": ss.lastActivity.UTC().Format(time.RFC3339)})
	}
	return out, nil
}

// nsCategories is ["ns.categories"]: [{category, streamCount,
// messageCount}] by category.
func (s *Server) nsCategories(ctx context.Context, namespace string, a args) (any, error) {
	if e := a.atMost(0); e != nil {
		return nil, e
	}
	st, err := s.namespaceStats(ctx, namespace)
	if err != nil {
		return nil, err
	}
	type counts struct{ streams, messages int64 }
	byCat := map[string]*counts{}
	var names []string
	for _, ss := range st.perStream {
		c := category(ss.name)
		if byCat[c] == nil {
			byCat[c] = &counts{}
			names = append(names, c)
		}
		byCat[c].streams++
		byCat[c].messages += ss.version + 1
	}
	slices.Sort(names)
	out := make([]map[string]any, len(names))
	for i, c := range names {
		out[i] = map[string]any{"category": c, "streamCount": byCat[c].streams, "messageCount": byCat[c].messages}
	}
	return out, nil
}
