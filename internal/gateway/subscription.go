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
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// subscription is what GET /subscribe asks for.
type subscription struct {
	// stream is the EventoDB stream name of stream=S, key its object name;
	// "" for the others.
	stream, key string
	// category is C of category=C; group the consumer group member, if
	// consumer and size are given.
	category string
	group    *group
	// all is all=true: every stream of the namespace.
	all bool
	// position is where the pokes start: a stream position with stream=,
	// a global position otherwise.
	position int64
}

// matches reports whether q follows es, whose EventoDB name is name.
func (q subscription) matches(es *jobstatev1alpha1.EventStream, name string) bool {
	switch {
	case q.stream != "":
		return es.Name == q.key
	case q.all:
		return true
	}
	return category(name) == q.category && (q.group == nil || consumerMember(name, q.group.size) == q.group.member)
}

// String is q as its query parameters, for logs.
func (q subscription) String() string {
	v := url.Values{}
	switch {
	case q.stream != "":
		v.Set("stream", q.stream)
	case q.all:
		v.Set("all", "true")
	default:
		v.Set("category", q.category)
	}
	if q.group != nil {
		v.Set("consumer", strconv.FormatInt(q.group.member, 10))
		v.Set("size", strconv.FormatInt(q.group.size, 10))
	}
	v.Set("position", strconv.FormatInt(q.position, 10))
	return v.Encode()
}

// parseSubscription reads GET /subscribe's query. Every way it can be
// wrong is a 400 that says what is wrong.
func parseSubscription(v url.Values) (subscription, *Error) {
	var q subscription
	for name, values := range v {
		if len(values) > 1 {
			return q, invalid("/subscribe: %s is given %d times; give it once", name, len(values))
		}
	}
	for _, name := range []string{"consumerGroupMember", "consumerGroupSize"} {
		if v.Has(name) {
			return q, invalid("/subscribe: %s is not read; a consumer group member is consumer=M&size=N", name)
		}
	}
	if n := count(v.Has("stream"), v.Has("category"), v.Has("all")); n != 1 {
		return q, invalid("/subscribe takes exactly one of stream=<stream name>, category=<category> or all=true, got %d", n)
	}
	switch {
	case v.Has("stream"):
		q.stream = v.Get("stream")
		if q.stream == "" || len(q.stream) > maxStreamName || !utf8.ValidString(q.stream) {
			return q, invalid("/subscribe: stream must be a stream name: valid UTF-8 of 1 to %d bytes", maxStreamName)
		}
		q.key = objectName(q.stream)
	case v.Has("category"):
		q.category = v.Get("category")
		if q.category == "" || strings.Contains(q.category, "-") || !utf8.ValidString(q.category) {
			return q, invalid("/subscribe: category must be a category name: non-empty, without '-' (a stream's category is its name up to the first '-'), got %q", q.category)
		}
	case v.Get("all") != "true":
		return q, invalid(`/subscribe: all must be "true", got %q`, v.Get("all"))
	default:
		q.all = true
	}
	if v.Has("position") {
		p, err := strconv.ParseInt(v.Get("position"), 10, 64)
		if err != nil || p < 0 {
			return q, invalid("/subscribe: position must be an integer >= 0 (a stream position with stream=, a global position otherwise), got %q", v.Get("position"))
		}
		q.position = p
	}
	g, e := parseGroup(v, q.category != "")
	q.group = g
	return q, e
}

// parseGroup reads consumer=M&size=N, which only a category subscription
// takes; nil if neither is given.
func parseGroup(v url.Values, isCategory bool) (*group, *Error) {
	if !v.Has("consumer") && !v.Has("size") {
		return nil, nil
	}
	if !isCategory {
		return nil, invalid("/subscribe: consumer and size name a consumer group member of a category subscription; they need category=")
	}
	if !v.Has("consumer") || !v.Has("size") {
		return nil, invalid("/subscribe: consumer and size go together: consumer=M&size=N with 0 <= M < N")
	}
	size, err := strconv.ParseInt(v.Get("size"), 10, 64)
	if err != nil || size < 1 {
		return nil, invalid("/subscribe: size must be an integer >= 1, got %q", v.Get("size"))
	}
	member, err := strconv.ParseInt(v.Get("consumer"), 10, 64)
	if err != nil || member < 0 || member >= size {
		return nil, invalid("/subscribe: consumer must be an integer from 0 to size-1 (%d), got %q", size-1, v.Get("consumer"))
	}
	return &group{member: member, size: size}, nil
}

// count is how many of conditions hold.
func count(conditions ...bool) int {
	n := 0
	for _, c := range conditions {
		if c {
			n++
		}
	}
	return n
}
