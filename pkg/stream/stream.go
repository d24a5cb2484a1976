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

package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// NoStream is the version of a stream without events. As
// AppendOptions.ExpectedVersion it requires the stream not to exist yet.
const NoStream int64 = -1

// EventData is an event to append.
type EventData struct {
	// ID is a UUID identifying the event; empty: one is generated. Give
	// your own to make a retried Append idempotent.
	ID string
	// Type names what happened, e.g. "Deposited" (1 to 128 characters).
	Type string
	// Data is the payload: anything that marshals to a JSON object (a
	// struct, a map, or json.RawMessage). nil is {}.
	Data any
	// Metadata is optional: anything that marshals to a JSON object.
	Metadata any
}

// RecordedEvent is a committed event.
type RecordedEvent struct {
	Stream         string
	ID             string
	Type           string
	Data           json.RawMessage
	Metadata       json.RawMessage
	Position       int64
	GlobalPosition GlobalPosition
	// Time is when the appending client wrote the event, by its clock.
	Time time.Time
}

// AppendOptions are the expectations an Append checks atomically with
// writing. The zero value appends unconditionally.
type AppendOptions struct {
	// ExpectedVersion, if set, is the version the stream must be at: NoStream
	// (-1) for a stream that must not exist yet (have no events), N >= 0
	// for one whose last event is at position N. Otherwise the Append fails
	// with a *VersionConflictError.
	ExpectedVersion *int64
	// StreamExists requires the stream to have at least one event; otherwise
	// the Append fails with a *NotFoundError.
	StreamExists bool
	// Annotations are set on the stream's object if this Append creates it,
	// and never changed afterwards (the gateway records a stream's
	// original name this way).
	Annotations map[string]string
}

// ExpectVersion returns AppendOptions requiring the stream to be at v
// (NoStream: not to exist).
func ExpectVersion(v int64) AppendOptions { return AppendOptions{ExpectedVersion: &v} }

// AppendResult says where an Append's events are.
type AppendResult struct {
	// Version is the stream's version after the append: the position of its
	// last event.
	Version int64
	// Positions and GlobalPositions of the appended events, in order.
	Positions       []int64
	GlobalPositions []GlobalPosition
	// Duplicate is true when the events were already stored by an earlier
	// Append with the same ids (a retry), or by this Append's own write
	// whose response was lost; nothing new was stored, and the positions
	// are the original ones.
	Duplicate bool
}

// Options configure a Client. The zero value is valid.
type Options struct {
	// Clock stamps events' time. Default: the real clock.
	Clock clock.PassiveClock
	// Update configures the update library under Append (backoff, attempts,
	// timeout, LiveReader: set it to mgr.GetAPIReader() when c is a
	// manager's cached client). Status and CreateIfMissing are the
	// package's to set. Without MaxAttempts or Timeout, an Append retries
	// conflicts for up to DefaultAppendTimeout: an unconditional append to
	// a busy stream should wait its turn, not fail. Timeout also bounds the
	// wait for a full head to be sealed, and Clock is what that wait, like
	// the library's backoff, sleeps on.
	Update update.Options
	// SegmentCacheSize is the number of sealed segments kept in memory
	// (they never change). Default 128.
	SegmentCacheSize int
	// Sealer makes this Client's appends seal a full head themselves. Only
	// the sealer identity may seal (the EventStream controller's, see
	// config/admission), so leave it false anywhere else: the controller
	// seals every stream as its head fills, and an append that finds the
	// head full waits for it (ErrHeadFull if it waits in vain).
	Sealer bool
}

// Client appends to and reads EventStreams in any namespace: each call names
// its stream by a client.ObjectKey. It is safe for concurrent use; share one
// per process (and per identity: a Sealer and a worker are two) so that
// concurrent appends to a stream are group-committed.
type Client struct {
	c       client.Client
	reader  client.Reader
	clock   clock.PassiveClock
	updater *update.Updater[*jobstatev1alpha1.EventStream]
	sealer  bool
	// waitFull bounds how long an Append waits for a full head to be
	// sealed: Options.Update.Timeout, or DefaultAppendTimeout. It waits on
	// sleeps: Options.Update.Clock, what the update library's backoff
	// sleeps on too.
	waitFull time.Duration
	sleeps   clock.Clock
	segments *lru.Cache
	// heads holds the head each stream had after this Client's last write
	// to it, by the stream's client.ObjectKey: the next Append starts from
	// it without reading (a stale one costs a conflict and a live re-read,
	// as the update library does).
	heads *lru.Cache
}

// New returns a Client for the EventStreams in every namespace, writing
// through c. c must read live from the API server (or set
// Options.Update.LiveReader).
func New(c client.Client, opts Options) (*Client, error) {
	if c == nil {
		return nil, errors.New("stream: client must not be nil")
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.SegmentCacheSize < 0 {
		return nil, fmt.Errorf("stream: Options.SegmentCacheSize must be >= 0, got %d", opts.SegmentCacheSize)
	}
	if opts.SegmentCacheSize == 0 {
		opts.SegmentCacheSize = 128
	}
	uopts := opts.Update
	if uopts.MaxAttempts == 0 && uopts.Timeout == 0 {
		uopts.Timeout = DefaultAppendTimeout
	}
	uopts.Status = false
	uopts.CreateIfMissing = true
	u, err := update.New[*jobstatev1alpha1.EventStream](c, uopts)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	reader := opts.Update.LiveReader
	if reader == nil {
		reader = c
	}
	waitFull := DefaultAppendTimeout
	if opts.Update.Timeout > 0 {
		waitFull = opts.Update.Timeout
	}
	var sleeps clock.Clock = clock.RealClock{}
	if opts.Update.Clock != nil {
		sleeps = opts.Update.Clock
	}
	return &Client{
		c: c, reader: reader, clock: opts.Clock, updater: u, sealer: opts.Sealer, waitFull: waitFull, sleeps: sleeps,
		segments: lru.New(opts.SegmentCacheSize), heads: lru.New(maxCarriedHeads),
	}, nil
}

// DefaultAppendTimeout bounds an Append's retries unless Options.Update
// bounds them.
const DefaultAppendTimeout = 30 * time.Second

// maxCarriedHeads bounds the heads a Client remembers.
const maxCarriedHeads = 1024

// errStaleHead: the copy of the head an append was about to seal from is
// not the stored one; sealing from it could re-create segments that
// retention deleted. The append is applied again to a live copy.
var errStaleHead = errors.New("the stream head changed while sealing")

// ErrHeadFull: the append's events do not fit in the stream's head until
// the sealer (the EventStream controller) seals it. An Append waits for
// that up to its context's deadline or Options.Update.Timeout
// (DefaultAppendTimeout if unset), and returns an error matching
// ErrHeadFull if it waited in vain: retry later, and check that the
// controller runs.
var ErrHeadFull = errors.New("the stream head is full and not sealed yet (is the EventStream controller running?)")

// headFullRetries paces the tries of an Append whose write was full: they
// grow to about 250 ms apart and stay there.
var headFullRetries = wait.Backoff{Duration: 2 * time.Millisecond, Factor: 1.5, Jitter: 1, Steps: 12}

// Append stores events at the end of the stream key, atomically: all of
// them at consecutive positions, or none. The stream is created on its
// first append. See AppendOptions for the expectations it can check.
//
// Steps, each protecting an invariant:
//  1. Validate and encode every event before any request: a malformed or
//     oversized event fails the whole Append and nothing is written.
//  2. Under the update library (read, apply, write with the
//     resourceVersion precondition, re-read and re-apply on Conflict):
//     a. ids already in the head are a retry: return their positions and
//     write nothing (invariant: an id is stored at most once);
//     b. check StreamExists and ExpectedVersion against the head as read
//     — re-checked on every re-read, so a stream that moved past the
//     expected version is a *VersionConflictError, never a silent retry;
//     c. record the previous write's commit revision (globalPosition);
//     d. a Sealer seals older committed events into an EventSegment if
//     the head would grow past its sealing size (keeps the append cost
//     flat); any Client waits while the events do not fit in the head
//     at all (ErrHeadFull), which keeps an object under etcd's limit;
//     e. add the events at version+1, version+2, ...
//  3. The write's resourceVersion is the events' commit revision.
func (c *Client) Append(ctx context.Context, key client.ObjectKey, events []EventData, opts AppendOptions) (AppendResult, error) {
	if err := checkKey(key); err != nil {
		return AppendResult{}, err
	}
	// 1.
	encoded, size, err := c.encode(key, events)
	if err != nil {
		return AppendResult{}, err
	}
	// 2.
	op := &appendOp{c: c, key: key, events: encoded, size: size, opts: opts}
	es, err := c.writeHead(ctx, key, c.carried(key), func(es *jobstatev1alpha1.EventStream) error { return op.apply(ctx, es) })
	op.observe(err)
	if err != nil {
		return AppendResult{}, err
	}
	// 3. (A retry's events may have been stored by this very write, when
	// the original was group-committed with it, or sealed by it.)
	res := op.res
	for _, p := range res.Positions {
		gp, err := c.globalPosition(ctx, es, p)
		if err != nil {
			return res, fmt.Errorf("appending to stream %s: %w", key, err)
		}
		res.GlobalPositions = append(res.GlobalPositions, gp)
	}
	return res, nil
}

// writeHead writes the stream key with action (Append's step 2, or
// Seal's) under the update library, starting from es (the head this Client
// carries, or an empty object to read live). It tries again from a live
// read, up to ctx's end or Options.Update.Timeout (DefaultAppendTimeout if
// unset), while the head is full (until the sealer seals it), when the
// copy a seal started from was stale (an append landed between the read
// and the seal's check), and when a write's response was lost: the same
// event ids, written again, are recognized if the lost write was stored
// (step 2a), and a seal adopts the segments it made. It returns the stream
// as written.
func (c *Client) writeHead(ctx context.Context, key client.ObjectKey, es *jobstatev1alpha1.EventStream, action update.Action[*jobstatev1alpha1.EventStream]) (*jobstatev1alpha1.EventStream, error) {
	delay, giveUp := headFullRetries.DelayFunc(), c.sleeps.Now().Add(c.waitFull)
	var err error
	for {
		err = c.updater.Update(ctx, es, action)
		lost := errors.Is(err, ErrOutcomeUnknown) && ctx.Err() == nil
		if !lost && !errors.Is(err, ErrHeadFull) && !errors.Is(err, errStaleHead) || !c.sleeps.Now().Before(giveUp) {
			break
		}
		t := c.sleeps.NewTimer(delay())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("writing stream %s: %w (%w)", key, ctx.Err(), err)
		case <-t.C():
		}
		// Start the next try from a live read, not the copy that failed.
		es = emptyStream(key)
	}
	if err != nil {
		c.heads.Remove(key)
		if errors.Is(err, ErrHeadFull) {
			return nil, fmt.Errorf("appending to stream %s: %w", key, err)
		}
		return nil, err
	}
	if es.ResourceVersion != "" {
		c.heads.Add(key, es.DeepCopy())
	}
	return es, nil
}

// carried returns a copy of the head this Client last wrote to the stream
// key, or an empty stream object (which the update library reads live).
func (c *Client) carried(key client.ObjectKey) *jobstatev1alpha1.EventStream {
	es := &jobstatev1alpha1.EventStream{}
	if last, ok := c.heads.Get(key); ok {
		last.(*jobstatev1alpha1.EventStream).DeepCopyInto(es)
	}
	es.Namespace, es.Name = key.Namespace, key.Name
	return es
}

// emptyStream is an EventStream object named key, to be read live.
func emptyStream(key client.ObjectKey) *jobstatev1alpha1.EventStream {
	es := &jobstatev1alpha1.EventStream{}
	es.Namespace, es.Name = key.Namespace, key.Name
	return es
}

// checkKey refuses a stream key without a namespace or a name.
func checkKey(key client.ObjectKey) error {
	if key.Namespace == "" || key.Name == "" {
		return fmt.Errorf("stream: a stream is named by a namespace and a name, got %q", key.String())
	}
	return nil
}

// appendOp is one Append's step 2, applied to every copy of the head the
// update library reads; res is the outcome of the latest application.
type appendOp struct {
	c      *Client
	key    client.ObjectKey
	events []jobstatev1alpha1.Event
	size   int
	opts   AppendOptions
	res    AppendResult
	sealed bool // the latest application sealed the head
}

// apply is step 2 on es, as read (or carried).
func (a *appendOp) apply(ctx context.Context, es *jobstatev1alpha1.EventStream) error {
	a.res, a.sealed = AppendResult{}, false
	if es.Head == nil {
		es.Head = &jobstatev1alpha1.EventStreamHead{Version: NoStream}
	}
	h := es.Head
	if err := checkHead(a.key, h); err != nil {
		return err
	}
	if es.ResourceVersion == "" {
		for k, v := range a.opts.Annotations {
			metav1.SetMetaDataAnnotation(&es.ObjectMeta, k, v)
		}
	}
	// 2a.
	if retry, err := a.retried(ctx, es); retry || err != nil {
		return err
	}
	// 2b.
	if err := a.expected(h); err != nil {
		return err
	}
	// 2c.
	stamp(h, es.ResourceVersion)
	// 2d.
	if err := a.makeRoom(ctx, es); err != nil {
		return err
	}
	// 2e.
	for _, e := range a.events {
		e.Position = h.Version + 1
		h.Events.Items = append(h.Events.Items, e)
		h.Version++
		a.res.Positions = append(a.res.Positions, e.Position)
	}
	a.res.Version = h.Version
	return nil
}

// observe counts the Append in the stream metrics, by err, the outcome of
// its write: the events it stored and the seal it made, or a version
// conflict.
func (a *appendOp) observe(err error) {
	if errors.Is(err, ErrVersionConflict) {
		metrics.StreamAppendConflicts.Inc()
	}
	if err != nil {
		return
	}
	if !a.res.Duplicate {
		metrics.StreamAppends.Inc()
		metrics.StreamAppendedEvents.Add(float64(len(a.res.Positions)))
	}
	if a.sealed {
		metrics.StreamSeals.Inc()
	}
}

// retried reports whether the append's events are already stored (step
// 2a), with their positions in res.
func (a *appendOp) retried(ctx context.Context, es *jobstatev1alpha1.EventStream) (bool, error) {
	h := es.Head
	dup, err := duplicate(a.key, h, a.events)
	if err != nil || dup == nil {
		return false, err
	}
	if dup[0] < h.First {
		if err := a.c.checkSealedIDs(ctx, es, dup, a.events); err != nil {
			return false, err
		}
	}
	a.res = AppendResult{Version: h.Version, Positions: dup, Duplicate: true}
	return true, nil
}

// expected checks the append's expectations against h (step 2b).
func (a *appendOp) expected(h *jobstatev1alpha1.EventStreamHead) error {
	if a.opts.StreamExists && h.Version == NoStream {
		return &NotFoundError{Namespace: a.key.Namespace, Stream: a.key.Name}
	}
	if v := a.opts.ExpectedVersion; v != nil && *v != h.Version {
		return &VersionConflictError{Namespace: a.key.Namespace, Stream: a.key.Name, Expected: *v, Actual: h.Version}
	}
	return nil
}

// makeRoom seals the head first if this Client is the sealer and the
// events would take it past its sealing size, and returns ErrHeadFull if
// they still do not fit (step 2d).
func (a *appendOp) makeRoom(ctx context.Context, es *jobstatev1alpha1.EventStream) error {
	h := es.Head
	if end := sealPlan(h, len(a.events), a.size); a.c.sealer && end > h.First {
		if err := a.c.seal(ctx, es, end); err != nil {
			return err
		}
		a.sealed = true
	}
	if len(h.Events.Items)+len(a.events) > maxHeadEvents || eventsBytes(h.Events.Items)+a.size > maxHeadBytes {
		return ErrHeadFull
	}
	return nil
}

// Seal makes one write to the head of the stream key if it needs one: it
// records the commit revision of the head's latest write (see the package
// documentation) and, if the head has grown past its sealing size, seals
// all but the newest events into a segment. A head below that size is not
// sealed, however long it has been quiet: segments hold a batch of events
// whatever the append rate. It returns the stream as stored afterwards
// (read live, or as the write returned it) and whether it wrote; a missing
// stream is a *NotFoundError. The EventStream controller calls it as a
// head fills and before it writes a stream's status: any other write
// between an append and the write recording that append's revision would
// make the revision unknowable.
func (c *Client) Seal(ctx context.Context, key client.ObjectKey) (*jobstatev1alpha1.EventStream, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	es := emptyStream(key)
	var before string
	var sealed bool // the latest application sealed the head
	action := func(es *jobstatev1alpha1.EventStream) error {
		before, sealed = es.ResourceVersion, false
		h := es.Head
		if h == nil || h.Version < 0 {
			return nil
		}
		if err := checkHead(key, h); err != nil {
			return err
		}
		if h.Unstamped.From > h.Version && !overSealSize(h) {
			return nil
		}
		stamp(h, es.ResourceVersion)
		if end := sealPlan(h, 0, 0); end > h.First {
			err := c.seal(ctx, es, end)
			sealed = err == nil
			return err
		}
		return nil
	}
	es, err := c.writeHead(ctx, key, es, action)
	if err != nil {
		return nil, false, err
	}
	if sealed {
		metrics.StreamSeals.Inc()
	}
	if es.ResourceVersion == "" {
		return nil, false, &NotFoundError{Namespace: key.Namespace, Stream: key.Name}
	}
	return es, es.ResourceVersion != before, nil
}

// NeedsSeal reports whether es's head has grown past the size at which the
// sealer seals it (appends wait once it is full).
func NeedsSeal(es *jobstatev1alpha1.EventStream) bool {
	return es.Head != nil && overSealSize(es.Head)
}

// Unstamped reports whether es's latest write has not been followed by
// another write yet: a write outside this package (a status write) must not
// be made then; call Seal first.
func Unstamped(es *jobstatev1alpha1.EventStream) bool {
	return es.Head != nil && es.Head.Unstamped.From <= es.Head.Version
}

// globalPosition returns the global position of the event at p, in the
// head es or in a segment.
func (c *Client) globalPosition(ctx context.Context, es *jobstatev1alpha1.EventStream, p int64) (GlobalPosition, error) {
	if p >= es.Head.First {
		return revisionOf(es.Head, es.ResourceVersion, p)
	}
	events, err := c.readSealed(ctx, es, p, 1)
	if err != nil {
		return GlobalPosition{}, err
	}
	if len(events) == 0 || events[0].Position != p {
		return GlobalPosition{}, fmt.Errorf("stream %s: event %d is no longer stored", client.ObjectKeyFromObject(es), p)
	}
	return events[0].GlobalPosition, nil
}

// checkSealedIDs verifies that the sealed positions of a retry hold the
// retry's ids, reading their segment.
func (c *Client) checkSealedIDs(ctx context.Context, es *jobstatev1alpha1.EventStream, positions []int64, events []jobstatev1alpha1.Event) error {
	sealed, err := c.readSealed(ctx, es, positions[0], int(es.Head.First-positions[0]))
	if err != nil {
		return err
	}
	for i, r := range sealed {
		if r.Position != positions[i] || r.ID != events[i].ID {
			return &DuplicateIDError{Namespace: es.Namespace, Stream: es.Name, ID: events[len(events)-1].ID, Position: positions[len(positions)-1]}
		}
	}
	return nil
}

// encode validates events and converts them to what is stored, with their
// total size.
func (c *Client) encode(key client.ObjectKey, events []EventData) ([]jobstatev1alpha1.Event, int, error) {
	switch {
	case len(events) == 0:
		return nil, 0, &InvalidEventError{Namespace: key.Namespace, Stream: key.Name, Index: -1, Reason: "an append needs at least one event"}
	case len(events) > MaxAppendEvents:
		return nil, 0, &TooLargeError{Namespace: key.Namespace, Stream: key.Name, What: "the append", Size: len(events), Limit: MaxAppendEvents, Unit: "events"}
	}
	now := metav1.NewMicroTime(c.clock.Now())
	out := make([]jobstatev1alpha1.Event, len(events))
	ids := map[string]int{}
	total := 0
	for i, e := range events {
		ev, size, err := encodeEvent(key, i, e, now, ids)
		if err != nil {
			return nil, 0, err
		}
		total += size
		out[i] = ev
	}
	if total > MaxAppendBytes {
		return nil, 0, &TooLargeError{Namespace: key.Namespace, Stream: key.Name, What: "the append", Size: total, Limit: MaxAppendBytes, Unit: "bytes"}
	}
	return out, total, nil
}

// encodeEvent validates the append's event i and converts it to what is
// stored, with its size; ids holds the ids of the events before it.
func encodeEvent(key client.ObjectKey, i int, e EventData, now metav1.MicroTime, ids map[string]int) (jobstatev1alpha1.Event, int, error) {
	invalid := func(format string, args ...any) error {
		return &InvalidEventError{Namespace: key.Namespace, Stream: key.Name, Index: i, Reason: fmt.Sprintf(format, args...)}
	}
	id := e.ID
	if id == "" {
		id = uuid.NewString()
	} else if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return jobstatev1alpha1.Event{}, 0, invalid("id %q is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", id)
	}
	if j, ok := ids[id]; ok {
		return jobstatev1alpha1.Event{}, 0, invalid("id %s is also the id of event %d of this append", id, j)
	}
	ids[id] = i
	if !utf8.ValidString(e.Type) {
		return jobstatev1alpha1.Event{}, 0, invalid("type %q is not valid UTF-8", e.Type)
	}
	if n := utf8.RuneCountInString(e.Type); n == 0 || n > jobstatev1alpha1.MaxEventTypeLength {
		return jobstatev1alpha1.Event{}, 0, invalid("type must have 1 to %d characters, got %d", jobstatev1alpha1.MaxEventTypeLength, n)
	}
	data, err := jsonObject(e.Data)
	if err != nil {
		return jobstatev1alpha1.Event{}, 0, invalid("data: %v", err)
	}
	ev := jobstatev1alpha1.Event{ID: id, Type: e.Type, Data: runtime.RawExtension{Raw: data}, Time: now}
	if e.Metadata != nil {
		meta, err := jsonObject(e.Metadata)
		if err != nil {
			return jobstatev1alpha1.Event{}, 0, invalid("metadata: %v", err)
		}
		ev.Metadata = &runtime.RawExtension{Raw: meta}
	}
	// Its size as stored: one JSON line (HTML characters escaped).
	line, err := json.Marshal(&ev)
	if err != nil {
		return jobstatev1alpha1.Event{}, 0, invalid("%v", err)
	}
	if n := len(line); n > MaxEventBytes {
		return jobstatev1alpha1.Event{}, 0, &TooLargeError{Namespace: key.Namespace, Stream: key.Name, What: fmt.Sprintf("event %d (type %s)", i, e.Type), Size: n, Limit: MaxEventBytes, Unit: "bytes"}
	}
	return ev, len(line), nil
}

// jsonObject encodes v, which must be a JSON object.
func jsonObject(v any) ([]byte, error) {
	var raw []byte
	switch v := v.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("must be a JSON object, got %.20s", raw)
	}
	// In the form it is stored in (compact, HTML characters escaped), and
	// a copy: the stored object must not share the caller's buffer.
	return json.Marshal(json.RawMessage(raw))
}

// Version returns the position of the last event of the stream key. ok is
// false (and version NoStream) when the stream has no events.
func (c *Client) Version(ctx context.Context, key client.ObjectKey) (version int64, ok bool, err error) {
	es, err := c.head(ctx, key)
	if errors.Is(err, ErrStreamNotFound) {
		return NoStream, false, nil
	}
	if err != nil {
		return NoStream, false, err
	}
	return es.Head.Version, true, nil
}

// head reads the stream live; a stream without events is a *NotFoundError.
func (c *Client) head(ctx context.Context, key client.ObjectKey) (*jobstatev1alpha1.EventStream, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	es := &jobstatev1alpha1.EventStream{}
	err := c.reader.Get(ctx, key, es)
	if apierrors.IsNotFound(err) || (err == nil && (es.Head == nil || es.Head.Version < 0)) {
		return nil, &NotFoundError{Namespace: key.Namespace, Stream: key.Name}
	}
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", key, err)
	}
	return es, nil
}

// Read returns up to limit events of the stream key in order, starting at
// position from; fewer at the end of the stream. Events that retention
// removed are skipped: the first event returned may then be after from. It
// fails with a *NotFoundError if the stream has no events.
func (c *Client) Read(ctx context.Context, key client.ObjectKey, from int64, limit int) ([]RecordedEvent, error) {
	es, err := c.head(ctx, key)
	if err != nil {
		return nil, err
	}
	return c.ReadFrom(ctx, es, from, limit)
}

// ReadFrom is Read on a stream object the caller has read itself (from a
// List, or an informer's cache): events in its head come from es, sealed
// ones from its segments. A List of a namespace's streams followed by
// ReadFrom on each reads them all in one request, plus one per stream whose
// sealed events are wanted.
func (c *Client) ReadFrom(ctx context.Context, es *jobstatev1alpha1.EventStream, from int64, limit int) ([]RecordedEvent, error) {
	key := client.ObjectKeyFromObject(es)
	if limit <= 0 {
		return nil, fmt.Errorf("reading stream %s: limit must be positive, got %d", key, limit)
	}
	if es.Head == nil || es.Head.Version < 0 {
		return nil, &NotFoundError{Namespace: key.Namespace, Stream: key.Name}
	}
	if err := checkHead(key, es.Head); err != nil {
		return nil, err
	}
	var err error
	from = max(from, 0)
	var out []RecordedEvent
	if from < es.Head.First {
		if out, err = c.readSealed(ctx, es, from, limit); err != nil {
			return nil, err
		}
		from = es.Head.First
	}
	h := es.Head
	for p := from; p <= h.Version && len(out) < limit; p++ {
		gp, err := revisionOf(h, es.ResourceVersion, p)
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", key, err)
		}
		out = append(out, recorded(key.Name, &h.Events.Items[p-h.First], gp))
	}
	return out, nil
}

func recorded(stream string, e *jobstatev1alpha1.Event, gp GlobalPosition) RecordedEvent {
	r := RecordedEvent{
		Stream: stream, ID: e.ID, Type: e.Type, Data: json.RawMessage(e.Data.Raw),
		Position: e.Position, GlobalPosition: gp, Time: e.Time.Time,
	}
	if e.Metadata != nil {
		r.Metadata = json.RawMessage(e.Metadata.Raw)
	}
	return r
}
