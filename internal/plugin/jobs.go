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
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

// newJobsCommand is `kubectl jobstate jobs`: read JobStates (get,
// describe) and drive them by hand (claim, heartbeat, succeed, fail,
// cancel, update) through pkg/jobstate.
func newJobsCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "jobs",
		Aliases: []string{"job", "js"},
		Short:   "Show and drive JobStates",
		Long: `Show JobStates (get, describe) and drive them by hand (claim, heartbeat,
succeed, fail, cancel, update), as a worker would: every write goes through
jobstate's worker library, so it is fenced by the attempt number and never
lost to a concurrent writer.

A write the job's state refuses (a fenced attempt, an illegal transition)
exits with code 4 and says what the job's state is.`,
		Example: `  # List the JobStates of the current namespace.
  kubectl jobstate jobs get

  # Take over a job in an incident: fail the current attempt so it is retried.
  kubectl jobstate jobs fail nightly-import --message "worker node lost"`,
	}
	cmd.AddCommand(
		newJobsGetCommand(o), newJobsDescribeCommand(o),
		newJobsClaimCommand(o), newJobsHeartbeatCommand(o), newJobsSucceedCommand(o),
		newJobsFailCommand(o), newJobsCancelCommand(o), newJobsUpdateCommand(o),
	)
	return cmd
}

// newJobsGetCommand is `kubectl jobstate jobs get [NAME]`.
func newJobsGetCommand(o *Options) *cobra.Command {
	var out *Output
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List JobStates, or show one",
		Long: `List the JobStates of the namespace (all namespaces with -A), or show the one
named: phase, attempt, holder and progress; -o wide adds the age of the last
heartbeat, the next deadline (the heartbeat timeout of a running attempt, or
spec.activeDeadlineSeconds, whichever comes first) and the reason of the last
transition.

A JobState whose status the controller has not initialized yet shows phase
<uninitialized>.`,
		Example: `  # List the JobStates of the current namespace.
  kubectl jobstate jobs get

  # With heartbeats and deadlines, in every namespace.
  kubectl jobstate jobs get -A -o wide

  # One job's holder.
  kubectl jobstate jobs get nightly-import -o jsonpath='{.status.holder}'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("%s takes at most one argument, a JobState's name, got %d (see %s --help)", cmd.CommandPath(), len(args), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			if len(args) == 1 && o.AllNamespaces {
				return usageError("-A lists every namespace: it cannot be used with a name; use -n NAMESPACE NAME")
			}
			return runJobsGet(cmd.Context(), o, out, args)
		},
	}
	out = AddOutput(cmd)
	return cmd
}

func runJobsGet(ctx context.Context, o *Options, out *Output, args []string) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns, err := o.Namespace()
	if err != nil {
		return err
	}
	var jobs []jobstatev1alpha1.JobState
	if len(args) == 1 {
		js, err := getJob(ctx, c, ns, args[0])
		if err != nil {
			return err
		}
		jobs = append(jobs, *js)
	} else {
		var list jobstatev1alpha1.JobStateList
		var opts []client.ListOption
		if !o.AllNamespaces {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, &list, opts...); err != nil {
			return fmt.Errorf("listing JobStates: %w", err)
		}
		jobs = list.Items
	}
	objs, rows := jobTable(jobs, time.Now())
	return out.Print(o, jobColumns, objs, rows)
}

// jobColumns are the columns of `jobs get`; those of priority 1 show with
// -o wide.
var jobColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name"},
	{Name: "Phase", Type: "string"},
	{Name: "Attempt", Type: "integer"},
	{Name: "Holder", Type: "string"},
	{Name: "Progress", Type: "string"},
	{Name: "Age", Type: "string"},
	{Name: "Heartbeat", Type: "string", Priority: 1},
	{Name: "Next Deadline", Type: "string", Priority: 1},
	{Name: "Reason", Type: "string", Priority: 1},
}

// none is what a table or description shows for an unset value, as
// kubectl does.
const none = "<none>"

func jobRow(js *jobstatev1alpha1.JobState, now time.Time) []any {
	s := js.Status
	return []any{
		js.Name, phase(js), int64(s.Attempt), orNone(s.Holder), fmt.Sprintf("%d%%", s.Progress),
		age(js.CreationTimestamp, now), ageOf(s.LastHeartbeatTime, now), nextDeadlineText(js, now), orNone(s.Reason),
	}
}

// phase is status.phase, or <uninitialized> before the controller gave
// the JobState its first phase.
func phase(js *jobstatev1alpha1.JobState) string {
	if js.Status.Phase == "" {
		return "<uninitialized>"
	}
	return string(js.Status.Phase)
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// age is how long ago t was, as kubectl prints ages.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return none
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func ageOf(t *metav1.Time, now time.Time) string {
	if t == nil {
		return none
	}
	return age(*t, now)
}

// until says how far ahead t is ("in 45s"), or how long overdue.
func until(t, now time.Time) string {
	if d := t.Sub(now); d >= 0 {
		return "in " + duration.HumanDuration(d)
	}
	return "overdue " + duration.HumanDuration(now.Sub(t))
}

// deadline is a time at which the controller ends an attempt or the job.
type deadline struct {
	what string // "heartbeat" or "active"
	at   time.Time
}

// nextDeadline is the first of the heartbeat expiry and the active
// deadline.
func nextDeadline(js *jobstatev1alpha1.JobState) (deadline, bool) {
	var next deadline
	if at, ok := lifecycle.HeartbeatExpiry(js); ok {
		next = deadline{what: "heartbeat", at: at}
	}
	if at, ok := lifecycle.ActiveDeadline(js); ok && (next.at.IsZero() || at.Before(next.at)) {
		next = deadline{what: "active", at: at}
	}
	return next, !next.at.IsZero()
}

func nextDeadlineText(js *jobstatev1alpha1.JobState, now time.Time) string {
	d, ok := nextDeadline(js)
	if !ok {
		return none
	}
	return d.what + " " + until(d.at, now)
}

// getJob reads a JobState live; a missing one is an error saying so.
func getJob(ctx context.Context, c client.Client, ns, name string) (*jobstatev1alpha1.JobState, error) {
	js := &jobstatev1alpha1.JobState{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, js); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, withCode(ExitError, fmt.Errorf("jobstate %s not found in namespace %s (list them with kubectl jobstate jobs get -n %s)", name, ns, ns))
		}
		return nil, fmt.Errorf("reading jobstate %s in namespace %s: %w", name, ns, err)
	}
	return js, nil
}

// ago is "5m ago", or <none>.
func ago(t *metav1.Time, now time.Time) string {
	if t == nil {
		return none
	}
	return age(*t, now) + " ago"
}

func agoMicro(t *metav1.MicroTime, now time.Time) string {
	if t == nil {
		return none
	}
	return age(metav1.Time{Time: t.Time}, now) + " ago"
}
