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
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

const (
	// leaseKeys locks are handed between leaseHolders holders, each a
	// lease.Client with its own identity.
	leaseKeys, leaseHolders = 2, 3
	// maxHold bounds how long a holder keeps a lock.
	maxHold = 3 * time.Millisecond
	// tokenAnnotation keeps the fencing token on the guarded ConfigMaps.
	tokenAnnotation = "soak.jobstate.dev/token"
)

// leaseLoad hands locks between holders. Under the lock a holder
// increments its own key of the lock's ConfigMap with update.Fenced and
// the lock's token (counted in the "fenced" ledger row). Mutual exclusion
// is checked in process: a holder counts itself in after Acquire returns
// and out before Release starts, so a second holder counted in at once is
// an overlap. One acquisition in -short-every has a short deadline and,
// if it succeeds anyway, is released at once.
type leaseLoad struct {
	s       *soak
	holders []*lease.Client
	updater *update.Updater[*corev1.ConfigMap]

	held     [leaseKeys]atomic.Int32
	overlaps atomic.Int64
	// releasing is when a Release of each lock was last called (UnixNano).
	releasing [leaseKeys]atomic.Int64
	ledger    counterLedger
}

func (l *leaseLoad) key(k int) client.ObjectKey {
	return client.ObjectKey{Namespace: l.s.ns, Name: fmt.Sprintf("lock-%d", k)}
}

func (l *leaseLoad) setup(ctx context.Context) error {
	for h := range leaseHolders {
		c, err := lease.New(l.s.c, lease.Options{Identity: fmt.Sprintf("soak-holder-%d", h)})
		if err != nil {
			return err
		}
		l.holders = append(l.holders, c)
	}
	var err error
	if l.updater, err = update.New[*corev1.ConfigMap](l.s.c, update.Options{}); err != nil {
		return err
	}
	for k := range leaseKeys {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: l.s.ns, Name: l.key(k).Name}}
		if err := l.s.c.Create(ctx, cm); err != nil {
			return fmt.Errorf("creating ConfigMap %s: %w", cm.Name, err)
		}
	}
	return nil
}

func (l *leaseLoad) start(wg *sync.WaitGroup) {
	for h, holder := range l.holders {
		wg.Go(func() {
			for l.s.running() {
				l.cycle(holder, h, rand.IntN(leaseKeys))
				l.s.pause()
			}
		})
	}
}

// cycle acquires lock k, increments the holder's counter under it and
// releases it.
func (l *leaseLoad) cycle(holder *lease.Client, h, k int) {
	if timeout := l.s.deadline(); timeout < callTimeout {
		l.shortAcquire(holder, k, timeout)
		return
	}
	// The lock lives as long as the context Acquire was given: hold, not
	// the call's own, which ends when the call returns.
	hold, cancel := context.WithTimeout(l.s.ctx, callTimeout)
	defer cancel()
	begin := time.Now()
	var lock *lease.Lock
	o, _ := l.s.call(hold, "acquire", callTimeout, func(context.Context) error {
		var err error
		lock, err = holder.Acquire(hold, l.key(k))
		return err
	})
	if o != stored {
		return
	}
	if last := l.releasing[k].Load(); last > begin.UnixNano() {
		// Waited for a holder to release: the handoff, from its Release
		// called to this Acquire returned.
		l.s.stats.record("handoff", time.Since(time.Unix(0, last)), stored, "", nil)
	}
	l.guarded(lock, h, k)
	l.releasing[k].Store(time.Now().UnixNano())
	_, _ = l.s.call(l.s.ctx, "release", callTimeout, lock.Release)
}

// guarded is the holder's work under lock k: count itself in, increment
// its counter with the lock's token, hold a moment, count itself out.
func (l *leaseLoad) guarded(lock *lease.Lock, h, k int) {
	if l.held[k].Add(1) > 1 {
		l.overlaps.Add(1)
	}
	defer l.held[k].Add(-1)
	field := fmt.Sprintf("h%d", h)
	o, _ := l.s.call(lock.Context(), "fenced", callTimeout, func(ctx context.Context) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: l.s.ns, Name: l.key(k).Name}}
		return l.updater.Update(ctx, cm, update.Fenced(lock.Token(), update.AnnotationToken[*corev1.ConfigMap](tokenAnnotation), incrementKey(field)))
	})
	l.ledger.note(l.key(k).Name+"/"+field, o)
	sleepCtx(lock.Context(), rand.N(maxHold))
}

// shortAcquire acquires lock k under a short deadline, which also ends
// the lock if Acquire got it: what a caller that gives up leaves behind
// must not keep the others waiting. It is released at once all the same.
func (l *leaseLoad) shortAcquire(holder *lease.Client, k int, timeout time.Duration) {
	var lock *lease.Lock
	o, _ := l.s.call(l.s.ctx, "acquire", timeout, func(ctx context.Context) error {
		var err error
		lock, err = holder.Acquire(ctx, l.key(k))
		return err
	})
	if o == stored {
		_, _ = l.s.call(l.s.ctx, "release", callTimeout, lock.Release)
	}
}

// incrementKey is the updateAction data[field] += 1 on a ConfigMap.
func incrementKey(field string) update.Action[*corev1.ConfigMap] {
	return func(cm *corev1.ConfigMap) error {
		n, _ := strconv.Atoi(cm.Data[field])
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[field] = strconv.Itoa(n + 1)
		return nil
	}
}

// verify reads the guarded counters and reports the overlaps.
func (l *leaseLoad) verify(ctx context.Context) ([]ledgerRow, []check) {
	values := map[string]int64{}
	var unverified int64
	for k := range leaseKeys {
		cm := &corev1.ConfigMap{}
		if err := l.s.env.Client.Get(ctx, l.key(k), cm); err != nil {
			unverified++
			continue
		}
		for field, v := range cm.Data {
			n, _ := strconv.ParseInt(v, 10, 64)
			values[cm.Name+"/"+field] = n
		}
	}
	row := l.ledger.check("fenced", values)
	row.unverified = unverified
	return []ledgerRow{row}, []check{{name: "lock overlaps (two holders of one lock at once)", value: l.overlaps.Load(), mustBeZero: true}}
}
