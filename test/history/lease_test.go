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

package history_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/history"
	"github.com/jobstate-dev/jobstate/pkg/lease"
)

func newLeaseClient(t *testing.T, c client.WithWatch, opts lease.Options) *lease.Client {
	t.Helper()
	lc, err := lease.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// TestLeaseIsLinearizable: 6 holders (a lease.Client each, worker
// credentials, TTL 1s) take turns on one Lease, 10 rounds each: Acquire
// (or, one time in 3, TryAcquire), a hold of 0-5ms (one in 6: 400ms,
// across a renewal), Release — one in 10 with a 1-20ms deadline. Two
// holders give up acquiring after 150ms, two after 500ms, two after 10s.
// The client loses the response of every 7th Lease write stored (at
// most 4): an acquisition whose response is lost leaves the Lease to a
// holder that does not know it holds it, until the TTL passes. A lock
// lost before its release (Lost closed) is recorded as released at an
// unknown time since it was acquired. The history must be linearizable
// as a lock (history.LockModel): one holder at a time, tokens growing.
func TestLeaseIsLinearizable(t *testing.T) {
	const holders, rounds = 6, 10
	ns := env.Namespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "lock"}
	f := &faults{loseEvery: 7, max: 4}
	worker := f.client(env.ClientAs(t, ns, "worker", "worker_role.yaml"))
	giveUp := []time.Duration{150 * time.Millisecond, 500 * time.Millisecond, 10 * time.Second}
	rec := history.NewRecorder()
	var acquired, lostLocks atomic.Int64
	var wg sync.WaitGroup
	for h := range holders {
		c := newLeaseClient(t, worker, lease.Options{
			Identity: fmt.Sprintf("holder-%d", h), TTL: time.Second, AcquireTimeout: giveUp[h/2],
		})
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(h), 3))
			for range rounds {
				op := history.Acquire
				if rnd.IntN(3) == 0 {
					op = history.TryAcquire
				}
				call := rec.Call(h, history.LockInput{Op: op, Key: key.Name, Holder: h})
				var l *lease.Lock
				var err error
				if op == history.Acquire {
					l, err = c.Acquire(t.Context(), key)
				} else {
					l, err = c.TryAcquire(t.Context(), key)
				}
				call.Return(history.AcquireOutput(l, err))
				if err != nil {
					time.Sleep(time.Duration(1+rnd.IntN(5)) * time.Millisecond)
					continue
				}
				acquired.Add(1)
				since := rec.Now()
				hold := time.Duration(rnd.IntN(6)) * time.Millisecond
				if rnd.IntN(6) == 0 {
					hold = 400 * time.Millisecond
				}
				select {
				case <-time.After(hold):
				case <-l.Lost():
				}
				lost := l.Context().Err() != nil
				ctx, cancel := deadline(t.Context(), rnd, 10)
				release := rec.Call(h, history.LockInput{Op: history.Release, Key: key.Name, Holder: h})
				err = l.Release(ctx)
				cancel()
				if !lost {
					release.Return(history.ReleaseOutput(err))
					continue
				}
				// Lost while held: others may have taken it over at any
				// time since it was acquired.
				lostLocks.Add(1)
				rec.Record(porcupine.Operation{
					ClientId: h, Input: history.LockInput{Op: history.Release, Key: key.Name, Holder: h},
					Call: since, Output: history.LockOutput{Outcome: history.Unknown, Err: "lost before its release"}, Return: math.MaxInt64,
				})
			}
		})
	}
	wg.Wait()
	t.Logf("faults: %s; %d acquisitions, %d locks lost while held", f, acquired.Load(), lostLocks.Load())
	if f.lost.Load() == 0 || acquired.Load() < holders {
		t.Errorf("no Lease write had its response lost, or fewer than %d acquisitions: the history exercises too little", holders)
	}
	if got := history.Check(t, history.LockModel(), rec.Operations(), checkTimeout); got != porcupine.Ok {
		t.Errorf("porcupine: %s, want Ok", got)
	}
}

// locker takes a lock once, without waiting: it returns the token and a
// release, or an error (lease.ErrHeld when someone holds it). between runs
// after it has read the Lease.
type locker func(ctx context.Context, key client.ObjectKey, between func()) (token int64, release func(context.Context) error, err error)

// leaseLocker is lease.Client.TryAcquire.
func leaseLocker(c *lease.Client) locker {
	return func(ctx context.Context, key client.ObjectKey, _ func()) (int64, func(context.Context) error, error) {
		l, err := c.TryAcquire(ctx, key)
		if err != nil {
			return 0, nil, err
		}
		return l.Token(), l.Release, nil
	}
}

// unconditionalLocker is the broken variant: it reads the Lease and, if
// nobody holds it, writes itself in as holder with the next token — and
// when that write conflicts, it copies the newer resourceVersion into its
// copy and writes again, so its precondition never protects anything.
func unconditionalLocker(c client.Client, identity string) locker {
	return func(ctx context.Context, key client.ObjectKey, between func()) (int64, func(context.Context) error, error) {
		l := &coordinationv1.Lease{}
		err := c.Get(ctx, key, l)
		between()
		if err != nil {
			return 0, nil, err
		}
		if holder := ptr.Deref(l.Spec.HolderIdentity, ""); holder != "" {
			return 0, nil, &lease.HeldError{Key: key, Holder: holder}
		}
		token := ptr.Deref(l.Spec.LeaseTransitions, 0) + 1
		l.Spec.HolderIdentity, l.Spec.LeaseTransitions = ptr.To(identity), ptr.To(token)
		if err := blindUpdate(ctx, c, l); err != nil {
			return 0, nil, err
		}
		release := func(ctx context.Context) error {
			l.Spec.HolderIdentity = ptr.To("")
			return blindUpdate(ctx, c, l)
		}
		return int64(token), release, nil
	}
}

// blindUpdate writes l, taking the stored resourceVersion after each
// conflict (at most 20 times): a last-writer-wins write.
func blindUpdate(ctx context.Context, c client.Client, l *coordinationv1.Lease) error {
	var err error
	for range 20 {
		if err = c.Update(ctx, l); !apierrors.IsConflict(err) {
			return err
		}
		cur := &coordinationv1.Lease{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(l), cur); err != nil {
			return err
		}
		l.ResourceVersion = cur.ResourceVersion
	}
	return err
}

// TestLeaseTakeRaces: 5 rounds in which 4 holders all try to take the
// lock at once, and whoever got it releases it. Through lease.Client one
// holder wins a round and the others are told it is held; through
// unconditionalLocker, whose holders all read the free Lease before any
// writes, every holder of a round gets the lock (with the same token), and
// porcupine must say Illegal.
func TestLeaseTakeRaces(t *testing.T) {
	const holders, rounds = 4, 5
	for _, tc := range []struct {
		name string
		lock func(t *testing.T, c client.WithWatch, identity string) locker
		want porcupine.CheckResult
	}{
		{
			name: "lease.Client",
			lock: func(t *testing.T, c client.WithWatch, identity string) locker {
				return leaseLocker(newLeaseClient(t, c, lease.Options{Identity: identity, TTL: 5 * time.Second}))
			},
			want: porcupine.Ok,
		},
		{
			name: "read, then take without precondition",
			lock: func(_ *testing.T, c client.WithWatch, identity string) locker {
				return unconditionalLocker(c, identity)
			},
			want: porcupine.Illegal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t)
			key := client.ObjectKey{Namespace: ns, Name: "lock"}
			worker := env.ClientAs(t, ns, "worker", "worker_role.yaml")
			lockers := make([]locker, holders)
			for h := range lockers {
				lockers[h] = tc.lock(t, worker, fmt.Sprintf("holder-%d", h))
			}
			// The Lease exists before the first round, free: the races are
			// over taking it, not creating it.
			rec := history.NewRecorder()
			acquireRelease(t, rec, holders, key, newLeaseClient(t, worker, lease.Options{Identity: "creator", TTL: 5 * time.Second}))
			var won atomic.Int64
			for range rounds {
				start, read := newBarrier(holders), newBarrier(holders)
				var wg sync.WaitGroup
				for h := range holders {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
						defer cancel()
						start.arrive()
						call := rec.Call(h, history.LockInput{Op: history.TryAcquire, Key: key.Name, Holder: h})
						token, release, err := lockers[h](ctx, key, read.arrive)
						out := history.LockOutput{Outcome: history.Done, Token: token}
						if err != nil {
							out = history.AcquireOutput(nil, err)
						}
						call.Return(out)
						if err != nil {
							return
						}
						won.Add(1)
						// Everyone has tried before anyone releases.
						time.Sleep(50 * time.Millisecond)
						call = rec.Call(h, history.LockInput{Op: history.Release, Key: key.Name, Holder: h})
						call.Return(history.ReleaseOutput(release(ctx)))
					})
				}
				wg.Wait()
			}
			t.Logf("%d of %d tries took the lock", won.Load(), holders*rounds)
			if got := history.Check(t, history.LockModel(), rec.Operations(), checkTimeout); got != tc.want {
				t.Errorf("porcupine: %s, want %s", got, tc.want)
			}
		})
	}
}

// acquireRelease acquires and releases the lock key as holder h through
// c, recorded.
func acquireRelease(t *testing.T, rec *history.Recorder, h int, key client.ObjectKey, c *lease.Client) {
	t.Helper()
	call := rec.Call(h, history.LockInput{Op: history.Acquire, Key: key.Name, Holder: h})
	l, err := c.Acquire(t.Context(), key)
	call.Return(history.AcquireOutput(l, err))
	if err != nil {
		t.Fatal(err)
	}
	call = rec.Call(h, history.LockInput{Op: history.Release, Key: key.Name, Holder: h})
	err = l.Release(t.Context())
	call.Return(history.ReleaseOutput(err))
	if err != nil {
		t.Fatal(err)
	}
}
