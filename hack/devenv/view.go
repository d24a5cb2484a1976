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
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/plugin"
)

// recentTransitions is how many transition lines the live table keeps
// under it.
const recentTransitions = 6

// jobView shows the JobStates and EventStreams as the manager's informers
// see them (a watch, no polling): on a terminal a live table, redrawn at
// every change and every second (ages move), with the last transitions
// under it; otherwise one line per transition — a job's phase or attempt
// changing, or the job going away.
type jobView struct {
	scr     *screen
	changed chan struct{}

	mu      sync.Mutex
	jobs    map[types.NamespacedName]*jobstatev1alpha1.JobState
	streams map[types.NamespacedName]*jobstatev1alpha1.EventStream
	// shown is each job's phase and attempt at its last transition line.
	shown map[types.NamespacedName]step
	// showing: show was called; until then transition lines wait in
	// pending, so they do not mix with what make run prints as it starts.
	showing bool
	pending []string
	recent  []string
}

// step is what a transition changes.
type step struct {
	phase   jobstatev1alpha1.JobPhase
	attempt int32
}

func newJobView(scr *screen) *jobView {
	return &jobView{
		scr:     scr,
		changed: make(chan struct{}, 1),
		jobs:    map[types.NamespacedName]*jobstatev1alpha1.JobState{},
		streams: map[types.NamespacedName]*jobstatev1alpha1.EventStream{},
		shown:   map[types.NamespacedName]step{},
	}
}

// watch is the manager runnable that feeds the view from the manager's
// informers (those its controllers watch with) and, on a terminal,
// redraws it until ctx is done.
func (v *jobView) watch(c cache.Cache) manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		handlers := map[client.Object]func(obj any, deleted bool){
			&jobstatev1alpha1.JobState{}:    v.onJob,
			&jobstatev1alpha1.EventStream{}: v.onStream,
		}
		for obj, on := range handlers {
			informer, err := c.GetInformer(ctx, obj)
			if err != nil {
				return fmt.Errorf("watching %T: %w", obj, err)
			}
			if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				AddFunc:    func(obj any) { on(obj, false) },
				UpdateFunc: func(_, obj any) { on(obj, false) },
				DeleteFunc: func(obj any) { on(obj, true) },
			}); err != nil {
				return fmt.Errorf("watching %T: %w", obj, err)
			}
		}
		v.redraw(ctx)
		return nil
	})
}

// object is obj as a T, also when it is the last state of a deleted
// object the informer missed the deletion of.
func object[T client.Object](obj any) (T, bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	t, ok := obj.(T)
	return t, ok
}

func (v *jobView) onJob(obj any, deleted bool) {
	js, ok := object[*jobstatev1alpha1.JobState](obj)
	if !ok {
		return
	}
	key, now := client.ObjectKeyFromObject(js), time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	defer v.notify()
	if deleted {
		delete(v.jobs, key)
		if _, ok := v.shown[key]; ok {
			delete(v.shown, key)
			v.transition(fmt.Sprintf("%s  %-28s deleted", now.Format(time.TimeOnly), key))
		}
		return
	}
	v.jobs[key] = js
	// A job the controller has not given a phase yet has nothing to show.
	if s := (step{js.Status.Phase, js.Status.Attempt}); s.phase != "" && s != v.shown[key] {
		v.shown[key] = s
		v.transition(transitionLine(js, now))
	}
}

func (v *jobView) onStream(obj any, deleted bool) {
	es, ok := object[*jobstatev1alpha1.EventStream](obj)
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if deleted {
		delete(v.streams, client.ObjectKeyFromObject(es))
	} else {
		v.streams[client.ObjectKeyFromObject(es)] = es
	}
	v.notify()
}

// transitionLine is "15:04:05  default/flaky-export  Running  attempt 1,
// held by demo-worker-1 (Claimed: ...)".
func transitionLine(js *jobstatev1alpha1.JobState, now time.Time) string {
	s := js.Status
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-28s %-10s attempt %d", now.Format(time.TimeOnly), js.Namespace+"/"+js.Name, s.Phase, s.Attempt)
	if s.Phase == jobstatev1alpha1.PhaseRunning && s.Holder != "" {
		fmt.Fprintf(&b, ", held by %s", s.Holder)
	}
	if s.Reason != "" {
		fmt.Fprintf(&b, " (%s", s.Reason)
		if s.Message != "" {
			fmt.Fprintf(&b, ": %s", s.Message)
		}
		b.WriteString(")")
	}
	return b.String()
}

// transition shows line: under the live table on a terminal, as a line of
// its own otherwise. v.mu is held.
func (v *jobView) transition(line string) {
	switch {
	case v.scr.tty:
		v.recent = append(v.recent, line)
		v.recent = v.recent[max(0, len(v.recent)-recentTransitions):]
	case v.showing:
		v.scr.linef("%s", line)
	default:
		v.pending = append(v.pending, line)
	}
}

// notify wakes redraw, without waiting.
func (v *jobView) notify() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// show starts showing: the transitions so far, then every one as it
// happens.
func (v *jobView) show() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.showing = true
	for _, line := range v.pending {
		v.scr.linef("%s", line)
	}
	v.pending = nil
	v.notify()
}

// finish removes the live table, before the final one is printed.
func (v *jobView) finish() { v.scr.setLive(nil) }

// redraw draws the live table at every change, at most 10 times a second,
// and every second, until ctx is done. Off a terminal it has nothing to do.
func (v *jobView) redraw(ctx context.Context) {
	if !v.scr.tty {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.changed:
		case <-tick.C:
		}
		if lines, ok := v.live(); ok {
			v.scr.setLive(lines)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// live is the live region: the tables, wide if the terminal is, and the
// last transitions. ok is false before show.
func (v *jobView) live() (lines []string, ok bool) {
	v.mu.Lock()
	if !v.showing {
		v.mu.Unlock()
		return nil, false
	}
	jobs := sorted(v.jobs)
	streams := sorted(v.streams)
	recent := slices.Clone(v.recent)
	v.mu.Unlock()

	now := time.Now()
	width, height := v.scr.size()
	when := fmt.Sprintf("at %s, Ctrl-C stops", now.Format(time.TimeOnly))
	text := tables(jobs, streams, now, true, when)
	if widest(text) >= width {
		text = tables(jobs, streams, now, false, when+"; a wider terminal shows more columns")
	}
	lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	// The latest transitions that fit under the tables.
	if room := height - 1 - len(lines) - 2; room > 0 && len(recent) > 0 {
		lines = append(append(lines, "", "Transitions:"), recent[max(0, len(recent)-room):]...)
	}
	return lines, true
}

// sorted is m's values in the order of their keys. They are shallow
// copies of the informer's objects: read them, never change them.
func sorted[T any](m map[types.NamespacedName]*T) []T {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out
}

func widest(text string) int {
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		n = max(n, len([]rune(line)))
	}
	return n
}

// tables is the JobStates and the EventStreams as `kubectl jobstate jobs
// get -A` and `streams get -A` print them (-o wide if wide), headed "...
// (when)".
func tables(jobs []jobstatev1alpha1.JobState, streams []jobstatev1alpha1.EventStream, now time.Time, wide bool, when string) string {
	opts := plugin.TableOptions{Wide: wide, WithNamespace: true}
	var b strings.Builder
	fmt.Fprintf(&b, "JobStates (%s):\n", when)
	if len(jobs) == 0 {
		b.WriteString("  none yet\n")
	}
	_ = plugin.PrintJobs(&b, jobs, now, opts)
	if len(streams) > 0 {
		b.WriteString("\nEventStreams:\n")
		_ = plugin.PrintStreams(&b, streams, now, opts)
	}
	return b.String()
}

// printFinal prints the tables as the API server has them, after
// everything but the control plane stopped.
func printFinal(scr *screen, c client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var jobs jobstatev1alpha1.JobStateList
	var streams jobstatev1alpha1.EventStreamList
	for _, list := range []client.ObjectList{&jobs, &streams} {
		if err := c.List(ctx, list); err != nil {
			scr.errorf("make run: listing %T at exit: %v", list, err)
			return
		}
	}
	scr.linef("%s", tables(jobs.Items, streams.Items, time.Now(), true, "at exit"))
}
