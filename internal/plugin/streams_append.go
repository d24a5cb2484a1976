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
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// newStreamsAppendCommand is `kubectl jobstate streams append NAME`.
func newStreamsAppendCommand(o *Options) *cobra.Command {
	f := &appendFlags{}
	cmd := &cobra.Command{
		Use:   "append NAME --type TYPE --data JSON",
		Short: "Append one event to an EventStream",
		Long: `Append one event to the EventStream NAME (created if missing) and print its
position and global position.

--data and --metadata must be JSON objects. --id (a UUID) makes the append
idempotent: appending an id the stream already holds, with the same event,
stores nothing and prints the original position with "duplicate: already
stored". --expected-version N appends only if the stream's last event is at
position N (-1: only if the stream has no events yet); otherwise it prints
"Expected version N, stream is at version M", stores nothing and exits 3.

An invalid event (bad JSON, type or id, too large) exits 2 and stores nothing.`,
		Example: `  # Append an event.
  kubectl jobstate streams append orders --type Placed --data '{"sku":"A1","qty":2}'

  # Append only if the stream is still at version 4 (optimistic concurrency).
  kubectl jobstate streams append orders --type Shipped --data '{}' --expected-version 4

  # Start a stream that must not exist yet, with an id that makes a retry safe.
  kubectl jobstate streams append orders --type Opened --data '{}' --expected-version -1 \
      --id 5b0d0e6c-3c1f-4c53-9a3e-8d2f8f8b2a10`,
		Args: oneName("eventstream"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, o, args[0])
		},
	}
	cmd.Flags().StringVar(&f.typ, "type", "", "The event's type, e.g. Placed (1 to 128 characters).")
	cmd.Flags().StringVar(&f.data, "data", "", "The event's payload: a JSON object.")
	cmd.Flags().StringVar(&f.metadata, "metadata", "", "Optional JSON object about the event (correlation ids, causes).")
	cmd.Flags().StringVar(&f.id, "id", "", "The event's id, a UUID (default: a new one). Reuse it to retry an append safely.")
	cmd.Flags().Int64Var(&f.expected, "expected-version", 0, "Append only if the stream is at this version: the position of its last event, or -1 for a stream without events.")
	return cmd
}

// appendFlags are streams append's flags.
type appendFlags struct {
	typ, data, metadata, id string
	expected                int64
}

// run appends the event the flags describe to the stream name: flags are
// checked before any request.
func (f *appendFlags) run(cmd *cobra.Command, o *Options, name string) error {
	if f.typ == "" {
		return usageError("%s needs --type, the event's type, e.g. --type Placed", cmd.CommandPath())
	}
	if !cmd.Flags().Changed("data") {
		return usageError("%s needs --data, the event's payload as a JSON object, e.g. --data '{\"sku\":\"A1\"}'", cmd.CommandPath())
	}
	ev := stream.EventData{ID: f.id, Type: f.typ}
	raw, err := jsonObjectFlag("data", f.data)
	if err != nil {
		return err
	}
	ev.Data = raw
	if cmd.Flags().Changed("metadata") {
		if ev.Metadata, err = jsonObjectFlag("metadata", f.metadata); err != nil {
			return err
		}
	}
	var opts stream.AppendOptions
	if cmd.Flags().Changed("expected-version") {
		if f.expected < stream.NoStream {
			return usageError("--expected-version %d: want -1 (the stream has no events yet) or the position of its last event (0 or more)", f.expected)
		}
		opts = stream.ExpectVersion(f.expected)
	}
	t, err := newStreamTarget(o, name)
	if err != nil {
		return err
	}
	res, err := t.stream.Append(cmd.Context(), t.key, []stream.EventData{ev}, opts)
	if err != nil {
		return t.streamError(err)
	}
	fmt.Fprintf(o.Out, "position: %d\nglobal position: %s\n", res.Positions[0], res.GlobalPositions[0])
	if res.Duplicate {
		fmt.Fprintln(o.Out, "duplicate: already stored")
	}
	return nil
}

// jsonObjectFlag parses the value of --flag, which must be a JSON object.
func jsonObjectFlag(flag, value string) (json.RawMessage, error) {
	raw := bytes.TrimSpace([]byte(value))
	if !json.Valid(raw) {
		return nil, usageError("--%s %q is not valid JSON: give a JSON object, e.g. --%s '{\"key\":\"value\"}'", flag, value, flag)
	}
	if raw[0] != '{' {
		return nil, usageError("--%s %s is not a JSON object: wrap it in one, e.g. --%s '{\"value\":%s}'", flag, raw, flag, raw)
	}
	return raw, nil
}
