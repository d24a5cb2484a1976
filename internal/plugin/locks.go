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
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/lease"
)

// locksSelector selects the Leases jobstate locks with: pkg/lease labels
// every Lease it creates for an owner (a JobState's Lease under lockPolicy
// Lease is owned by the JobState) with the owner's kind. Leases it creates
// without an owner carry only the labels their program asked for
// (lease.Options.Labels), so they need -l.
const locksSelector = lease.OwnerKindLabel

// locksHelp is what the locks commands show and how they tell a jobstate
// lock from other Leases; shared by their Long help.
const locksHelp = `Locks are coordination.k8s.io/v1 Leases taken through jobstate's pkg/lease.
A JobState with spec.lockPolicy Lease is guarded by the Lease
"jobstate.<name>" in its namespace, owned by the JobState.

Which Leases are jobstate's: those pkg/lease created for an owner, which it
labels ` + lease.OwnerKindLabel + ` (every JobState's Lease is one). Locks a
program took with pkg/lease without an owner carry only the labels that
program set in lease.Options.Labels: select them with -l. Other Leases (node
heartbeats, leader elections) are not listed.

The token is the Lease's spec.leaseTransitions: pkg/lease adds one on every
acquisition, and a write fenced with it is refused once a newer token has
been stored. A lock is expired when its renewTime plus leaseDurationSeconds
has passed on this machine's clock: its holder stopped renewing (or its clock
is behind). A released lock has no holder.`

// newLocksCommand is `kubectl jobstate locks`.
func newLocksCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "locks",
		Short: "List and describe the Lease locks jobstate holds",
		Long:  locksHelp,
		Example: `  # The locks in the current namespace, and who holds them.
  kubectl jobstate locks list

  # Why a job's write waits: its Lease, in detail.
  kubectl jobstate locks describe jobstate.nightly-report`,
	}
	cmd.AddCommand(newLocksListCommand(o), newLocksDescribeCommand(o))
	return cmd
}

// newLocksListCommand is `kubectl jobstate locks list`.
func newLocksListCommand(o *Options) *cobra.Command {
	var selector string
	var out *Output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobstate's Lease locks: holder, token, ages, expired",
		Long: "List jobstate's Lease locks: NAME, HOLDER, TOKEN, ACQUIRED and RENEWED (ages),\n" +
			"EXPIRED (yes, no, or - for a released lock); -o wide adds the DURATION\n" +
			"(leaseDurationSeconds) and the JOBSTATE the lock guards.\n\n" + locksHelp,
		Example: `  # The locks in the current namespace.
  kubectl jobstate locks list

  # Every namespace's, with the JobState each guards.
  kubectl jobstate locks list -A -o wide

  # Locks a program took without an owner, labelled app=reports.
  kubectl jobstate locks list -l app=reports

  # The Lease objects themselves.
  kubectl jobstate locks list -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				return usageError("-l %q: %v; use a label selector such as app=reports", selector, err)
			}
			return listLocks(cmd, o, out, sel)
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", locksSelector, "Label selector of the Leases to list; the default selects the Leases pkg/lease made for an owner (every JobState's).")
	out = AddOutput(cmd)
	return cmd
}

// listLocks prints the Leases sel selects in the namespace (or all, -A).
func listLocks(cmd *cobra.Command, o *Options, out *Output, sel labels.Selector) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	opts := []client.ListOption{client.MatchingLabelsSelector{Selector: sel}}
	where := "all namespaces"
	if !o.AllNamespaces {
		ns, err := o.Namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
		where = "namespace " + ns
	}
	var leases coordinationv1.LeaseList
	if err := c.List(cmd.Context(), &leases, opts...); err != nil {
		return fmt.Errorf("listing Leases in %s: %w", where, err)
	}
	now := time.Now()
	columns := []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
		{Name: "Holder", Type: "string"},
		{Name: "Token", Type: "integer"},
		{Name: "Acquired", Type: "string"},
		{Name: "Renewed", Type: "string"},
		{Name: "Expired", Type: "string"},
		{Name: "Duration", Type: "string", Priority: 1},
		{Name: "JobState", Type: "string", Priority: 1},
	}
	objs := make([]runtime.Object, 0, len(leases.Items))
	rows := make([][]any, 0, len(leases.Items))
	for i := range leases.Items {
		l := &leases.Items[i]
		// A list's items come without their kind; -o json and yaml print
		// each as kubectl does, with it.
		l.SetGroupVersionKind(coordinationv1.SchemeGroupVersion.WithKind("Lease"))
		v := viewLock(l, now)
		objs = append(objs, l)
		rows = append(rows, []any{l.Name, v.holderOrNone(), v.token, microAge(l.Spec.AcquireTime, now), microAge(l.Spec.RenewTime, now), v.expired, v.durationOrNone(), orNone(v.jobState)})
	}
	return out.Print(o, columns, objs, rows)
}

// newLocksDescribeCommand is `kubectl jobstate locks describe NAME`.
func newLocksDescribeCommand(o *Options) *cobra.Command {
	var out *Output
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show one Lease lock: holder, token, times, and what expired means for the next acquirer",
		Long: "Show one Lease lock in detail: the JobState it guards, its holder, token,\n" +
			"acquire and renew times, duration and transitions, whether it is expired,\n" +
			"and what that means for the next acquirer. NAME is the Lease's name; a\n" +
			"JobState's is jobstate.<name>.\n\n" + locksHelp,
		Example: `  # Who holds the Lease of the JobState nightly-report, and until when.
  kubectl jobstate locks describe jobstate.nightly-report

  # The Lease object itself.
  kubectl jobstate locks describe jobstate.nightly-report -o yaml`,
		Args: oneName("Lease"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ns, err := o.Namespace()
			if err != nil {
				return err
			}
			l := &coordinationv1.Lease{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, l); err != nil {
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("lock %s not found in namespace %s: see the locks there with kubectl jobstate locks list -n %s (a JobState's is jobstate.<name>)", args[0], ns, ns)
				}
				return fmt.Errorf("reading Lease %s/%s: %w", ns, args[0], err)
			}
			if table, _ := out.table(); !table {
				return out.Print(o, nil, []runtime.Object{l}, nil)
			}
			return describeLock(o.Out, l, time.Now())
		},
	}
	out = AddOutput(cmd)
	return cmd
}

// lockView is what the commands show of a Lease at a moment.
type lockView struct {
	holder   string
	token    int64
	duration time.Duration // zero: unset
	// expired is "yes", "no", or "-" for a lock without a holder.
	expired string
	// expires is when renewTime plus the duration passes; zero if either
	// is unset.
	expires  time.Time
	jobState string // the owning JobState's name, or ""
}

func viewLock(l *coordinationv1.Lease, now time.Time) lockView {
	var v lockView
	if l.Spec.HolderIdentity != nil {
		v.holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		v.token = int64(*l.Spec.LeaseTransitions)
	}
	if l.Spec.LeaseDurationSeconds != nil {
		v.duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	if l.Spec.RenewTime != nil && v.duration > 0 {
		v.expires = l.Spec.RenewTime.Add(v.duration)
	}
	switch {
	case v.holder == "":
		v.expired = "-"
	case v.expires.IsZero() || !now.Before(v.expires):
		// A held Lease without a renew time or duration cannot be
		// renewed in time: pkg/lease takes it over as an expired one.
		v.expired = "yes"
	default:
		v.expired = "no"
	}
	if ref := metav1.GetControllerOf(l); ref != nil && ref.Kind == "JobState" {
		v.jobState = ref.Name
	}
	return v
}

func (v lockView) holderOrNone() string { return orNone(v.holder) }

func (v lockView) durationOrNone() string {
	if v.duration == 0 {
		return "<none>"
	}
	return duration.HumanDuration(v.duration)
}

// seconds is d as describe says it: whole seconds, as the Lease holds it.
func seconds(d time.Duration) string {
	if d == 0 {
		return "<none>"
	}
	return fmt.Sprintf("%d seconds", int64(d/time.Second))
}

// microAge is kubectl's age of a Lease's time t at now, "<unknown>" if
// unset.
func microAge(t *metav1.MicroTime, now time.Time) string {
	if t == nil {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// when is t and its age at now, "<unset>" if unset.
func when(t *metav1.MicroTime, now time.Time) string {
	if t == nil {
		return "<unset>"
	}
	return t.UTC().Format(time.RFC3339) + " (" + microAge(t, now) + " ago)"
}

// describeLock writes the readable description of l at now.
func describeLock(w io.Writer, l *coordinationv1.Lease, now time.Time) error {
	v := viewLock(l, now)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(tw, "%s:\t%s\n", name, value) }
	field("Name", l.Name)
	field("Namespace", l.Namespace)
	switch {
	case v.jobState != "":
		field("JobState", v.jobState+" (its lockPolicy Lease writes are fenced with this lock's token)")
	case l.Labels[lease.OwnerKindLabel] != "":
		field("Owner", l.Labels[lease.OwnerKindLabel]+" "+ownerName(l))
	default:
		field("Owner", "<none> (not a JobState's lock)")
	}
	field("Holder", v.holderOrNone())
	field("Token", strconv.FormatInt(v.token, 10)+" (spec.leaseTransitions; the next acquisition's is "+strconv.FormatInt(v.token+1, 10)+")")
	field("Acquired", when(l.Spec.AcquireTime, now))
	field("Renewed", when(l.Spec.RenewTime, now))
	field("Duration", seconds(v.duration)+" (spec.leaseDurationSeconds)")
	field("Transitions", strconv.FormatInt(v.token, 10)+" (acquisitions since the Lease was created)")
	field("Expired", v.expired)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", nextAcquirer(v, now))
	return err
}

// ownerName is the name of l's controller, or "<unknown>".
func ownerName(l *coordinationv1.Lease) string {
	if ref := metav1.GetControllerOf(l); ref != nil {
		return ref.Name
	}
	return "<unknown>"
}

// nextAcquirer says what the lock's state means for whoever acquires it
// next, in pkg/lease's terms: waiters count a silent holder's TTL on their
// own clock from when they first saw the Lease unchanged, never from its
// renewTime.
func nextAcquirer(v lockView, now time.Time) string {
	next := strconv.FormatInt(v.token+1, 10)
	var b strings.Builder
	switch v.expired {
	case "-":
		b.WriteString("Free: released by its last holder. The next acquirer takes it at once, with token " + next + ".")
	case "no":
		fmt.Fprintf(&b, "Held: renewed within its duration; it expires in %s unless %s renews it again (every third of the duration, by default).\n", duration.HumanDuration(v.expires.Sub(now)), v.holder)
		b.WriteString("The next acquirer waits for a release (it watches the Lease, so it takes it within milliseconds) or for the holder to stop renewing, then gets token " + next + ".")
	default:
		fmt.Fprintf(&b, "Expired: %s has not renewed it within its duration of %s, by this machine's clock: it has stopped, or its clock is behind.\n", v.holder, seconds(v.duration))
		fmt.Fprintf(&b, "pkg/lease does not trust renew times across machines: the next acquirer takes it over once it has itself seen the Lease unchanged for %s, so it may still wait up to that long. It then gets token %s; once that token is stored, writes fenced with token %d are refused.", seconds(v.duration), next, v.token)
	}
	return b.String()
}
