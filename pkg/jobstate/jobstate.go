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

package jobstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/lifecycle"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// Options configure a Client.
type Options struct {
	// Identity names this worker in status.holder; required. The pod name
	// is a good choice. Two workers must never share one.
	Identity string

	// Clock gives the time written to the status. Default: the real clock.
	Clock clock.PassiveClock

	// Recorder, if set, records a Kubernetes Event on the JobState for every
	// transition this worker makes (Claimed, Succeeded, WorkerFailed, ...;
	// not for heartbeats). The controller records its own.
	Recorder events.EventRecorder

	// Update tunes the retries of every write (backoff, attempts, timeout,
	// live reader). Status is set by the Client.
	Update update.Options

	// Lease tunes the locks taken for JobStates with spec.lockPolicy Lease
	// (TTL, renew interval, acquire timeout). Identity is set by the Client.
	Lease lease.Options

	// LeaseClient creates, watches and updates those Leases, in every
	// namespace. Default: the client given to New, if it can watch
	// (client.WithWatch).
	LeaseClient client.WithWatch
}

// Client changes JobStates on behalf of one worker. It is safe for
// concurrent use; concurrent calls on the same job are group-committed.
type Client struct {
	status   *update.Updater[*jobstatev1alpha1.JobState]
	spec     *update.Updater[*jobstatev1alpha1.JobState]
	reader   client.Reader
	identity string
	clock    clock.PassiveClock
	recorder events.EventRecorder

	locks    *lease.Client // nil without a LeaseClient
	mu       sync.Mutex
	policies map[client.ObjectKey]policy
}

// maxPolicies bounds the policies a Client remembers.
const maxPolicies = 4096

// policy is what a Client remembers of a JobState to choose its write path;
// lockPolicy is immutable, and every write re-checks it on the live object.
type policy struct {
	lockPolicy jobstatev1alpha1.LockPolicy
	uid        types.UID
}

// Attempt is a claimed attempt of a job: what Claim returns and Heartbeat,
// Succeed and Fail present.
type Attempt struct {
	// Key names the JobState.
	Key client.ObjectKey
	lifecycle.Fence
}

// New validates opts and returns a Client writing through c, which must read
// live from the API server (a plain client.New client does; a manager's
// cached client does not — set Options.Update.LiveReader to
// mgr.GetAPIReader() then).
func New(c client.Client, opts Options) (*Client, error) {
	if opts.Identity == "" {
		return nil, errors.New("jobstate: Options.Identity is required: it is written to status.holder and must be unique per worker")
	}
	if len(opts.Identity) > jobstatev1alpha1.MaxHolderLength {
		return nil, fmt.Errorf("jobstate: Options.Identity is %d characters, status.holder allows %d", len(opts.Identity), jobstatev1alpha1.MaxHolderLength)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	statusOpts := opts.Update
	statusOpts.Status = true
	status, err := update.New[*jobstatev1alpha1.JobState](c, statusOpts)
	if err != nil {
		return nil, fmt.Errorf("jobstate: %w", err)
	}
	specOpts := opts.Update
	specOpts.Status = false
	spec, err := update.New[*jobstatev1alpha1.JobState](c, specOpts)
	if err != nil {
		return nil, fmt.Errorf("jobstate: %w", err)
	}
	locks, err := newLocks(c, opts)
	if err != nil {
		return nil, err
	}
	reader := opts.Update.LiveReader
	if reader == nil {
		reader = c
	}
	return &Client{
		status: status, spec: spec, reader: reader, identity: opts.Identity, clock: opts.Clock, recorder: opts.Recorder,
		locks: locks, policies: map[client.ObjectKey]policy{},
	}, nil
}

// newLocks returns the lease.Client of opts.LeaseClient (by default c, if it
// can watch), or nil if there is none.
func newLocks(c client.Client, opts Options) (*lease.Client, error) {
	if opts.LeaseClient == nil {
		opts.LeaseClient, _ = c.(client.WithWatch)
	}
	if opts.LeaseClient == nil {
		return nil, nil
	}
	leaseOpts := opts.Lease
	leaseOpts.Identity = opts.Identity
	locks, err := lease.New(opts.LeaseClient, leaseOpts)
	if err != nil {
		return nil, fmt.Errorf("jobstate: %w", err)
	}
	return locks, nil
}

// Claim starts the next attempt of a Pending job for this worker: phase
// Running, holder this worker, attempt+1, startTime on the first claim. It
// fails with lifecycle.ErrIllegalTransition if the job is not Pending (for
// example another worker claimed it first) and lifecycle.ErrBackingOff while
// a retry backoff lasts.
func (c *Client) Claim(ctx context.Context, key client.ObjectKey) (Attempt, error) {
	var fence lifecycle.Fence
	js, err := c.Update(ctx, key, func(js *jobstatev1alpha1.JobState) error {
		var err error
		fence, err = lifecycle.DoClaim(js, c.identity, c.clock.Now())
		return err
	})
	if err != nil {
		return Attempt{}, fmt.Errorf("claiming JobState %s: %w", key, err)
	}
	c.record(js, "Claim")
	return Attempt{Key: key, Fence: fence}, nil
}

// Heartbeat reports that attempt a is alive, with its progress (0-100).
// Each top-level key of data replaces the same key of status.data; a nil
// value removes the key. data may be nil.
func (c *Client) Heartbeat(ctx context.Context, a Attempt, progress int32, data map[string]any) error {
	_, err := c.Update(ctx, a.Key, func(js *jobstatev1alpha1.JobState) error {
		if err := lifecycle.DoHeartbeat(js, a.Fence, progress, c.clock.Now()); err != nil {
			return err
		}
		return MergeData(js, data)
	})
	if err != nil {
		return fmt.Errorf("heartbeat of JobState %s: %w", a.Key, err)
	}
	return nil
}

// Succeed finishes the job successfully; message may be empty.
func (c *Client) Succeed(ctx context.Context, a Attempt, message string) error {
	js, err := c.Update(ctx, a.Key, func(js *jobstatev1alpha1.JobState) error {
		return lifecycle.DoSucceed(js, a.Fence, message, c.clock.Now())
	})
	if err != nil {
		return fmt.Errorf("finishing JobState %s: %w", a.Key, err)
	}
	c.record(js, "Succeed")
	return nil
}

// Fail ends attempt a with a failure: the job goes back to Pending for a
// retry after a backoff, or fails for good (BackoffLimitExceeded) once
// spec.backoffLimit retries were made — on the first failure with
// backoffLimit 0.
func (c *Client) Fail(ctx context.Context, a Attempt, message string) error {
	js, err := c.Update(ctx, a.Key, func(js *jobstatev1alpha1.JobState) error {
		return lifecycle.DoFail(js, a.Fence, message, c.clock.Now())
	})
	if err != nil {
		return fmt.Errorf("failing JobState %s: %w", a.Key, err)
	}
	c.record(js, "Fail")
	return nil
}

// Cancel cancels a job that has not finished: it sets spec.cancel (as
// `kubectl patch` would) and moves the status to Cancelled at once, without
// waiting for the controller. It fails with lifecycle.ErrIllegalTransition
// if the job already finished.
func (c *Client) Cancel(ctx context.Context, key client.ObjectKey, message string) error {
	js, err := c.write(ctx, key, nil, c.spec, func(js *jobstatev1alpha1.JobState) error {
		if err := lifecycle.Allowed(js.Status.Phase, lifecycle.Cancel); err != nil {
			return err
		}
		js.Spec.Cancel = true
		return nil
	})
	if err == nil {
		js, err = c.Update(ctx, key, func(js *jobstatev1alpha1.JobState) error {
			return lifecycle.DoCancel(js, message, c.clock.Now())
		})
	}
	if err != nil {
		return fmt.Errorf("cancelling JobState %s: %w", key, err)
	}
	c.record(js, "Cancel")
	return nil
}

// Update applies action to the JobState's status (see update.Updater.Update)
// and returns the object as stored. Under spec.lockPolicy Lease it holds the
// job's Lease around the update and fences the write with the lock's token
// (status.lockToken).
func (c *Client) Update(ctx context.Context, key client.ObjectKey, action update.Action[*jobstatev1alpha1.JobState]) (*jobstatev1alpha1.JobState, error) {
	return c.write(ctx, key, nil, c.status, action)
}

// UpdateFrom is Update starting from from, a copy the caller has already
// read — from an informer cache, say — instead of reading the JobState live
// first: when from is current, the update costs one write and no read. Its
// resourceVersion is the first write's precondition, so a stale copy costs
// one conflict and a live re-read, never a lost write; its lockPolicy
// (immutable) and UID choose the write path, and are checked again on every
// copy the action is applied to. from is not modified.
func (c *Client) UpdateFrom(ctx context.Context, from *jobstatev1alpha1.JobState, action update.Action[*jobstatev1alpha1.JobState]) (*jobstatev1alpha1.JobState, error) {
	return c.write(ctx, client.ObjectKeyFromObject(from), from, c.status, action)
}

// LeaseName is the Lease that guards the JobState name under lockPolicy
// Lease.
func LeaseName(name string) string { return "jobstate." + name }

var errPolicyChanged = errors.New("JobState lockPolicy differs from the one the write was prepared for")

// write applies action through u on the path the JobState's lockPolicy
// asks for: optimistic, or under its Lease. from, if not nil, is the copy
// the first try starts from (see UpdateFrom).
func (c *Client) write(ctx context.Context, key client.ObjectKey, from *jobstatev1alpha1.JobState, u *update.Updater[*jobstatev1alpha1.JobState], action update.Action[*jobstatev1alpha1.JobState]) (*jobstatev1alpha1.JobState, error) {
	for range 3 {
		p, read, err := c.policyFrom(ctx, key, from)
		if err != nil {
			return nil, err
		}
		from = nil // after a changed policy, only a live read decides
		guarded := func(js *jobstatev1alpha1.JobState) error {
			// The remembered policy may belong to a deleted namesake.
			if lockPolicy(js) != p.lockPolicy || js.UID != p.uid {
				return errPolicyChanged
			}
			return action(js)
		}
		js := read // carried: its resourceVersion guards the write like a fresh read
		if js == nil {
			js = &jobstatev1alpha1.JobState{}
			js.Namespace, js.Name = key.Namespace, key.Name
		}
		if p.lockPolicy == jobstatev1alpha1.LockPolicyLease {
			err = c.withLock(ctx, key, p.uid, func(ctx context.Context, token int64) error {
				if u == c.status {
					return u.Update(ctx, js, update.Fenced(token, LockToken, guarded))
				}
				return u.Update(ctx, js, guarded)
			})
		} else {
			err = u.Update(ctx, js, guarded)
		}
		if errors.Is(err, errPolicyChanged) {
			c.forget(key)
			continue
		}
		if err != nil {
			return nil, err
		}
		return js, nil
	}
	return nil, fmt.Errorf("updating JobState %s: %w", key, errPolicyChanged)
}

// LockToken is where a JobState keeps the fencing token of its last
// Lease-guarded write (status.lockToken), for update.Fenced.
var LockToken = update.TokenField[*jobstatev1alpha1.JobState]{
	Get: func(js *jobstatev1alpha1.JobState) (int64, error) { return js.Status.LockToken, nil },
	Set: func(js *jobstatev1alpha1.JobState, token int64) { js.Status.LockToken = token },
}

// withLock runs fn while holding the JobState's Lease, with a context that
// ends if the lock is lost.
func (c *Client) withLock(ctx context.Context, key client.ObjectKey, uid types.UID, fn func(ctx context.Context, token int64) error) error {
	if c.locks == nil {
		return errors.New("jobstate: a JobState with lockPolicy Lease needs a client that can watch Leases: set Options.LeaseClient")
	}
	owner := &jobstatev1alpha1.JobState{}
	owner.Namespace, owner.Name, owner.UID = key.Namespace, key.Name, uid
	leaseKey := client.ObjectKey{Namespace: key.Namespace, Name: LeaseName(key.Name)}
	lock, err := c.locks.Acquire(ctx, leaseKey, lease.WithOwner(owner))
	if err != nil {
		return fmt.Errorf("locking JobState %s (lockPolicy Lease): %w", key, err)
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(lock.Context(), cancel)()
	err = fn(ctx, lock.Token())
	var stale *update.StaleTokenError
	if errors.As(err, &stale) {
		// We hold the lock, yet the JobState carries a larger token: the
		// Lease was deleted and created anew, restarting its count. Raise
		// the token past the stored one and try once more. (A holder that
		// lost the lock fails to raise it.)
		if raiseErr := lock.RaiseToken(ctx, stale.Stored); raiseErr != nil {
			return errors.Join(err, raiseErr)
		}
		err = fn(ctx, lock.Token())
	}
	return err
}

// policy returns the remembered lockPolicy of the JobState, reading it live
// the first time — and then also the object it read, for the update to
// carry instead of reading it again.
func (c *Client) policy(ctx context.Context, key client.ObjectKey) (policy, *jobstatev1alpha1.JobState, error) {
	c.mu.Lock()
	p, ok := c.policies[key]
	c.mu.Unlock()
	if ok {
		return p, nil, nil
	}
	js := &jobstatev1alpha1.JobState{}
	if err := c.reader.Get(ctx, key, js); err != nil {
		return policy{}, nil, fmt.Errorf("reading JobState %s: %w", key, err)
	}
	p = policy{lockPolicy: lockPolicy(js), uid: js.UID}
	c.remember(key, p)
	return p, js, nil
}

// policyFrom is policy, taken from from when it is not nil: from is then
// also the object the update carries. A policy taken from a stale copy is
// corrected by the guard in write, which checks it on every copy the
// action is applied to.
func (c *Client) policyFrom(ctx context.Context, key client.ObjectKey, from *jobstatev1alpha1.JobState) (policy, *jobstatev1alpha1.JobState, error) {
	if from == nil || from.ResourceVersion == "" {
		return c.policy(ctx, key)
	}
	p := policy{lockPolicy: lockPolicy(from), uid: from.UID}
	c.remember(key, p)
	return p, from.DeepCopy(), nil
}

// remember records p as key's policy.
func (c *Client) remember(key client.ObjectKey, p policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.policies) >= maxPolicies {
		clear(c.policies) // re-reading is only slower, never wrong
	}
	c.policies[key] = p
}

func (c *Client) forget(key client.ObjectKey) {
	c.mu.Lock()
	delete(c.policies, key)
	c.mu.Unlock()
}

func lockPolicy(js *jobstatev1alpha1.JobState) jobstatev1alpha1.LockPolicy {
	if js.Spec.LockPolicy == "" {
		return jobstatev1alpha1.LockPolicyOptimistic
	}
	return js.Spec.LockPolicy
}

// record emits the Event of the transition just written to js.
func (c *Client) record(js *jobstatev1alpha1.JobState, action string) {
	if c.recorder == nil {
		return
	}
	eventType := corev1.EventTypeNormal
	if js.Status.Phase == jobstatev1alpha1.PhaseFailed || js.Status.Reason == jobstatev1alpha1.ReasonWorkerFailed {
		eventType = corev1.EventTypeWarning
	}
	note := js.Status.Message
	if !strings.Contains(note, c.identity) {
		note += " (by " + c.identity + ")"
	}
	c.recorder.Eventf(js, nil, eventType, js.Status.Reason, action, "%s", note)
}

// Data decodes status.data; an unset data is an empty map.
func Data(js *jobstatev1alpha1.JobState) (map[string]any, error) {
	data := map[string]any{}
	if js.Status.Data == nil || len(js.Status.Data.Raw) == 0 {
		return data, nil
	}
	if err := json.Unmarshal(js.Status.Data.Raw, &data); err != nil {
		return nil, fmt.Errorf("status.data of JobState %s is not a JSON object: %w", client.ObjectKeyFromObject(js), err)
	}
	return data, nil
}

// MaxDataBytes bounds status.data, encoded as JSON. The CRD cannot (the
// field is free-form), and every later write of the JobState carries it:
// past about 1.5 MiB etcd refuses the object without saying why.
const MaxDataBytes = 512 << 10

// ErrDataTooLarge matches every *DataTooLargeError with errors.Is.
var ErrDataTooLarge = errors.New("status.data too large")

// DataTooLargeError: a write would make status.data larger than
// MaxDataBytes. Nothing was written.
type DataTooLargeError struct {
	Key  client.ObjectKey
	Size int
}

func (e *DataTooLargeError) Error() string {
	return fmt.Sprintf("status.data of JobState %s would be %d bytes, more than %d: keep large data elsewhere and a reference in status.data", e.Key, e.Size, MaxDataBytes)
}

// Is reports whether target is ErrDataTooLarge.
func (e *DataTooLargeError) Is(target error) bool { return target == ErrDataTooLarge }

// SetData replaces status.data with data. It fails with a
// *DataTooLargeError, leaving js unchanged, if data encodes to more than
// MaxDataBytes.
func SetData(js *jobstatev1alpha1.JobState, data map[string]any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding status.data of JobState %s: %w", client.ObjectKeyFromObject(js), err)
	}
	if len(raw) > MaxDataBytes {
		return &DataTooLargeError{Key: client.ObjectKeyFromObject(js), Size: len(raw)}
	}
	js.Status.Data = &runtime.RawExtension{Raw: raw}
	return nil
}

// MergeData replaces each top-level key of status.data present in patch; a
// nil value removes the key. An empty patch changes nothing.
func MergeData(js *jobstatev1alpha1.JobState, patch map[string]any) error {
	if len(patch) == 0 {
		return nil
	}
	data, err := Data(js)
	if err != nil {
		return err
	}
	for k, v := range patch {
		if v == nil {
			delete(data, k)
		} else {
			data[k] = v
		}
	}
	return SetData(js, data)
}
