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
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// Exit codes (see the package doc).
const (
	ExitError    = 1
	ExitUsage    = 2
	ExitConflict = 3
	ExitRefused  = 4
)

// exitError is an error with the exit code it ends the command with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a bad flag or argument: exit 2, nothing written.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// withCode gives err an exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// Scheme holds the types the plugin reads and writes.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(jobstatev1alpha1.AddToScheme(Scheme))
}

// Options are what every command shares: kubectl's kubeconfig flags
// (--kubeconfig, --context, -n, ...), -A, and the terminal.
type Options struct {
	ConfigFlags   *genericclioptions.ConfigFlags
	AllNamespaces bool
	genericiooptions.IOStreams
}

// Client is a live client for the kubeconfig the flags select.
func (o *Options) Client() (client.WithWatch, error) {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: Scheme})
}

// Namespace is -n, or the kubeconfig context's namespace, or "default".
func (o *Options) Namespace() (string, error) {
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// NewCommand is `kubectl jobstate`.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: genericclioptions.NewConfigFlags(true), IOStreams: streams}
	cmd := &cobra.Command{
		Use: "jobstate",
		// Usage text reads "kubectl jobstate ...", as kubectl plugins'.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl jobstate"},
		Short:       "Watch, drive and debug jobstate's jobs, event streams and locks",
		Long: `kubectl jobstate shows and drives JobStates, EventStreams and the Leases jobstate
locks with. Writes go through jobstate's libraries: fenced, and never lost to a
concurrent writer.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetIn(streams.In)
	o.ConfigFlags.AddFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "List across all namespaces (get and list commands).")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	cmd.AddCommand(newJobsCommand(o), newStreamsCommand(o), newLocksCommand(o))
	return cmd
}

// Run runs the command line args and returns the exit code, having
// printed any error to streams.ErrOut with what to do.
func Run(streams genericiooptions.IOStreams, args []string) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	if isUsage(err) {
		return ExitUsage
	}
	return ExitError
}

// isUsage reports cobra's own usage errors (unknown command, wrong
// argument count), which it returns as plain errors.
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires ", "unknown shorthand flag", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// oneName is cobra.PositionalArgs for a command that takes one object's
// name: anything else is a usage error saying so.
func oneName(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError("%s takes one argument, the %s's name, got %d (see %s --help)", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}
