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
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// readPage is how many events one Read asks for.
const readPage = 500

// newStreamsReadCommand is `kubectl jobstate streams read NAME`.
func newStreamsReadCommand(o *Options) *cobra.Command {
	r := &streamReader{o: o}
	cmd := &cobra.Command{
		Use:   "read NAME",
		Short: "Print an EventStream's events in order, and follow new ones",
		Long: `Print the events of the EventStream NAME in position order: a table (POSITION,
TYPE, ID, TIME, DATA; -o wide adds METADATA and GLOBAL, the global position),
or -o json / -o yaml, a list of {position, globalPosition, id, type, data,
metadata, time}.

--from starts at a position (events removed by retention are skipped);
--limit stops after that many events (0: all).

--follow keeps printing events as they are appended, through a watch on the
EventStream (no polling), until Ctrl-C or SIGTERM (exit 0) or until the stream
is deleted (exit 0, with a note on stderr). With --follow, -o json prints one
event object per line and -o yaml one document per event.

A stream that does not exist or has no events exits 1 (--follow waits for the
first event of a stream that exists without events).`,
		Example: `  # The whole stream.
  kubectl jobstate streams read orders

  # Ten events from position 100, as JSON.
  kubectl jobstate streams read orders --from 100 --limit 10 -o json

  # Print new events as they are appended.
  kubectl jobstate streams read orders --follow`,
		Args: oneName("eventstream"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := r.validate(); err != nil {
				return err
			}
			t, err := newStreamTarget(o, args[0])
			if err != nil {
				return err
			}
			r.t = t
			r.tw = tabwriter.NewWriter(o.Out, 6, 4, 3, ' ', 0)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return r.run(ctx)
		},
	}
	cmd.Flags().Int64Var(&r.from, "from", 0, "The position to start at.")
	cmd.Flags().IntVar(&r.limit, "limit", 0, "Print at most this many events (0: all).")
	cmd.Flags().BoolVarP(&r.follow, "follow", "f", false, "Keep printing events as they are appended, until Ctrl-C.")
	cmd.Flags().StringVarP(&r.format, "output", "o", "", "Output format: table (default), wide, json, yaml.")
	return cmd
}

// streamReader is one `streams read`: what it was asked and how far it got.
type streamReader struct {
	o             *Options
	from          int64
	limit         int
	follow        bool
	format        string
	t             *streamTarget
	tw            *tabwriter.Writer
	printed       int
	headerPrinted bool
	next          int64
}

func (r *streamReader) validate() error {
	switch r.format {
	case "", "table", "wide", "json", "yaml":
	default:
		return usageError("-o %s: streams read prints table, wide, json or yaml (events are not Kubernetes objects)", r.format)
	}
	if r.from < 0 {
		return usageError("--from %d: positions start at 0", r.from)
	}
	if r.limit < 0 {
		return usageError("--limit %d: give a positive number, or 0 for all events", r.limit)
	}
	return nil
}

// done reports whether --limit is reached.
func (r *streamReader) done() bool { return r.limit > 0 && r.printed >= r.limit }

func (r *streamReader) run(ctx context.Context) error {
	r.next = r.from
	es, err := r.t.get(ctx)
	if err != nil {
		return err
	}
	if !hasEvents(es) && !r.follow {
		return r.t.notFound()
	}
	var all []stream.RecordedEvent
	if hasEvents(es) {
		// Without --follow everything is read first, so that -o json
		// prints one array.
		if err := r.readNew(ctx, es, func(evs []stream.RecordedEvent) error {
			if r.follow {
				return r.print(evs)
			}
			all = append(all, evs...)
			return nil
		}); err != nil {
			if r.follow && ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if !r.follow {
		return r.printAll(all)
	}
	if r.done() {
		return nil
	}
	return r.watch(ctx, es.ResourceVersion)
}

func hasEvents(es *jobstatev1alpha1.EventStream) bool { return es.Head != nil && es.Head.Version >= 0 }

// readNew reads es's events from r.next on, a page at a time, up to
// --limit, handing each page to emit.
func (r *streamReader) readNew(ctx context.Context, es *jobstatev1alpha1.EventStream, emit func([]stream.RecordedEvent) error) error {
	for hasEvents(es) && r.next <= es.Head.Version && !r.done() {
		n := readPage
		if r.limit > 0 {
			n = min(n, r.limit-r.printed)
		}
		evs, err := r.t.stream.ReadFrom(ctx, es, r.next, n)
		if err != nil {
			return r.t.streamError(err)
		}
		if len(evs) == 0 {
			return nil
		}
		r.printed += len(evs)
		r.next = evs[len(evs)-1].Position + 1
		if err := emit(evs); err != nil {
			return err
		}
	}
	return nil
}

// watch prints the events appended after the stream was at
// resourceVersion rv, until ctx ends or the stream is deleted. A watch
// that ends (the API server closes them) or expires is started again from
// a live read: events are found by position, so none is missed or printed
// twice.
func (r *streamReader) watch(ctx context.Context, rv string) error {
	for {
		w, err := r.t.client.Watch(ctx, &jobstatev1alpha1.EventStreamList{}, &client.ListOptions{
			Namespace:     r.t.key.Namespace,
			FieldSelector: fields.OneTermEqualSelector("metadata.name", r.t.key.Name),
			Raw:           &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true},
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watching eventstream %s: %w", r.t.key, err)
		}
		deleted, err := r.consume(ctx, w)
		w.Stop()
		if ctx.Err() != nil {
			// Ctrl-C or SIGTERM: what the watch or a read says about
			// being cancelled is no error.
			return nil
		}
		if err != nil || deleted || r.done() {
			return err
		}
		es := &jobstatev1alpha1.EventStream{}
		if err := r.t.client.Get(ctx, r.t.key, es); err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case apierrors.IsNotFound(err):
				return r.deleted()
			}
			return fmt.Errorf("reading eventstream %s: %w", r.t.key, err)
		}
		if err := r.readNew(ctx, es, r.print); err != nil {
			return err
		}
		rv = es.ResourceVersion
	}
}

// consume prints the events of w's changes until it ends. deleted: the
// stream was.
func (r *streamReader) consume(ctx context.Context, w watch.Interface) (deleted bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return true, r.deleted()
			case watch.Error:
				// Expired (410) or another watch error: start again.
				if status, ok := ev.Object.(*metav1.Status); ok && status.Code != 0 && !apierrors.IsResourceExpired(apierrors.FromObject(status)) && !apierrors.IsGone(apierrors.FromObject(status)) {
					return false, fmt.Errorf("watching eventstream %s: %s", r.t.key, status.Message)
				}
				return false, nil
			case watch.Added, watch.Modified:
				es, ok := ev.Object.(*jobstatev1alpha1.EventStream)
				if !ok {
					continue
				}
				if err := r.readNew(ctx, es, r.print); err != nil {
					return false, err
				}
				if r.done() {
					return false, nil
				}
			}
		}
	}
}

func (r *streamReader) deleted() error {
	r.tw.Flush()
	fmt.Fprintf(r.o.ErrOut, "eventstream %s was deleted in namespace %s: no more events\n", r.t.key.Name, r.t.key.Namespace)
	return nil
}

// eventJSON is how -o json and -o yaml print an event.
type eventJSON struct {
	Position       int64           `json:"position"`
	GlobalPosition string          `json:"globalPosition"`
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	Metadata       json.RawMessage `json:"metadata"`
	Time           string          `json:"time"`
}

func toJSON(e stream.RecordedEvent) eventJSON {
	md := e.Metadata
	if len(md) == 0 {
		md = json.RawMessage("null")
	}
	return eventJSON{
		Position: e.Position, GlobalPosition: e.GlobalPosition.String(), ID: e.ID, Type: e.Type,
		Data: e.Data, Metadata: md, Time: e.Time.UTC().Format(time.RFC3339Nano),
	}
}

// printAll prints the events read without --follow: one table, JSON array
// or YAML list.
func (r *streamReader) printAll(evs []stream.RecordedEvent) error {
	switch r.format {
	case "json", "yaml":
		list := make([]eventJSON, 0, len(evs))
		for _, e := range evs {
			list = append(list, toJSON(e))
		}
		b, err := json.MarshalIndent(list, "", "    ")
		if err != nil {
			return err
		}
		if r.format == "yaml" {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
			_, err = r.o.Out.Write(b)
			return err
		}
		_, err = fmt.Fprintf(r.o.Out, "%s\n", b)
		return err
	}
	if len(evs) == 0 {
		_, err := fmt.Fprintf(r.o.ErrOut, "No events in eventstream %s from position %d.\n", r.t.key.Name, r.from)
		return err
	}
	return r.print(evs)
}

// print prints evs as they come (--follow, or a table): rows of the
// table, one JSON object per line, or one YAML document per event.
func (r *streamReader) print(evs []stream.RecordedEvent) error {
	switch r.format {
	case "json":
		for _, e := range evs {
			b, err := json.Marshal(toJSON(e))
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(r.o.Out, "%s\n", b); err != nil {
				return err
			}
		}
		return nil
	case "yaml":
		for _, e := range evs {
			b, err := yaml.Marshal(toJSON(e))
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(r.o.Out, "---\n%s", b); err != nil {
				return err
			}
		}
		return nil
	}
	wide := r.format == "wide"
	if !r.headerPrinted {
		r.headerPrinted = true
		header := "POSITION\tTYPE\tID\tTIME\tDATA"
		if wide {
			header += "\tMETADATA\tGLOBAL"
		}
		fmt.Fprintln(r.tw, header)
	}
	for _, e := range evs {
		fmt.Fprintf(r.tw, "%d\t%s\t%s\t%s\t%s", e.Position, e.Type, e.ID, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Data)
		if wide {
			md := string(e.Metadata)
			if md == "" {
				md = "<none>"
			}
			fmt.Fprintf(r.tw, "\t%s\t%s", md, e.GlobalPosition)
		}
		fmt.Fprintln(r.tw)
	}
	return r.tw.Flush()
}
