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

// Package history_test records concurrent histories of pkg/update,
// pkg/stream and pkg/lease against the envtest API server — with short
// deadlines and an interceptor that loses responses — and checks them for
// linearizability with porcupine (internal/history). Each library's test
// has a deliberately broken variant that the checker must report Illegal.
package history_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// The clients log nothing the tests look at; without a logger
// controller-runtime complains with a stack trace.
func init() { ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard))) }

// checkTimeout bounds each porcupine check. The histories here are checked
// in well under a second; a check that needs this long has too many
// operations of unknown outcome open at once, and says Unknown.
const checkTimeout = 15 * time.Second

// faults makes some writes through a client time out, as a flaky network
// would: every loseEvery-th write the API server stores has its response
// lost, and every dropEvery-th write sent is lost before it reaches the
// API server — up to max faults in all. The caller sees apierrors.IsTimeout
// either way, and cannot tell which happened.
type faults struct {
	loseEvery, dropEvery, max int64

	sent, stored, faulted atomic.Int64
	// lost and dropped count what happened.
	lost, dropped atomic.Int64
}

// fault reports whether the n-th write is due a fault of one every
// every, if any are left.
func (f *faults) fault(n, every int64) bool {
	return every > 0 && n%every == 0 && f.faulted.Add(1) <= f.max
}

// client wraps c so that its creates and updates (of objects and of their
// status) suffer the faults.
func (f *faults) client(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return f.write(obj, func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return f.write(obj, func() error { return c.Update(ctx, obj, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return f.write(obj, func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
	})
}

func (f *faults) write(obj client.Object, write func() error) error {
	if f.fault(f.sent.Add(1), f.dropEvery) {
		f.dropped.Add(1)
		return apierrors.NewTimeoutError("test fault: the request was lost on its way", 1)
	}
	sent := obj.DeepCopyObject()
	if err := write(); err != nil {
		return err
	}
	if !f.fault(f.stored.Add(1), f.loseEvery) {
		return nil
	}
	f.lost.Add(1)
	// The caller never saw the response: obj stays as it was sent.
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(sent).Elem())
	return apierrors.NewTimeoutError("test fault: stored, but the response was lost", 1)
}

func (f *faults) String() string {
	return fmt.Sprintf("%d writes, %d stored; %d stored with the response lost, %d lost before the API server", f.sent.Load(), f.stored.Load(), f.lost.Load(), f.dropped.Load())
}

// deadline returns a context for one call: one time in shortEvery, a
// deadline of 1 to 20ms — short enough to end some calls while their write
// is in flight — else a generous one.
func deadline(parent context.Context, rnd *rand.Rand, shortEvery int) (context.Context, context.CancelFunc) {
	if shortEvery > 0 && rnd.IntN(shortEvery) == 0 {
		return context.WithTimeout(parent, time.Duration(1+rnd.IntN(20))*time.Millisecond)
	}
	return context.WithTimeout(parent, 20*time.Second)
}
