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

package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// stateMetrics is a manager runnable that reports the state metrics
// (metrics.State: JobStates by phase, the longest Running, overdue
// heartbeats, projection lag) while its manager is the elected leader.
//
// Why computed at scrape time from the informer cache, rather than counts
// kept up to date by Reconcile: the cache is the manager's view of every
// JobState already, so a scrape is one pass over it (without deep copies)
// and nothing on the reconcile path; and counts derived from the objects
// cannot drift, as counts kept by reconciles would on a missed delete, a
// restart or a change of leader.
type stateMetrics struct {
	reader client.Reader // the manager's cache
	clock  clock.PassiveClock
}

// NeedLeaderElection makes only the leader report: a standby replica's
// cache holds the same JobStates, and summing both would double them.
func (s *stateMetrics) NeedLeaderElection() bool { return true }

// Start reports the state metrics until ctx ends.
func (s *stateMetrics) Start(ctx context.Context) error {
	stop := metrics.ReportState(s.state)
	defer stop()
	<-ctx.Done()
	return nil
}

// phases are the phases jobstate_jobstates always reports, zeros included.
var phases = []jobstatev1alpha1.JobPhase{
	jobstatev1alpha1.PhasePending, jobstatev1alpha1.PhaseRunning,
	jobstatev1alpha1.PhaseSucceeded, jobstatev1alpha1.PhaseFailed, jobstatev1alpha1.PhaseCancelled,
}

// state computes the State from the cache. The objects are the cache's own
// (UnsafeDisableDeepCopy): read, never changed.
func (s *stateMetrics) state(ctx context.Context) (metrics.State, error) {
	var jobs jobstatev1alpha1.JobStateList
	if err := s.reader.List(ctx, &jobs, client.UnsafeDisableDeepCopy); err != nil {
		return metrics.State{}, fmt.Errorf("listing JobStates: %w", err)
	}
	st := metrics.State{Phases: make(map[string]int, len(phases))}
	for _, p := range phases {
		st.Phases[string(p)] = 0
	}
	now := s.clock.Now()
	for i := range jobs.Items {
		js := &jobs.Items[i]
		countJob(&st, js, now)
		if js.Spec.EventStreamRef == nil {
			continue
		}
		lag, err := s.projectionLag(ctx, js)
		if err != nil {
			return metrics.State{}, err
		}
		st.ProjectionLag += lag
	}
	return st, nil
}

// projectionLag is how many events of its stream js has not projected.
func (s *stateMetrics) projectionLag(ctx context.Context, js *jobstatev1alpha1.JobState) (int64, error) {
	es := &jobstatev1alpha1.EventStream{}
	err := s.reader.Get(ctx, streamKey(js), es, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", streamKey(js), err)
	}
	version := stream.NoStream
	if es.Head != nil {
		version = es.Head.Version
	}
	return max(0, version-jobstate.ProjectedPosition(js)), nil
}

// countJob adds js, as seen at now, to st's phases, longest Running
// attempt and overdue heartbeats.
func countJob(st *metrics.State, js *jobstatev1alpha1.JobState, now time.Time) {
	phase := js.Status.Phase
	if phase == "" {
		return
	}
	st.Phases[string(phase)]++
	if phase != jobstatev1alpha1.PhaseRunning {
		return
	}
	if since, ok := runningSince(js); ok {
		st.LongestRunning = max(st.LongestRunning, now.Sub(since))
	}
	if expiry, ok := lifecycle.HeartbeatExpiry(js); ok && !now.Before(expiry) {
		st.HeartbeatOverdue++
	}
}

// runningSince is when js's current attempt was claimed: the Running
// condition's transition to True (a claim sets it; nothing else does
// while Running), else its last heartbeat.
func runningSince(js *jobstatev1alpha1.JobState) (time.Time, bool) {
	if c := meta.FindStatusCondition(js.Status.Conditions, jobstatev1alpha1.ConditionRunning); c != nil && c.Status == metav1.ConditionTrue {
		return c.LastTransitionTime.Time, true
	}
	if hb := js.Status.LastHeartbeatTime; hb != nil {
		return hb.Time, true
	}
	return time.Time{}, false
}
