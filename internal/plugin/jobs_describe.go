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
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
)

// maxDescribedEvents is how many of a JobState's most recent Events
// describe shows.
const maxDescribedEvents = 10

// newJobsDescribeCommand is `kubectl jobstate jobs describe NAME`.
func newJobsDescribeCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Describe a JobState: state, timers, conditions, Lease, projection and Events",
		Long: `Describe a JobState for people: its phase, attempt, holder and progress; its
timers (the heartbeat timeout, spec.activeDeadlineSeconds, the retry backoff);
its conditions; the holder of its Lease if spec.lockPolicy is Lease; for an
event-sourced job (spec.eventStreamRef) the position of the projection and the
events it rejected; and its most recent Kubernetes Events.`,
		Example: `  # Why did nightly-import stop?
  kubectl jobstate jobs describe nightly-import`,
		Args: oneName("JobState"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			ns, err := o.Namespace()
			if err != nil {
				return err
			}
			js, err := getJob(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			d := description{js: js, now: time.Now()}
			if err := d.read(cmd.Context(), c); err != nil {
				return err
			}
			return d.write(o.Out)
		},
	}
}

// description is what describe prints of one JobState.
type description struct {
	js     *jobstatev1alpha1.JobState
	lease  *coordinationv1.Lease // nil unless lockPolicy Lease and it exists
	events []corev1.Event        // oldest first, at most maxDescribedEvents
	now    time.Time
}

// read reads the JobState's Lease and Events.
func (d *description) read(ctx context.Context, c client.Client) error {
	js := d.js
	if js.Spec.LockPolicy == jobstatev1alpha1.LockPolicyLease {
		l := &coordinationv1.Lease{}
		err := c.Get(ctx, client.ObjectKey{Namespace: js.Namespace, Name: jobstate.LeaseName(js.Name)}, l)
		switch {
		case err == nil:
			d.lease = l
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("reading the Lease of jobstate %s: %w", js.Name, err)
		}
	}
	var events corev1.EventList
	err := c.List(ctx, &events, client.InNamespace(js.Namespace), client.MatchingFields{
		"involvedObject.kind": "JobState",
		"involvedObject.name": js.Name,
		"involvedObject.uid":  string(js.UID),
	})
	if err != nil {
		return fmt.Errorf("listing the Events of jobstate %s: %w", js.Name, err)
	}
	d.events = events.Items
	slices.SortStableFunc(d.events, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	if n := len(d.events); n > maxDescribedEvents {
		d.events = d.events[n-maxDescribedEvents:]
	}
	return nil
}

// eventTime is when an Event last happened, whichever API recorded it.
func eventTime(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func (d *description) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(indent int, format string, args ...any) {
		fmt.Fprintf(tw, strings.Repeat("  ", indent)+format+"\n", args...)
	}
	// Each section and each table aligns its own columns.
	section := func() { _ = tw.Flush() }
	d.writeSummary(line)
	section()
	d.writeTimers(line)
	section()
	d.writeConditions(line)
	section()
	if d.js.Spec.LockPolicy == jobstatev1alpha1.LockPolicyLease {
		d.writeLease(line)
		section()
	}
	if d.js.Spec.EventStreamRef != nil {
		writeProjection(line, section, d.js.Status.Projection)
		section()
	}
	d.writeEvents(line)
	return tw.Flush()
}

// writeSummary describes the job's spec and status fields.
func (d *description) writeSummary(line func(int, string, ...any)) {
	js, s := d.js, d.js.Status
	line(0, "Name:\t%s", js.Name)
	line(0, "Namespace:\t%s", js.Namespace)
	line(0, "Lock Policy:\t%s", orNone(string(js.Spec.LockPolicy)))
	stream := none
	if ref := js.Spec.EventStreamRef; ref != nil {
		stream = ref.Name + " (event-sourced: status is projected from the stream)"
	}
	line(0, "Event Stream:\t%s", stream)
	line(0, "Cancel Requested:\t%t", js.Spec.Cancel)
	line(0, "Phase:\t%s", phase(js))
	line(0, "Reason:\t%s", orNone(s.Reason))
	line(0, "Message:\t%s", orNone(s.Message))
	line(0, "Attempt:\t%d of %d (1 + spec.backoffLimit %d)", s.Attempt, lifecycle.MaxAttempts(js), lifecycle.BackoffLimit(js))
	line(0, "Holder:\t%s", orNone(s.Holder))
	line(0, "Progress:\t%d%%", s.Progress)
	data := none
	if s.Data != nil && len(s.Data.Raw) > 0 {
		data = string(s.Data.Raw)
	}
	line(0, "Data:\t%s", data)
}

// writeTimers describes when the job started, heartbeat and must next.
func (d *description) writeTimers(line func(int, string, ...any)) {
	js, s, now := d.js, d.js.Status, d.now
	line(0, "Timers:")
	line(1, "Started:\t%s", ago(s.StartTime, now))
	line(1, "Last Heartbeat:\t%s", ago(s.LastHeartbeatTime, now))
	hb := none
	if at, ok := lifecycle.HeartbeatExpiry(js); ok {
		hb = fmt.Sprintf("%s (spec.heartbeatTimeoutSeconds %d)", until(at, now), int64(lifecycle.HeartbeatTimeout(js)/time.Second))
	}
	line(1, "Heartbeat Timeout:\t%s", hb)
	active := none
	if at, ok := lifecycle.ActiveDeadline(js); ok {
		active = fmt.Sprintf("%s (spec.activeDeadlineSeconds %d)", until(at, now), *js.Spec.ActiveDeadlineSeconds)
	}
	line(1, "Active Deadline:\t%s", active)
	retry := none
	if s.RetryAfter != nil {
		retry = until(s.RetryAfter.Time, now)
	}
	line(1, "Retry After:\t%s", retry)
	line(1, "Completed:\t%s", ago(s.CompletionTime, now))
}

// writeConditions is the conditions table.
func (d *description) writeConditions(line func(int, string, ...any)) {
	if len(d.js.Status.Conditions) == 0 {
		line(0, "Conditions:\t%s", none)
		return
	}
	line(0, "Conditions:")
	line(1, "TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, c := range d.js.Status.Conditions {
		line(1, "%s\t%s\t%s\t%s\t%s", c.Type, c.Status, c.Reason, age(c.LastTransitionTime, d.now), c.Message)
	}
}

// writeEvents is the table of the job's recent Kubernetes Events.
func (d *description) writeEvents(line func(int, string, ...any)) {
	if len(d.events) == 0 {
		line(0, "Events:\t%s", none)
		return
	}
	line(0, "Events:")
	line(1, "TYPE\tREASON\tAGE\tFROM\tMESSAGE")
	for _, e := range d.events {
		from := e.ReportingController
		if from == "" {
			from = e.Source.Component
		}
		line(1, "%s\t%s\t%s\t%s\t%s", e.Type, e.Reason, age(metav1.Time{Time: eventTime(e)}, d.now), orNone(from), strings.TrimSpace(e.Message))
	}
}

// writeLease describes the Lease of a JobState with lockPolicy Lease.
func (d *description) writeLease(line func(int, string, ...any)) {
	name := jobstate.LeaseName(d.js.Name)
	if d.lease == nil {
		line(0, "Lease:\t%s (not created yet: the first write makes it)", name)
		return
	}
	spec := d.lease.Spec
	line(0, "Lease:\t%s", name)
	holder := none
	if spec.HolderIdentity != nil && *spec.HolderIdentity != "" {
		holder = *spec.HolderIdentity
	}
	line(1, "Holder:\t%s", holder)
	var transitions int32
	if spec.LeaseTransitions != nil {
		transitions = *spec.LeaseTransitions
	}
	line(1, "Token:\t%d (status.lockToken %d)", transitions, d.js.Status.LockToken)
	line(1, "Acquired:\t%s", agoMicro(spec.AcquireTime, d.now))
	line(1, "Renewed:\t%s", agoMicro(spec.RenewTime, d.now))
	expired := "unknown"
	if spec.RenewTime != nil && spec.LeaseDurationSeconds != nil {
		expiry := spec.RenewTime.Add(time.Duration(*spec.LeaseDurationSeconds) * time.Second)
		expired = fmt.Sprintf("%t (TTL %ds)", !d.now.Before(expiry), *spec.LeaseDurationSeconds)
	}
	if holder == none {
		expired = "released"
	}
	line(1, "Expired:\t%s", expired)
}

// writeProjection describes where the projection of an event-sourced
// JobState stands.
func writeProjection(line func(int, string, ...any), section func(), p *jobstatev1alpha1.ProjectionStatus) {
	line(0, "Projection:")
	if p == nil || p.Position == nil {
		line(1, "Position:\t%s (no event applied yet)", none)
	} else {
		line(1, "Position:\t%d", *p.Position)
	}
	if p == nil || p.RejectedCount == 0 {
		line(1, "Rejected Events:\t0")
		return
	}
	line(1, "Rejected Events:\t%d (the last %d, oldest first)", p.RejectedCount, len(p.Rejected))
	section()
	line(2, "POSITION\tTYPE\tREASON\tMESSAGE")
	for _, r := range p.Rejected {
		line(2, "%d\t%s\t%s\t%s", r.Position, r.Type, r.Reason, r.Message)
	}
}
