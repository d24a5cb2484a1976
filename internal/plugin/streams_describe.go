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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// noVersion is what `streams version` prints for a stream without events
// (EventoDB's stream version is null then).
const noVersion = "none: the stream has no events"

// newStreamsVersionCommand is `kubectl jobstate streams version NAME`.
func newStreamsVersionCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "version NAME",
		Short: "Print an EventStream's version: the position of its last event",
		Long: `Print the version of the EventStream NAME: the position of its last event, the
number to give streams append --expected-version.

A stream without events, or that does not exist, has no version: it prints
"` + noVersion + `" and exits 0, as EventoDB's stream version is null
then (append to it with --expected-version -1).`,
		Example: `  # Append only if nobody appended since the version was read.
  v=$(kubectl jobstate streams version orders)
  kubectl jobstate streams append orders --type Shipped --data '{}' --expected-version "$v"`,
		Args: oneName("eventstream"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := newStreamTarget(o, args[0])
			if err != nil {
				return err
			}
			v, ok, err := t.stream.Version(cmd.Context(), t.key)
			if err != nil {
				return t.streamError(err)
			}
			if !ok {
				_, err = fmt.Fprintln(o.Out, noVersion)
				return err
			}
			_, err = fmt.Fprintln(o.Out, v)
			return err
		},
	}
}

// newStreamsDescribeCommand is `kubectl jobstate streams describe NAME`.
func newStreamsDescribeCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show an EventStream's version, head, segments, size, retention and conditions",
		Long: `Show the EventStream NAME: its version, how many events it stores and from which
position, the head (the newest events, from head.first on) and the
EventSegments holding the sealed older events (name, first and last position,
bytes), the approximate size, spec.retention, the status conditions
(SegmentsComplete, WellFormed) and the EventoDB stream name the gateway
recorded, if it wrote the stream.

Events, first position and bytes are counted from the head and the segments
themselves, not from the status, which the EventStream controller updates
with a lag.`,
		Example: `  kubectl jobstate streams describe orders
  kubectl jobstate streams describe orders -n shop`,
		Args: oneName("eventstream"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := newStreamTarget(o, args[0])
			if err != nil {
				return err
			}
			es, err := t.get(cmd.Context())
			if err != nil {
				return err
			}
			segs, err := stream.ListSegments(cmd.Context(), t.client, es)
			if err != nil {
				return fmt.Errorf("listing the segments of eventstream %s: %w", t.key, err)
			}
			return describeStream(o.Out, es, segs)
		},
	}
}

// describeStream prints es and its segments as kubectl describe does.
func describeStream(out io.Writer, es *jobstatev1alpha1.EventStream, segs []stream.SegmentRef) error {
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%s:\t"+format+"\n", append([]any{name}, args...)...)
	}
	field("Name", "%s", es.Name)
	field("Namespace", "%s", es.Namespace)
	field("Stream", "%s", orNone(es.Annotations[gateway.StreamAnnotation]))
	h := es.Head
	if h == nil {
		h = &jobstatev1alpha1.EventStreamHead{Version: stream.NoStream}
	}
	if h.Version < 0 {
		field("Version", "%s", noVersion)
	} else {
		field("Version", "%d", h.Version)
	}
	headEvents := max(h.Version-h.First+1, 0)
	events, bytes, first := headEvents, stream.HeadBytes(h), h.First
	for _, s := range segs {
		events += s.Last - s.First + 1
		bytes += s.Bytes
	}
	if len(segs) > 0 {
		first = segs[0].First
	}
	field("Events", "%d", events)
	if events > 0 {
		field("First position", "%d", first)
	}
	field("Bytes", "%d", bytes)
	field("Head", "first %d, %d events, %d bytes", h.First, headEvents, stream.HeadBytes(h))
	field("Retention", "%s", retention(es.Spec.Retention))
	field("Segments", "%d", len(segs))
	w.Flush()
	if len(segs) > 0 {
		tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tFIRST\tLAST\tBYTES")
		for _, s := range segs {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", s.Name, s.First, s.Last, s.Bytes)
		}
		tw.Flush()
	}
	fmt.Fprintln(out, "Conditions:")
	if len(es.Status.Conditions) == 0 {
		fmt.Fprintln(out, "  <none>: the EventStream controller has not observed the stream yet")
		return nil
	}
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE")
	for _, c := range es.Status.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	return tw.Flush()
}

// retention says what spec.retention keeps.
func retention(r *jobstatev1alpha1.RetentionPolicy) string {
	if r == nil || (r.MaxEvents == nil && r.MaxAge == nil) {
		return "<none>: every event, forever"
	}
	var parts []string
	if r.MaxEvents != nil {
		parts = append(parts, fmt.Sprintf("maxEvents %d", *r.MaxEvents))
	}
	if r.MaxAge != nil {
		parts = append(parts, "maxAge "+r.MaxAge.Duration.String())
	}
	return strings.Join(parts, ", ")
}

// newStreamsGetCommand is `kubectl jobstate streams get [NAME]`.
func newStreamsGetCommand(o *Options) *cobra.Command {
	var out *Output
	cmd := &cobra.Command{
		Use:     "get [NAME]",
		Aliases: []string{"list"},
		Short:   "List EventStreams: version, events, segments",
		Long: `List the EventStreams of the namespace (-A: of every namespace), or show the one
named: NAME, STREAM (the EventoDB stream name, for streams the gateway wrote),
VERSION, EVENTS, SEGMENTS and AGE. EVENTS and SEGMENTS are the EventStream
controller's status ("-" until it has observed the stream); streams describe
counts them itself.`,
		Example: `  kubectl jobstate streams get
  kubectl jobstate streams get -A
  kubectl jobstate streams get orders -o yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("%s takes at most one argument, an eventstream's name, got %d (see %s --help)", cmd.CommandPath(), len(args), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			var items []jobstatev1alpha1.EventStream
			if len(args) == 1 {
				t, err := newStreamTarget(o, args[0])
				if err != nil {
					return err
				}
				es, err := t.get(cmd.Context())
				if err != nil {
					return err
				}
				items = append(items, *es)
			} else {
				list, err := listStreams(cmd.Context(), o)
				if err != nil {
					return err
				}
				items = list.Items
			}
			objs, rows := streamTable(items, time.Now())
			return out.Print(o, streamColumns, objs, rows)
		},
	}
	out = AddOutput(cmd)
	return cmd
}

func listStreams(ctx context.Context, o *Options) (*jobstatev1alpha1.EventStreamList, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	var opts []client.ListOption
	where := "every namespace"
	if !o.AllNamespaces {
		ns, err := o.Namespace()
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.InNamespace(ns))
		where = "namespace " + ns
	}
	list := &jobstatev1alpha1.EventStreamList{}
	if err := c.List(ctx, list, opts...); err != nil {
		return nil, fmt.Errorf("listing the eventstreams of %s: %w", where, err)
	}
	return list, nil
}

var streamColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string"},
	{Name: "Stream", Type: "string"},
	{Name: "Version", Type: "string"},
	{Name: "Events", Type: "string"},
	{Name: "Segments", Type: "string"},
	{Name: "Age", Type: "string"},
}

func streamRow(es *jobstatev1alpha1.EventStream, now time.Time) []any {
	version := "<none>"
	if hasEvents(es) {
		version = fmt.Sprint(es.Head.Version)
	}
	events, segments := "-", "-"
	if es.Status.LastUpdateTime != nil {
		events, segments = fmt.Sprint(es.Status.Events), fmt.Sprint(es.Status.Segments)
	}
	stream := es.Annotations[gateway.StreamAnnotation]
	if stream == "" {
		stream = "<none>"
	}
	return []any{es.Name, stream, version, events, segments, duration.HumanDuration(now.Sub(es.CreationTimestamp.Time))}
}
