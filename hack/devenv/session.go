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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// session is what runs until make run stops: the manager, the worker and
// the gateway. One that ends while the others run stops them all, and make
// run exits with an error saying which and where its log is.
type session struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	scr    *screen
	wg     sync.WaitGroup
}

func newSession(parent context.Context, scr *screen) *session {
	ctx, cancel := context.WithCancelCause(parent)
	return &session{ctx: ctx, cancel: cancel, scr: scr}
}

// goRun runs fn in its own goroutine; what it returns once the session is
// stopping is its business (a process interrupted exits non-zero).
func (s *session) goRun(what string, log *os.File, fn func(ctx context.Context) error) {
	s.wg.Go(func() {
		err := fn(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("exited")
		}
		s.cancel(&failure{what: what, log: log.Name(), err: err})
	})
}

// wait waits until the session is stopping, says why, and waits for
// everything goRun started to return. It is the failure that stopped the
// session, or nil.
func (s *session) wait() error {
	<-s.ctx.Done()
	stopping(s.ctx, s.scr)
	s.wg.Wait()
	var f *failure
	if errors.As(context.Cause(s.ctx), &f) {
		return f
	}
	return nil
}

// logs are the log files of make run's parts, one each, in one directory
// (truncated at every start).
type logs struct {
	dir                                       string
	manager, worker, gateway, apiserver, etcd *os.File
}

// openLogs creates dir and the log files, and sends the manager's log (this
// process's controller-runtime and klog output, the local control plane's
// setup included) to manager.log.
func openLogs(dir string) (*logs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &logs{dir: dir}
	for _, f := range []struct {
		file **os.File
		name string
	}{{&l.manager, "manager.log"}, {&l.worker, "worker.log"}, {&l.gateway, "gateway.log"}, {&l.apiserver, "kube-apiserver.log"}, {&l.etcd, "etcd.log"}} {
		file, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			l.close()
			return nil, fmt.Errorf("creating the log directory: %w", err)
		}
		*f.file = file
	}
	logger := zap.New(zap.UseDevMode(true), zap.WriteTo(l.manager))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	return l, nil
}

// base is the name of a log file in the log directory.
func (l *logs) base(f *os.File) string { return filepath.Base(f.Name()) }

func (l *logs) close() {
	for _, f := range []*os.File{l.manager, l.worker, l.gateway, l.apiserver, l.etcd} {
		if f != nil {
			_ = f.Close()
		}
	}
}
