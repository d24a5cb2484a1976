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

// Command worker is a demo worker built on pkg/jobstate: it claims Pending
// JobStates in a namespace, works on each for a few seconds while
// heartbeating progress and a cursor in status.data, and finishes it.
//
// A JobState annotated jobstate.dev/demo-fail-attempts: "N" has its first N
// attempts fail halfway, so the retry path (back to Pending, backoff, next
// attempt) can be watched with `kubectl get js -w`.
//
// An event-sourced JobState (spec.eventStreamRef) is worked on by appending
// Claimed, Heartbeat and Succeeded events to its stream (pkg/stream); the
// controller projects them into its status.
//
//	go run ./examples/worker --namespace default --identity worker-1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// FailAttemptsAnnotation makes the demo worker fail a job's first N attempts.
const FailAttemptsAnnotation = "jobstate.dev/demo-fail-attempts"

func main() {
	hostname, _ := os.Hostname()
	namespace := flag.String("namespace", "default", "Namespace whose JobStates to work on.")
	identity := flag.String("identity", hostname, "Worker identity written to status.holder.")
	steps := flag.Int("steps", 10, "Heartbeats per job; progress moves 100/steps per heartbeat.")
	interval := flag.Duration("interval", time.Second, "Time between heartbeats.")
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("worker")
	if *steps < 1 || *steps > 100 || *interval <= 0 {
		fmt.Fprintln(os.Stderr, "worker: --steps must be in 1..100 and --interval positive")
		os.Exit(2)
	}

	scheme := clientgoscheme.Scheme
	utilruntime.Must(jobstatev1alpha1.AddToScheme(scheme))
	cfg := ctrl.GetConfigOrDie()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		log.Error(err, "Unable to create client")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Events for Claimed, Succeeded, WorkerFailed show in `kubectl describe js`.
	broadcaster := events.NewEventBroadcasterAdapter(kubernetes.NewForConfigOrDie(cfg))
	broadcaster.StartRecordingToSink(ctx.Done())
	defer broadcaster.Shutdown()
	jobs, err := jobstate.New(c, jobstate.Options{Identity: *identity, Recorder: broadcaster.NewRecorder("jobstate-demo-worker")})
	if err != nil {
		log.Error(err, "Unable to create JobState client")
		os.Exit(1)
	}
	streams, err := stream.New(c, stream.Options{})
	if err != nil {
		log.Error(err, "Unable to create EventStream client")
		os.Exit(1)
	}
	w := &worker{c: c, jobs: jobs, streams: streams, identity: *identity, namespace: *namespace, steps: *steps, interval: *interval, running: map[string]bool{}}

	log.Info("Worker started", "identity", *identity, "namespace", *namespace)
	wait.UntilWithContext(ctx, w.claimPending, 500*time.Millisecond)
	w.wg.Wait()
}

type worker struct {
	c         client.Client
	jobs      *jobstate.Client
	streams   *stream.Client
	identity  string
	namespace string
	steps     int
	interval  time.Duration

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
}

// claimPending claims every Pending job whose backoff has passed and works
// on each in its own goroutine.
func (w *worker) claimPending(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("worker")
	var list jobstatev1alpha1.JobStateList
	if err := w.c.List(ctx, &list, client.InNamespace(w.namespace)); err != nil {
		log.Error(err, "Listing JobStates")
		return
	}
	for i := range list.Items {
		js := &list.Items[i]
		if js.Status.Phase != jobstatev1alpha1.PhasePending || w.isRunning(js.Name) {
			continue
		}
		if js.Spec.EventStreamRef != nil {
			w.claimEventSourced(ctx, js)
			continue
		}
		attempt, err := w.jobs.Claim(ctx, client.ObjectKeyFromObject(js))
		switch {
		case errors.Is(err, lifecycle.ErrBackingOff), errors.Is(err, lifecycle.ErrIllegalTransition):
			continue // not claimable yet, or another worker was faster
		case err != nil:
			log.Error(err, "Claiming", "jobstate", klog.KObj(js))
			continue
		}
		log.Info("Claimed", "jobstate", klog.KObj(js), "attempt", attempt.Attempt)
		w.setRunning(js.Name, true)
		failAt := 0
		if n, _ := strconv.Atoi(js.Annotations[FailAttemptsAnnotation]); int(attempt.Attempt) <= n {
			failAt = w.steps / 2
		}
		w.wg.Go(func() {
			defer w.setRunning(js.Name, false)
			w.work(ctx, attempt, failAt)
		})
	}
}

// work heartbeats the attempt's progress to 100% and succeeds, or fails it
// at step failAt (if non-zero). It stops as soon as the attempt is fenced.
func (w *worker) work(ctx context.Context, a jobstate.Attempt, failAt int) {
	log := ctrl.LoggerFrom(ctx).WithName("worker").WithValues("jobstate", a.Key, "attempt", a.Attempt)
	for step := 1; step <= w.steps; step++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.interval):
		}
		if step == failAt {
			if err := w.jobs.Fail(ctx, a, fmt.Sprintf("demo failure at step %d of %d", step, w.steps)); err != nil {
				log.Error(err, "Failing")
			}
			log.Info("Failed the attempt on purpose", "annotation", FailAttemptsAnnotation)
			return
		}
		progress := int32(100 * step / w.steps)
		err := w.jobs.Heartbeat(ctx, a, progress, map[string]any{"cursor": fmt.Sprintf("batch-%03d", step)})
		if errors.Is(err, lifecycle.ErrFenced) {
			log.Info("Attempt is no longer ours; stopping", "reason", err.Error())
			return
		}
		if err != nil {
			log.Error(err, "Heartbeat")
		}
	}
	if err := w.jobs.Succeed(ctx, a, fmt.Sprintf("processed %d batches", w.steps)); err != nil {
		log.Error(err, "Succeeding")
		return
	}
	log.Info("Succeeded")
}

// claimEventSourced claims a job whose status is projected from a stream:
// it appends Claimed expecting the stream to be at the position the status
// was projected from, so that of two workers deciding on the same state
// only one claim is stored (the other gets STREAM_VERSION_CONFLICT). Then it
// appends Heartbeat events and Succeeded.
func (w *worker) claimEventSourced(ctx context.Context, js *jobstatev1alpha1.JobState) {
	log := ctrl.LoggerFrom(ctx).WithName("worker").WithValues("jobstate", klog.KObj(js))
	if js.Status.RetryAfter != nil && time.Now().Before(js.Status.RetryAfter.Time) {
		return
	}
	key := client.ObjectKey{Namespace: js.Namespace, Name: js.Spec.EventStreamRef.Name}
	attempt := js.Status.Attempt + 1
	claim := jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: w.identity})
	_, err := w.streams.Append(ctx, key, []stream.EventData{claim}, stream.ExpectVersion(jobstate.ProjectedPosition(js)))
	if errors.Is(err, stream.ErrVersionConflict) {
		return // another event came first; decide again on the projected state
	}
	if err != nil {
		log.Error(err, "Appending Claimed", "stream", key.Name)
		return
	}
	log.Info("Claimed by appending an event", "stream", key.Name, "attempt", attempt)
	w.setRunning(js.Name, true)
	w.wg.Go(func() {
		defer w.setRunning(js.Name, false)
		for step := 1; step <= w.steps; step++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.interval):
			}
			if w.lostEventSourced(ctx, client.ObjectKeyFromObject(js), attempt) {
				log.Info("Attempt is no longer ours; stopping", "attempt", attempt)
				return
			}
			hb := jobstate.NewEvent(jobstate.EventHeartbeat, jobstate.EventPayload{Holder: w.identity, Attempt: attempt, Progress: int32(100 * step / w.steps)})
			if _, err := w.streams.Append(ctx, key, []stream.EventData{hb}, stream.AppendOptions{}); err != nil {
				log.Error(err, "Appending Heartbeat")
			}
		}
		done := jobstate.NewEvent(jobstate.EventSucceeded, jobstate.EventPayload{Holder: w.identity, Attempt: attempt, Message: fmt.Sprintf("processed %d batches", w.steps)})
		if _, err := w.streams.Append(ctx, key, []stream.EventData{done}, stream.AppendOptions{}); err != nil {
			log.Error(err, "Appending Succeeded")
			return
		}
		log.Info("Succeeded by appending an event", "stream", key.Name)
	})
}

// lostEventSourced reports whether the projected status shows that attempt
// ended or was superseded (a Lost appended after a pause, a cancel). The
// projection lags the stream, so a status still Pending is not a loss.
func (w *worker) lostEventSourced(ctx context.Context, key client.ObjectKey, attempt int32) bool {
	js := &jobstatev1alpha1.JobState{}
	if err := w.c.Get(ctx, key, js); err != nil {
		return false
	}
	s := js.Status
	return s.Attempt > attempt || (s.Attempt == attempt && s.Phase != jobstatev1alpha1.PhaseRunning)
}

func (w *worker) isRunning(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running[name]
}

func (w *worker) setRunning(name string, running bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running[name] = running
}
