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
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/faultproxy"
	"github.com/jobstate-dev/jobstate/pkg/stream"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// proxied returns a client that reaches the API server through a fault
// proxy, as the sealer identity, and the proxy. The proxy is closed when
// the test ends.
func proxied(t *testing.T) (client.WithWatch, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("fault proxy: %v", err)
		}
	})
	cfg, err := faultproxy.RESTConfig(env.Config, p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// createJob creates an (Optimistic) JobState named key.
func createJob(t *testing.T, key client.ObjectKey, mutate ...func(*jobstatev1alpha1.JobState)) *jobstatev1alpha1.JobState {
	t.Helper()
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	for _, m := range mutate {
		m(js)
	}
	if err := env.Client.Create(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return js
}

// getJob reads the JobState key live.
func getJob(t *testing.T, key client.ObjectKey) *jobstatev1alpha1.JobState {
	t.Helper()
	js := &jobstatev1alpha1.JobState{}
	if err := env.Client.Get(t.Context(), key, js); err != nil {
		t.Fatal(err)
	}
	return js
}

// TestLostUpdateResponse: an Update whose write the API server committed
// but whose response was lost reports an *update.UnknownOutcomeError and
// is applied exactly once — the library does not apply it again on its
// own — and the Updater carries on. Several Updates group-committed into
// the lost write all learn it, and each is applied once. A caller that
// takes the lost response for a failure and retries applies the action
// twice, which the same check reports: it can fail.
func TestLostUpdateResponse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	c, p := proxied(t)
	ns := env.Namespace(t)
	u, err := update.New[*jobstatev1alpha1.JobState](c, update.Options{Status: true})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("one Update", func(t *testing.T) {
		key := client.ObjectKey{Namespace: ns, Name: "lost-update"}
		createJob(t, key)
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}}
		var o outcomes
		// Carried from here on: the next Update's first request is its write.
		o.record("first", u.Update(ctx, js, apply("first")))
		lost := p.Lost()
		p.LoseResponses(1)
		err := u.Update(ctx, js, apply("lost"))
		o.record("lost", err)
		if n := p.Lost() - lost; n != 1 {
			t.Fatalf("the proxy lost %d responses, want 1", n)
		}
		var unknown *update.UnknownOutcomeError
		if !errors.Is(err, update.ErrOutcomeUnknown) || !errors.As(err, &unknown) || unknown.Key != key {
			t.Errorf("Update whose response was lost: %v (%T), want an *update.UnknownOutcomeError for %s", err, err, key)
		}
		o.record("after", u.Update(ctx, js, apply("after")))
		applied, err := o.check(getJob(t, key))
		if err != nil {
			t.Error(err)
		}
		if len(o.acked) != 2 || applied != 1 {
			t.Errorf("acknowledged %v, unknown %v (%d applied), failed %v; want first and after acknowledged, lost applied once", o.acked, o.unknown, applied, o.failed)
		}
	})

	t.Run("group commit", func(t *testing.T) {
		key := client.ObjectKey{Namespace: ns, Name: "lost-batch"}
		createJob(t, key)
		var o outcomes
		first := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}}
		o.record("first", u.Update(ctx, first, apply("first")))
		lost := p.Lost()
		p.LoseResponses(1)
		const writers = 8
		var wg sync.WaitGroup
		for i := range writers {
			js := first.DeepCopy() // carried: the first write goes out at once
			id := fmt.Sprintf("w%d", i)
			wg.Go(func() { o.record(id, u.Update(ctx, js, apply(id))) })
		}
		wg.Wait()
		if n := p.Lost() - lost; n != 1 {
			t.Fatalf("the proxy lost %d responses, want 1", n)
		}
		applied, err := o.check(getJob(t, key))
		if err != nil {
			t.Error(err)
		}
		// The lost write was committed: every Update of unknown outcome was
		// applied, once, and nothing failed.
		if len(o.unknown) == 0 || applied != len(o.unknown) || len(o.failed) != 0 || len(o.acked)+len(o.unknown) != writers+1 {
			t.Errorf("acknowledged %v, unknown %v (%d applied), failed %v; want %d Updates, the lost write's of unknown outcome and applied", o.acked, o.unknown, applied, o.failed, writers+1)
		}
	})

	t.Run("broken: a retry after the lost response", func(t *testing.T) {
		key := client.ObjectKey{Namespace: ns, Name: "retried"}
		createJob(t, key)
		js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}}
		var o outcomes
		o.record("first", u.Update(ctx, js, apply("first")))
		p.LoseResponses(1)
		var err error
		for range 3 { // what the library must not do for its caller
			if err = u.Update(ctx, js, apply("retried")); err == nil {
				break
			}
		}
		o.record("retried", err)
		if _, err := o.check(getJob(t, key)); err == nil {
			t.Error("the check passed after a retry applied the action twice")
		} else {
			t.Logf("as expected, the check catches it: %v", err)
		}
	})
}

// eventID is the UUID of the test's event n of series series (event ids
// must be UUIDs): 0000000s-0000-4000-8000-00000000000n, in hexadecimal.
func eventID(series, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", series, n) }

// event is a test event with id.
func event(id string) stream.EventData { return stream.EventData{ID: id, Type: "Tested"} }

// TestLostAppendResponse: an Append whose write the API server committed
// but whose response was lost resolves it within the caller's deadline by
// sending the same event ids again: it succeeds with the original
// positions, and the events are stored once. A retry by the caller with
// the same ids is a duplicate and stores nothing. A retry with new ids
// (no idempotency) stores the events twice, which the same check reports.
func TestLostAppendResponse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	c, p := proxied(t)
	ns := env.Namespace(t)
	streams, err := stream.New(c, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("same ids", func(t *testing.T) {
		key := client.ObjectKey{Namespace: ns, Name: "lost-append"}
		// Carried from here on: the next Append's first request is its write.
		if _, err := streams.Append(ctx, key, []stream.EventData{event(eventID(1, 0))}, stream.ExpectVersion(stream.NoStream)); err != nil {
			t.Fatal(err)
		}
		lost := p.Lost()
		p.LoseResponses(1)
		res, err := streams.Append(ctx, key, []stream.EventData{event(eventID(1, 1)), event(eventID(1, 2))}, stream.ExpectVersion(0))
		if n := p.Lost() - lost; n != 1 {
			t.Fatalf("the proxy lost %d responses, want 1", n)
		}
		if err != nil || res.Version != 2 || !slices.Equal(res.Positions, []int64{1, 2}) {
			t.Errorf("Append whose response was lost: %+v, %v; want success at positions 1, 2 (version 2)", res, err)
		}
		res, err = streams.Append(ctx, key, []stream.EventData{event(eventID(1, 1)), event(eventID(1, 2))}, stream.AppendOptions{})
		if err != nil || !res.Duplicate || res.Version != 2 || !slices.Equal(res.Positions, []int64{1, 2}) {
			t.Errorf("the caller's retry with the same ids: %+v, %v; want a duplicate at positions 1, 2", res, err)
		}
		s, err := readStored(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.check(0, []string{eventID(1, 0), eventID(1, 1), eventID(1, 2)}); err != nil {
			t.Error(err)
		}
	})

	t.Run("lost again while resolving", func(t *testing.T) {
		key := client.ObjectKey{Namespace: ns, Name: "lost-thrice"}
		if _, err := streams.Append(ctx, key, []stream.EventData{event(eventID(4, 0))}, stream.ExpectVersion(stream.NoStream)); err != nil {
			t.Fatal(err)
		}
		// The write's response, and those of the next two requests that
		// resolve it.
		lost := p.Lost()
		p.LoseResponses(3)
		start := time.Now()
		res, err := streams.Append(ctx, key, []stream.EventData{event(eventID(4, 1))}, stream.ExpectVersion(0))
		t.Logf("resolved in %s", time.Since(start).Round(time.Millisecond))
		if n := p.Lost() - lost; n != 3 {
			t.Fatalf("the proxy lost %d responses, want 3", n)
		}
		if err != nil || res.Version != 1 || !slices.Equal(res.Positions, []int64{1}) {
			t.Errorf("Append whose responses were lost three times: %+v, %v; want success at position 1", res, err)
		}
		s, err := readStored(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.check(0, []string{eventID(4, 0), eventID(4, 1)}); err != nil {
			t.Error(err)
		}
	})

	t.Run("broken: a retry with new ids", func(t *testing.T) {
		key := client.ObjectKey{Namespace: ns, Name: "new-ids"}
		if _, err := streams.Append(ctx, key, []stream.EventData{event(eventID(2, 0))}, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		// What a client without event ids does after an error: the same
		// events again, under new ids. (Written without the proxy: the
		// point is only that the check sees the duplicate.)
		plain, err := stream.New(env.Client, stream.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{eventID(2, 1), eventID(3, 1)} {
			if _, err := plain.Append(ctx, key, []stream.EventData{event(id)}, stream.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		s, err := readStored(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.check(0, []string{eventID(2, 0), eventID(2, 1)}); err == nil {
			t.Error("the check passed on a stream holding an event twice")
		} else {
			t.Logf("as expected, the check catches it: %v", err)
		}
	})
}
