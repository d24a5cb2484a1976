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
	"encoding/json"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

const (
	// incObjects JobStates take incWriters writers each through one shared
	// Updater, so that their increments are group-committed.
	incObjects, incWriters = 2, 4
	// lockedWriters increment one lockPolicy Lease JobState, each with its
	// own jobstate.Client (identity): every update is a Lease handoff.
	lockedWriters = 3
)

// counterLoad increments counters in status.data of shared JobStates, one
// key per writer: through one update.Updater (group commit), or, under
// lockPolicy Lease, through a jobstate.Client per writer.
type counterLoad struct {
	s *soak
	// kind names the calls and the ledger row.
	kind             string
	objects, writers int
	lockPolicy       jobstatev1alpha1.LockPolicy
	// short gives some calls a short deadline (see soak.deadline).
	short bool

	updater *update.Updater[*jobstatev1alpha1.JobState]
	// incs are the writers' calls, by counter name.
	incs   map[string]func(ctx context.Context) error
	ledger counterLedger
}

func (l *counterLoad) key(i int) client.ObjectKey {
	return client.ObjectKey{Namespace: l.s.ns, Name: fmt.Sprintf("%s-%d", l.kind, i)}
}

// setup creates the JobStates and the writers' calls.
func (l *counterLoad) setup(ctx context.Context) error {
	u, err := update.New[*jobstatev1alpha1.JobState](l.s.c, update.Options{Status: true})
	if err != nil {
		return err
	}
	l.updater, l.incs = u, map[string]func(ctx context.Context) error{}
	for i := range l.objects {
		key := l.key(i)
		js := &jobstatev1alpha1.JobState{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec:       jobstatev1alpha1.JobStateSpec{LockPolicy: l.lockPolicy},
		}
		if err := l.s.c.Create(ctx, js); err != nil {
			return fmt.Errorf("creating JobState %s: %w", key, err)
		}
		for w := range l.writers {
			field := fmt.Sprintf("w%d", w)
			inc, err := l.incrementer(key, field)
			if err != nil {
				return err
			}
			l.incs[key.Name+"/"+field] = inc
		}
	}
	return nil
}

// incrementer returns the call that increments status.data[field] of key
// once.
func (l *counterLoad) incrementer(key client.ObjectKey, field string) (func(ctx context.Context) error, error) {
	if l.lockPolicy == jobstatev1alpha1.LockPolicyLease {
		jobs, err := jobstate.New(l.s.c, jobstate.Options{Identity: fmt.Sprintf("soak-%s-%s-%s", l.kind, key.Name, field)})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			_, err := jobs.Update(ctx, key, increment(field))
			return err
		}, nil
	}
	if l.s.o.broken && l.short {
		return l.brokenIncrementer(key, field), nil
	}
	// The writer's own copy, carried from one Update to the next.
	js := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	return func(ctx context.Context) error { return l.updater.Update(ctx, js, increment(field)) }, nil
}

// brokenIncrementer increments the way a careless client would, to show
// that the ledger catches lost writes (-broken): read, increment, and
// replace status.data with a JSON patch that has no resourceVersion
// precondition, so a concurrent writer's increment is overwritten.
func (l *counterLoad) brokenIncrementer(key client.ObjectKey, field string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		js := &jobstatev1alpha1.JobState{}
		if err := l.s.c.Get(ctx, key, js); err != nil {
			return err
		}
		if err := increment(field)(js); err != nil {
			return err
		}
		patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status/data", "value": js.Status.Data}})
		if err != nil {
			return err
		}
		return l.s.c.Status().Patch(ctx, js, client.RawPatch(types.JSONPatchType, patch))
	}
}

// increment is the updateAction status.data[field] += 1.
func increment(field string) update.Action[*jobstatev1alpha1.JobState] {
	return func(js *jobstatev1alpha1.JobState) error {
		data, err := jobstate.Data(js)
		if err != nil {
			return err
		}
		n, _ := data[field].(float64)
		data[field] = n + 1
		return jobstate.SetData(js, data)
	}
}

func (l *counterLoad) start(wg *sync.WaitGroup) {
	for counter, inc := range l.incs {
		wg.Go(func() {
			for l.s.running() {
				timeout := callTimeout
				if l.short {
					timeout = l.s.deadline()
				}
				o, _ := l.s.call(l.s.ctx, l.kind, timeout, inc)
				l.ledger.note(counter, o)
				l.s.pause()
			}
		})
	}
}

// verify reads every counter live and checks it against the ledger.
func (l *counterLoad) verify(ctx context.Context) ([]ledgerRow, []check) {
	values := map[string]int64{}
	var unverified int64
	for i := range l.objects {
		js := &jobstatev1alpha1.JobState{}
		if err := l.s.env.Client.Get(ctx, l.key(i), js); err != nil {
			unverified++
			continue
		}
		data, err := jobstate.Data(js)
		if err != nil {
			unverified++
			continue
		}
		for field, v := range data {
			n, _ := v.(float64)
			values[js.Name+"/"+field] = int64(n)
		}
	}
	row := l.ledger.check(l.kind, values)
	row.unverified = unverified
	return []ledgerRow{row}, nil
}
