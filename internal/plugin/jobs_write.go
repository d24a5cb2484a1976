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

package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

// defaultIdentity is the holder `jobs claim` writes without --identity.
const defaultIdentity = "kubectl"

// writeFlags are the flags of the commands that write a JobState.
type writeFlags struct {
	identity string
	attempt  int32
	message  string
	progress int32
	sets     []string

	data map[string]any // sets, parsed by validate
}

// addFence adds --identity and --attempt, which pin the attempt a write
// presents.
func (f *writeFlags) addFence(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.identity, "identity", "", "The holder to act as. Default: the job's current holder (status.holder).")
	cmd.Flags().Int32Var(&f.attempt, "attempt", 0, "The attempt to present. Default: the job's current attempt (status.attempt).")
}

func (f *writeFlags) addSet(cmd *cobra.Command, usage string) {
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, usage)
}

// validate checks the flags before anything is read or written.
func (f *writeFlags) validate(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if all, _ := flags.GetBool("all-namespaces"); all {
		return usageError("%s writes one JobState: -A cannot be used; use -n NAMESPACE", cmd.CommandPath())
	}
	if flags.Changed("identity") {
		if f.identity == "" {
			return usageError("--identity must not be empty: it is written to status.holder")
		}
		if n := len([]rune(f.identity)); n > jobstatev1alpha1.MaxHolderLength {
			return usageError("--identity is %d characters; status.holder holds at most %d", n, jobstatev1alpha1.MaxHolderLength)
		}
	}
	if flags.Changed("attempt") && f.attempt < 1 {
		return usageError("--attempt %d: attempts are numbered from 1 (see status.attempt)", f.attempt)
	}
	if flags.Changed("progress") && (f.progress < 0 || f.progress > jobstatev1alpha1.MaxProgress) {
		return usageError("--progress %d: progress is a percentage, 0 to %d", f.progress, jobstatev1alpha1.MaxProgress)
	}
	if n := len([]rune(f.message)); n > jobstatev1alpha1.MaxMessageLength {
		return usageError("--message is %d characters; status.message holds at most %d", n, jobstatev1alpha1.MaxMessageLength)
	}
	data, err := parseSets(f.sets)
	if err != nil {
		return err
	}
	f.data = data
	return nil
}

// parseSets parses --set data.KEY=VALUE flags: VALUE as JSON if it is
// JSON, else as a string.
func parseSets(sets []string) (map[string]any, error) {
	if len(sets) == 0 {
		return nil, nil
	}
	data := map[string]any{}
	for _, set := range sets {
		path, raw, ok := strings.Cut(set, "=")
		if !ok {
			return nil, usageError("--set %q has no '=': write --set data.KEY=VALUE", set)
		}
		key, ok := strings.CutPrefix(path, "data.")
		if !ok {
			return nil, usageError("--set %q: only status.data can be set; write --set data.KEY=VALUE", set)
		}
		if key == "" || strings.Contains(key, ".") {
			return nil, usageError("--set %q: KEY must be one top-level key of status.data, without dots; set an object as a JSON value instead (--set 'data.a={\"b\":1}')", set)
		}
		var value any
		if err := json.Unmarshal([]byte(raw), &value); err != nil {
			value = raw
		}
		data[key] = value
	}
	return data, nil
}

// jobWrite is one write command's target: the live JobState and a client.
type jobWrite struct {
	o   *Options
	c   client.WithWatch
	key client.ObjectKey
	js  *jobstatev1alpha1.JobState // as read before the write
}

// prepare reads the JobState the command writes, and refuses an
// event-sourced one: its status is the projection of its stream.
func prepare(ctx context.Context, o *Options, name, action string) (*jobWrite, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	ns, err := o.Namespace()
	if err != nil {
		return nil, err
	}
	js, err := getJob(ctx, c, ns, name)
	if err != nil {
		return nil, err
	}
	if ref := js.Spec.EventStreamRef; ref != nil {
		return nil, withCode(ExitRefused, fmt.Errorf(
			"jobstate %s is event-sourced (spec.eventStreamRef %s): its status is projected from that EventStream and cannot be written directly; append a %s event to the stream instead: kubectl jobstate streams append %s -n %s --type %s --data '%s'",
			name, ref.Name, eventFor[action].typ, ref.Name, ns, eventFor[action].typ, eventFor[action].data))
	}
	return &jobWrite{o: o, c: c, key: client.ObjectKeyFromObject(js), js: js}, nil
}

// eventFor is the stream event an event-sourced job takes instead of each
// write (pkg/jobstate's Event* types and their payloads).
var eventFor = map[string]struct{ typ, data string }{
	"claim":     {jobstate.EventClaimed, `{"holder":"kubectl"}`},
	"heartbeat": {jobstate.EventHeartbeat, `{"holder":"HOLDER","attempt":N,"progress":P}`},
	"succeed":   {jobstate.EventSucceeded, `{"holder":"HOLDER","attempt":N,"message":"..."}`},
	"fail":      {jobstate.EventFailed, `{"holder":"HOLDER","attempt":N,"message":"..."}`},
	"cancel":    {jobstate.EventCancelled, `{"message":"..."}`},
	"update":    {jobstate.EventDataPatched, `{"patch":{"KEY":VALUE}}`},
}

// client is a pkg/jobstate Client acting as identity, recording an Event
// of every transition it makes.
func (w *jobWrite) client(ctx context.Context, identity string) (*jobstate.Client, error) {
	if identity == "" {
		identity = defaultIdentity
	}
	recorder := &eventRecorder{ctx: ctx, c: w.c, instance: identity, warn: w.o.ErrOut}
	return jobstate.New(w.c, jobstate.Options{Identity: identity, Recorder: recorder})
}

// allowed refuses, before writing, a transition the phase just read does
// not allow: a heartbeat of a Pending job is an illegal transition, which
// says more than the fenced attempt 0 the library would report. The
// library checks again on the live object.
func (w *jobWrite) allowed(t lifecycle.Transition) error {
	return lifecycle.Allowed(w.js.Status.Phase, t)
}

// fence is the attempt a heartbeat, succeed or fail presents: the job's
// current holder and attempt, unless --identity or --attempt pin them.
func (w *jobWrite) fence(cmd *cobra.Command, f *writeFlags) jobstate.Attempt {
	fence := lifecycle.Fence{Holder: w.js.Status.Holder, Attempt: w.js.Status.Attempt}
	if cmd.Flags().Changed("identity") {
		fence.Holder = f.identity
	}
	if cmd.Flags().Changed("attempt") {
		fence.Attempt = f.attempt
	}
	return jobstate.Attempt{Key: w.key, Fence: fence}
}

// done turns the error of the write action into the command's result:
// a refusal by the job's state exits ExitRefused and says what the state
// is and what to do; otherwise it prints the state the write left.
func (w *jobWrite) done(ctx context.Context, action string, err error) error {
	if err != nil && !refused(err) {
		return err
	}
	js, gerr := getJob(ctx, w.c, w.key.Namespace, w.key.Name)
	if err != nil {
		if gerr != nil {
			return withCode(ExitRefused, fmt.Errorf("%s refused: %w", action, err))
		}
		return withCode(ExitRefused, fmt.Errorf("%s refused: %w\n%s\n%s", action, err, state(js), advice(js, action, err)))
	}
	if gerr != nil {
		return gerr
	}
	_, perr := fmt.Fprintln(w.o.Out, state(js))
	return perr
}

// refused reports the errors by which the job's state refuses a write.
func refused(err error) bool {
	return errors.Is(err, lifecycle.ErrFenced) || errors.Is(err, lifecycle.ErrIllegalTransition) || errors.Is(err, lifecycle.ErrBackingOff)
}

// state is one line of the job's state.
func state(js *jobstatev1alpha1.JobState) string {
	s := js.Status
	line := fmt.Sprintf("jobstate %s is %s: attempt %d, holder %s, progress %d%%", js.Name, phase(js), s.Attempt, orNone(s.Holder), s.Progress)
	if s.Reason != "" {
		line += ", reason " + s.Reason
	}
	return line
}

// advice says what to do after a write the state of js refused.
func advice(js *jobstatev1alpha1.JobState, action string, err error) string {
	s := js.Status
	name := js.Name
	switch {
	case s.Phase == "":
		return "Its status is not initialized yet: the jobstate controller does that when the JobState is created; check that the controller is running."
	case s.Phase.IsTerminal():
		return "It has finished: its phase cannot change any more. To run the job again, create a new JobState."
	case errors.Is(err, lifecycle.ErrBackingOff) && s.RetryAfter != nil:
		return fmt.Sprintf("It is backing off after attempt %d: claim it again %s (status.retryAfter).", s.Attempt, until(s.RetryAfter.Time, time.Now()))
	case s.Phase == jobstatev1alpha1.PhasePending && action != "claim":
		return fmt.Sprintf("No attempt is running: claim one first with kubectl jobstate jobs claim %s -n %s.", name, js.Namespace)
	case s.Phase == jobstatev1alpha1.PhaseRunning && action == "claim":
		return fmt.Sprintf("Attempt %d is held by %s: to take the job over, fail that attempt (kubectl jobstate jobs fail %s -n %s) and claim it when its retry backoff ends.", s.Attempt, s.Holder, name, js.Namespace)
	}
	return fmt.Sprintf("To act for the current holder, omit --identity and --attempt (or pass --identity %s --attempt %d). A worker whose attempt was fenced must stop working on the job.", s.Holder, s.Attempt)
}

// newJobsClaimCommand is `kubectl jobstate jobs claim NAME`.
func newJobsClaimCommand(o *Options) *cobra.Command {
	f := &writeFlags{}
	cmd := &cobra.Command{
		Use:   "claim NAME",
		Short: "Claim the next attempt of a Pending JobState",
		Long: `Claim the next attempt of a Pending JobState, as a worker does: the job becomes
Running with holder --identity (default "kubectl") and its attempt number goes
up by one. Print the attempt: heartbeat, succeed and fail present it.

Heartbeat within spec.heartbeatTimeoutSeconds, or the controller declares the
holder lost and ends the attempt.`,
		Example: `  # Run a job by hand.
  kubectl jobstate jobs claim nightly-import --identity alice
  kubectl jobstate jobs heartbeat nightly-import --progress 50
  kubectl jobstate jobs succeed nightly-import --message "imported by hand"`,
		Args: oneName("JobState"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := prepare(ctx, o, args[0], "claim")
			if err != nil {
				return err
			}
			jc, err := w.client(ctx, f.identity)
			if err != nil {
				return err
			}
			a, err := jc.Claim(ctx, w.key)
			if err == nil {
				fmt.Fprintf(o.Out, "Claimed attempt %d of jobstate %s as %s: heartbeat within %s (spec.heartbeatTimeoutSeconds) or the controller ends the attempt.\n",
					a.Attempt, w.key.Name, a.Holder, lifecycle.HeartbeatTimeout(w.js))
			}
			return w.done(ctx, "claim", err)
		},
	}
	cmd.Flags().StringVar(&f.identity, "identity", defaultIdentity, "The holder to claim as, written to status.holder.")
	return cmd
}

// newJobsHeartbeatCommand is `kubectl jobstate jobs heartbeat NAME`.
func newJobsHeartbeatCommand(o *Options) *cobra.Command {
	f := &writeFlags{}
	cmd := &cobra.Command{
		Use:   "heartbeat NAME",
		Short: "Report the running attempt of a JobState alive, with its progress",
		Long: `Report the running attempt of a JobState alive: status.lastHeartbeatTime
becomes now, status.progress --progress (default: unchanged), and each --set
data.KEY=VALUE replaces one key of status.data.

The write presents the job's current holder and attempt, acting for the holder
(in an incident, to keep a slow worker's attempt from being declared lost);
--identity and --attempt pin them instead, and the write is refused (exit 4)
if they are not the current attempt's.`,
		Example: `  # Keep the current attempt alive at 40%.
  kubectl jobstate jobs heartbeat nightly-import --progress 40

  # As worker-7, attempt 2 only.
  kubectl jobstate jobs heartbeat nightly-import --identity worker-7 --attempt 2 --set data.cursor=page-9`,
		Args: oneName("JobState"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := prepare(ctx, o, args[0], "heartbeat")
			if err != nil {
				return err
			}
			if err := w.allowed(lifecycle.Heartbeat); err != nil {
				return w.done(ctx, "heartbeat", err)
			}
			a := w.fence(cmd, f)
			jc, err := w.client(ctx, a.Holder)
			if err != nil {
				return err
			}
			progress := w.js.Status.Progress
			if cmd.Flags().Changed("progress") {
				progress = f.progress
			}
			return w.done(ctx, "heartbeat", jc.Heartbeat(ctx, a, progress, f.data))
		},
	}
	f.addFence(cmd)
	cmd.Flags().Int32Var(&f.progress, "progress", 0, "Progress of the attempt in percent, 0 to 100. Default: unchanged.")
	f.addSet(cmd, "data.KEY=VALUE: replace one top-level key of status.data (VALUE as JSON if it parses, else a string; null removes the key). Repeatable.")
	return cmd
}

// newJobsSucceedCommand is `kubectl jobstate jobs succeed NAME`.
func newJobsSucceedCommand(o *Options) *cobra.Command {
	return newJobsFinishCommand(o, "succeed", lifecycle.Succeed, "Finish the running attempt of a JobState successfully",
		`Finish the running attempt of a JobState successfully: the job becomes
Succeeded, for good, with --message as status.message.`,
		`  # The work is done; record it.
  kubectl jobstate jobs succeed nightly-import --message "imported by hand"`,
		func(ctx context.Context, jc *jobstate.Client, a jobstate.Attempt, message string) error {
			return jc.Succeed(ctx, a, message)
		})
}

// newJobsFailCommand is `kubectl jobstate jobs fail NAME`.
func newJobsFailCommand(o *Options) *cobra.Command {
	return newJobsFinishCommand(o, "fail", lifecycle.Fail, "End the running attempt of a JobState with a failure",
		`End the running attempt of a JobState with a failure: the job goes back to
Pending, to be retried after a backoff, or fails for good once
spec.backoffLimit retries were made (at once with backoffLimit 0).`,
		`  # The worker's node is gone: have the job retried now rather than at the
  # heartbeat timeout.
  kubectl jobstate jobs fail nightly-import --message "node lost"`,
		func(ctx context.Context, jc *jobstate.Client, a jobstate.Attempt, message string) error {
			return jc.Fail(ctx, a, message)
		})
}

// newJobsFinishCommand is succeed or fail: a write of the running attempt
// with a message.
func newJobsFinishCommand(o *Options, action string, transition lifecycle.Transition, short, long, example string, write func(context.Context, *jobstate.Client, jobstate.Attempt, string) error) *cobra.Command {
	f := &writeFlags{}
	cmd := &cobra.Command{
		Use:   action + " NAME",
		Short: short,
		Long: long + `

The write presents the job's current holder and attempt, acting for the holder;
--identity and --attempt pin them instead, and the write is refused (exit 4) if
they are not the current attempt's.`,
		Example: example,
		Args:    oneName("JobState"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := prepare(ctx, o, args[0], action)
			if err != nil {
				return err
			}
			if err := w.allowed(transition); err != nil {
				return w.done(ctx, action, err)
			}
			a := w.fence(cmd, f)
			jc, err := w.client(ctx, a.Holder)
			if err != nil {
				return err
			}
			return w.done(ctx, action, write(ctx, jc, a, f.message))
		},
	}
	f.addFence(cmd)
	cmd.Flags().StringVar(&f.message, "message", "", "Why, for people: written to status.message.")
	return cmd
}

// newJobsCancelCommand is `kubectl jobstate jobs cancel NAME`.
func newJobsCancelCommand(o *Options) *cobra.Command {
	f := &writeFlags{}
	cmd := &cobra.Command{
		Use:   "cancel NAME",
		Short: "Cancel a JobState that has not finished",
		Long: `Cancel a JobState that has not finished: set spec.cancel (which cannot be
undone) and move the status to Cancelled at once, without waiting for the
controller. A finished job is refused (exit 4).`,
		Example: `  # Stop a job for good.
  kubectl jobstate jobs cancel nightly-import --message "superseded by the weekly import"`,
		Args: oneName("JobState"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := prepare(ctx, o, args[0], "cancel")
			if err != nil {
				return err
			}
			jc, err := w.client(ctx, defaultIdentity)
			if err != nil {
				return err
			}
			return w.done(ctx, "cancel", jc.Cancel(ctx, w.key, f.message))
		},
	}
	cmd.Flags().StringVar(&f.message, "message", "", "Why, for people: written to status.message.")
	return cmd
}

// newJobsUpdateCommand is `kubectl jobstate jobs update NAME --set ...`.
func newJobsUpdateCommand(o *Options) *cobra.Command {
	f := &writeFlags{}
	cmd := &cobra.Command{
		Use:   "update NAME --set data.KEY=VALUE ...",
		Short: "Change keys of a JobState's status.data",
		Long: `Change keys of a JobState's status.data, the job's own state: each --set
data.KEY=VALUE replaces one top-level key. VALUE is JSON if it parses as JSON
(a number, true, an object, "a quoted string"), else a string; null removes the
key. The write is conflict-free: a concurrent heartbeat is kept, not
overwritten.`,
		Example: `  # Make the next attempt resume from page 9, with a smaller batch.
  kubectl jobstate jobs update nightly-import --set data.cursor=page-9 --set data.batch=50

  # Remove a key.
  kubectl jobstate jobs update nightly-import --set data.cursor=null`,
		Args: oneName("JobState"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			if len(f.data) == 0 {
				return usageError("%s needs at least one --set data.KEY=VALUE", cmd.CommandPath())
			}
			ctx := cmd.Context()
			w, err := prepare(ctx, o, args[0], "update")
			if err != nil {
				return err
			}
			jc, err := w.client(ctx, defaultIdentity)
			if err != nil {
				return err
			}
			_, err = jc.Update(ctx, w.key, func(js *jobstatev1alpha1.JobState) error {
				return jobstate.MergeData(js, f.data)
			})
			return w.done(ctx, "update", err)
		},
	}
	f.addSet(cmd, "data.KEY=VALUE: replace one top-level key of status.data (VALUE as JSON if it parses, else a string; null removes the key). Repeatable; required.")
	return cmd
}
