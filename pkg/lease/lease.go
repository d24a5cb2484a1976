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

package lease

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/update"
)

// Defaults of Options.
const (
	DefaultTTL = 15 * time.Second
)

// Options configure a Client. They are validated by New.
type Options struct {
	// Identity names the holder in the Lease's holderIdentity; required and
	// unique per holder (two holders with one identity are one holder).
	Identity string

	// TTL is the Lease's leaseDurationSeconds: how long after the holder's
	// last renewal, on a waiter's own clock, a waiter may take the lock
	// over. Whole seconds, at least 1s. Default DefaultTTL.
	TTL time.Duration

	// RenewInterval is how often the holder renews: at most TTL/3, so that
	// at least one renewal falls well before the renew deadline. Default
	// TTL/3. A holder that cannot renew for TTL - RenewInterval declares the
	// lock lost.
	RenewInterval time.Duration

	// AcquireTimeout bounds Acquire. Zero: only the context bounds it.
	AcquireTimeout time.Duration

	// Clock is the time source of TTLs, renewals and observed times (the
	// few-millisecond backoff between a holder's writes after a conflict
	// sleeps on the real clock). Default: the real clock.
	Clock clock.WithTickerAndDelayedExecution

	// Labels are set on Leases this Client creates.
	Labels map[string]string
}

// ErrTimeout is matched (errors.Is) by *TimeoutError.
var ErrTimeout = errors.New("timed out acquiring lock")

// ErrHeld is matched (errors.Is) by *HeldError.
var ErrHeld = errors.New("lock is held")

// TimeoutError: Acquire gave up because its timeout or context ended.
type TimeoutError struct {
	// Key names the Lease, Holder its holder when Acquire gave up.
	Key    client.ObjectKey
	Holder string
	Waited time.Duration
	// Err is the context's error.
	Err error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s waiting for lock %s: held by %q", e.Waited.Round(time.Millisecond), e.Key, e.Holder)
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns the context's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// HeldError: TryAcquire found the lock held by someone else.
type HeldError struct {
	Key    client.ObjectKey
	Holder string
}

func (e *HeldError) Error() string { return fmt.Sprintf("lock %s is held by %q", e.Key, e.Holder) }

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Client acquires locks for one holder identity, in any namespace: each
// call names its Lease by a client.ObjectKey. Share one per process and
// identity.
type Client struct {
	c    client.WithWatch
	opts Options
	// renewals and releases write the Leases this Client holds; see
	// Lock.renewOnce and Lock.release.
	renewals, releases *update.Updater[*coordinationv1.Lease]

	mu       sync.Mutex
	observed map[client.ObjectKey]observation
	// watchRefused logs, once, that RBAC refuses this Client's watches.
	watchRefused sync.Once
}

// maxObserved bounds the observations a Client keeps.
const maxObserved = 4096

// releaseAttempts bounds the writes of one Release.
const releaseAttempts = 5

// observation is when this Client first saw a Lease at a resourceVersion,
// on its own clock: the start of the TTL of a holder that has gone silent.
// It is kept across calls so that TryAcquire, called again and again, can
// see a Lease expire.
type observation struct {
	resourceVersion string
	at              time.Time
}

// New validates opts and returns a Client for Leases in any namespace,
// read, watched and written through c, which must read live from the API
// server (not from an informer cache).
func New(c client.WithWatch, opts Options) (*Client, error) {
	if c == nil {
		return nil, errors.New("lease: client must not be nil")
	}
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	lc := &Client{c: c, opts: opts, observed: map[client.ObjectKey]observation{}}
	// A renewal is bounded by its context (the renew deadline), not by a
	// count; a release gives up after releaseAttempts. Their conflict
	// backoffs (a few milliseconds) sleep on the real clock: opts.Clock is
	// the clock of TTLs and renew intervals, which a test may never step
	// (a Release, called without a deadline, would wait on it forever).
	lc.renewals, err = update.New[*coordinationv1.Lease](c, update.Options{MaxAttempts: math.MaxInt32})
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	lc.releases, err = update.New[*coordinationv1.Lease](c, update.Options{MaxAttempts: releaseAttempts})
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return lc, nil
}

// withDefaults validates opts and fills in the defaults the field comments
// name.
func withDefaults(opts Options) (Options, error) {
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.RenewInterval == 0 {
		opts.RenewInterval = opts.TTL / 3
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	switch {
	case opts.Identity == "":
		return opts, errors.New("lease: Options.Identity is required: it is the Lease's holderIdentity and must be unique per holder")
	case opts.TTL < time.Second || opts.TTL%time.Second != 0:
		return opts, fmt.Errorf("lease: Options.TTL must be whole seconds, at least 1s (leaseDurationSeconds), got %s", opts.TTL)
	case opts.RenewInterval <= 0 || 3*opts.RenewInterval > opts.TTL:
		return opts, fmt.Errorf("lease: Options.RenewInterval must be positive and at most TTL/3 (%s), so that a renewal falls well before the renew deadline TTL - RenewInterval; got %s", opts.TTL/3, opts.RenewInterval)
	case opts.AcquireTimeout < 0:
		return opts, fmt.Errorf("lease: Options.AcquireTimeout must not be negative, got %s", opts.AcquireTimeout)
	}
	return opts, nil
}

// Identity is the holder identity of this Client.
func (c *Client) Identity() string { return c.opts.Identity }
