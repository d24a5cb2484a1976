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

// Command devenv is `make run`: it runs the jobstate manager against the
// cluster of the current kubeconfig, or, when none is configured or
// reachable, against a local control plane it starts itself (kube-apiserver
// and etcd built by hack/envtest-assets.sh), with the CRDs installed,
// config/samples applied, the demo worker (examples/worker) working on the
// sample jobs and the EventoDB gateway (cmd/gateway) serving.
//
// What it prints is for a person watching: what started, where the logs
// are, and the JobStates moving — a table redrawn in place when stdout is a
// terminal, one line per transition when it is not (piped, CI) — then the
// final tables when it stops (Ctrl-C or --exit-after). Every log goes to a
// file in --dir: the manager's (it runs in this process), the worker's, the
// gateway's, kube-apiserver's and etcd's. Errors, and only errors, go to
// stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// options are make run's flags (RUNFLAGS=...).
type options struct {
	exitAfter      time.Duration
	local          bool
	namespace      string
	gatewayAddr    string
	dir            string
	workerInterval time.Duration
}

// errExitAfter is the cause of the stop --exit-after makes.
var errExitAfter = errors.New("--exit-after elapsed")

func main() {
	var o options
	flag.DurationVar(&o.exitAfter, "exit-after", 0, "Stop after this long and print the final JobStates (0: run until Ctrl-C).")
	flag.BoolVar(&o.local, "local", false, "Always start a local control plane, even if a kubeconfig points at a cluster.")
	flag.StringVar(&o.namespace, "namespace", "default", "Namespace for the samples, the demo worker and the gateway's token (local mode).")
	flag.StringVar(&o.gatewayAddr, "gateway-address", "127.0.0.1:8080", "Where the EventoDB gateway listens (local mode); empty: no gateway.")
	flag.StringVar(&o.dir, "dir", filepath.Join(testenv.RepoRoot(), "bin", "devenv"), "Directory of the logs, kubeconfigs, tokens and binaries make run writes.")
	flag.DurationVar(&o.workerInterval, "worker-interval", time.Second, "Time between the demo worker's heartbeats; a job takes 30 of them (local mode).")
	flag.Parse()

	// A closed stdout (`make run | head`, or tee ended by the same Ctrl-C)
	// would otherwise kill make run at its next line, leaving kube-apiserver
	// and etcd, in process groups of their own, running; ignored, the write
	// fails and make run stops everything as usual.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if o.exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.exitAfter, errExitAfter)
		defer cancel()
	}
	scr := newScreen(os.Stdout, os.Stderr)
	go func() {
		// A second Ctrl-C while stopping ends make run at once.
		<-ctx.Done()
		stopSignals()
	}()
	if err := run(ctx, scr, o); err != nil {
		scr.errorf("make run: %v", err)
		os.Exit(1)
	}
}

// run opens the logs, picks the cluster and runs make run on it until ctx
// is done.
func run(ctx context.Context, scr *screen, o options) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	o.dir = dir
	logs, err := openLogs(o.dir)
	if err != nil {
		return err
	}
	defer logs.close()
	scr.linef("Logs in %s%c", displayPath(o.dir), filepath.Separator)

	cfg, note := pickCluster(scr, o.local)
	scr.linef("%s", note)
	if cfg != nil {
		err = runOnCluster(ctx, scr, logs, cfg)
	} else {
		err = runLocal(ctx, scr, logs, o)
	}
	if err != nil && ctx.Err() != nil && !errors.As(err, new(*failure)) {
		// Ctrl-C or --exit-after while starting: what failed was cut
		// short, not wrong.
		scr.linef("\nStopping while starting.")
		err = nil
	}
	if err == nil {
		scr.linef("Stopped everything make run started; the logs are in %s%c.", displayPath(o.dir), filepath.Separator)
	}
	return err
}

// stopping says why make run stops, once ctx is done.
func stopping(ctx context.Context, scr *screen) {
	var f *failure
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errExitAfter):
		scr.linef("\nStopping: --exit-after elapsed.")
	case errors.As(cause, &f):
		scr.linef("\nStopping: the %s stopped.", f.what) // the error itself goes to stderr
	default:
		scr.linef("\nStopping.")
	}
}

// failure is a part of make run that stopped while it should be running:
// it stops the rest, and make run exits with an error.
type failure struct {
	what, log string
	err       error
}

func (f *failure) Error() string {
	if f.log == "" {
		return fmt.Sprintf("the %s stopped: %v", f.what, f.err)
	}
	return fmt.Sprintf("the %s stopped: %v (its log: %s)", f.what, f.err, displayPath(f.log))
}

func (f *failure) Unwrap() error { return f.err }

// displayPath is path relative to the working directory when it is under
// it, as a person would type it.
func displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || !filepath.IsLocal(rel) {
		return path
	}
	return rel
}
