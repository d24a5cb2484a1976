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
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// newStreamsCommand is `kubectl jobstate streams`: EventStreams, read and
// appended to through pkg/stream.
func newStreamsCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "streams",
		Aliases: []string{"stream", "es"},
		Short:   "Append to, read, follow and describe EventStreams",
		Long: `Append to, read, follow and describe EventStreams, jobstate's append-only
event streams. Appends go through pkg/stream: an --expected-version is checked
atomically with the write, and a retried --id is stored once.`,
		Example: `  # Append an event, then read the stream.
  kubectl jobstate streams append orders --type Placed --data '{"sku":"A1"}'
  kubectl jobstate streams read orders

  # Keep printing events as they are appended, until Ctrl-C.
  kubectl jobstate streams read orders --follow`,
	}
	cmd.AddCommand(
		newStreamsAppendCommand(o),
		newStreamsReadCommand(o),
		newStreamsVersionCommand(o),
		newStreamsDescribeCommand(o),
		newStreamsGetCommand(o),
	)
	return cmd
}

// streamTarget is what a command on one stream needs: its key, a live
// client and a stream.Client on it (not a sealer: only the controller's
// identity may seal).
type streamTarget struct {
	key    client.ObjectKey
	client client.WithWatch
	stream *stream.Client
}

func newStreamTarget(o *Options, name string) (*streamTarget, error) {
	ns, err := o.Namespace()
	if err != nil {
		return nil, err
	}
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	sc, err := stream.New(c, stream.Options{})
	if err != nil {
		return nil, err
	}
	return &streamTarget{key: client.ObjectKey{Namespace: ns, Name: name}, client: c, stream: sc}, nil
}

// get reads the EventStream object live; a missing one is notFound.
func (t *streamTarget) get(ctx context.Context) (*jobstatev1alpha1.EventStream, error) {
	es := &jobstatev1alpha1.EventStream{}
	if err := t.client.Get(ctx, t.key, es); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, t.notFound()
		}
		return nil, fmt.Errorf("reading eventstream %s: %w", t.key, err)
	}
	return es, nil
}

// notFound is the error for a stream that does not exist or has no events.
func (t *streamTarget) notFound() error {
	return fmt.Errorf("eventstream %s not found in namespace %s: check the name and -n, or list the streams with kubectl jobstate streams get", t.key.Name, t.key.Namespace)
}

// streamError gives an error of pkg/stream its exit code and, for a
// missing stream, the plugin's message.
func (t *streamTarget) streamError(err error) error {
	switch {
	case errors.Is(err, stream.ErrStreamNotFound):
		return t.notFound()
	case errors.Is(err, stream.ErrVersionConflict):
		return withCode(ExitConflict, err)
	case errors.Is(err, stream.ErrInvalidEvent), errors.Is(err, stream.ErrTooLarge), errors.Is(err, stream.ErrDuplicateID):
		return withCode(ExitUsage, err)
	}
	return err
}
