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

package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// tokenField is where the report ConfigMap keeps the fencing token of its
// last guarded write.
var tokenField = update.AnnotationToken[*corev1.ConfigMap]("faults.jobstate.dev/token")

// publish sets the report's writer.
func publish(writer string) update.Action[*corev1.ConfigMap] {
	return func(cm *corev1.ConfigMap) error {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["writer"] = writer
		return nil
	}
}

// report returns the report ConfigMap key, created empty.
func report(t *testing.T, ns string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"}}
	if err := env.Client.Create(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

// storedReport is the report's writer and token as stored.
func storedReport(t *testing.T, key client.ObjectKey) (string, int64) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(t.Context(), key, cm); err != nil {
		t.Fatal(err)
	}
	token, err := tokenField.Get(cm)
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data["writer"], token
}

// TestPausedLockHolderIsFenced: holder 1 has read the report and is about
// to write it under its lock when it pauses (a blocked goroutine; its
// clock stands still, so it renews nothing and does not know). Holder 2's
// clock passes the TTL, it takes the lock over with a larger token and
// writes. Holder 1's late write then conflicts, re-reads and is refused
// with a *update.StaleTokenError; the report stays holder 2's. Without the
// fence, the same late write overwrites it (the broken variant).
func TestPausedLockHolderIsFenced(t *testing.T) {
	for _, fenced := range []bool{true, false} {
		t.Run(fmt.Sprintf("fenced=%t", fenced), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			ns := env.Namespace(t)
			cm := report(t, ns)
			key := client.ObjectKeyFromObject(cm)
			clock1, clock2 := clocktesting.NewFakeClock(time.Now()), clocktesting.NewFakeClock(time.Now())
			holder1, err := lease.New(env.Client, lease.Options{Identity: "holder-1", TTL: 3 * time.Second, Clock: clock1})
			if err != nil {
				t.Fatal(err)
			}
			holder2, err := lease.New(env.Client, lease.Options{Identity: "holder-2", TTL: 3 * time.Second, Clock: clock2})
			if err != nil {
				t.Fatal(err)
			}
			lock1, err := holder1.Acquire(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = lock1.Release(ctx) }()

			// Holder 1 pauses inside its write, after reading the report.
			paused, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			late := func(cm *corev1.ConfigMap) error {
				once.Do(func() { close(paused); <-resume })
				return publish("holder-1")(cm)
			}
			if fenced {
				late = update.Fenced(lock1.Token(), tokenField, late)
			}
			done1 := make(chan error, 1)
			go func() {
				// Not lock1.Context(): holder 1 does not know it lost the lock.
				done1 <- update.Update(context.Background(), env.Client, cm.DeepCopy(), late, update.Options{})
			}()
			<-paused

			// Holder 2 takes over once its own clock passes the TTL.
			acquired := make(chan *lease.Lock, 1)
			go func() {
				l, err := holder2.Acquire(ctx, key)
				if err != nil {
					t.Error(err)
				}
				acquired <- l
			}()
			var lock2 *lease.Lock
			for lock2 == nil {
				select {
				case lock2 = <-acquired:
				case <-time.After(20 * time.Millisecond):
					clock2.Step(500 * time.Millisecond)
				}
			}
			if lock2 == nil {
				t.Fatal("holder 2 did not acquire the lock")
			}
			defer func() { _ = lock2.Release(ctx) }()
			if lock2.Token() <= lock1.Token() {
				t.Fatalf("holder 2's token %d is not larger than holder 1's %d", lock2.Token(), lock1.Token())
			}
			if err := update.Update(ctx, env.Client, cm.DeepCopy(), update.Fenced(lock2.Token(), tokenField, publish("holder-2")), update.Options{}); err != nil {
				t.Fatal(err)
			}

			// Holder 1 resumes.
			close(resume)
			err = <-done1
			writer, token := storedReport(t, key)
			if !fenced {
				if err != nil || writer != "holder-1" {
					t.Errorf("unfenced late write: %v, writer %q; want it to overwrite holder 2's report (what the fence prevents)", err, writer)
				}
				return
			}
			var stale *update.StaleTokenError
			if !errors.As(err, &stale) || stale.Token != lock1.Token() || stale.Stored != lock2.Token() {
				t.Errorf("holder 1's late write: %v, want a *update.StaleTokenError for token %d against %d", err, lock1.Token(), lock2.Token())
			}
			if writer != "holder-2" || token != lock2.Token() {
				t.Errorf("report written by %q under token %d, want holder-2 under %d", writer, token, lock2.Token())
			}
		})
	}
}

// TestStoppedLockHolderProcessIsFenced: a process holding the lock (TTL 3s)
// is stopped with SIGSTOP. Another holder takes the lock over after the
// TTL, by its own clock, and writes the report. The process, continued,
// writes with its token, unaware: the write is refused as stale, the
// report stays the new holder's, and the process then learns it lost the
// lock (Lost closed).
func TestStoppedLockHolderProcessIsFenced(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	ns := env.Namespace(t)
	cm := report(t, ns)
	key := client.ObjectKeyFromObject(cm)
	h := startLockHolder(t, key)
	token1, err := strconv.ParseInt(h.expect(t, "acquired "), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.ask(t, "write"); got != "write: ok" {
		t.Fatalf("the holder's first write: %q", got)
	}

	h.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	locks, err := lease.New(env.Client, lease.Options{Identity: "successor", TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := locks.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Release(ctx) }()
	t.Logf("the successor took the lock %s after the holder stopped", time.Since(stopped).Round(time.Millisecond))
	if lock.Token() <= token1 {
		t.Fatalf("the successor's token %d is not larger than the holder's %d", lock.Token(), token1)
	}
	if err := update.Update(ctx, env.Client, cm.DeepCopy(), update.Fenced(lock.Token(), tokenField, publish("successor")), update.Options{}); err != nil {
		t.Fatal(err)
	}

	h.signal(t, syscall.SIGCONT)
	want := fmt.Sprintf("write: stale %d %d", token1, lock.Token())
	if got := h.ask(t, "write"); got != want {
		t.Errorf("the continued holder's late write: %q, want %q", got, want)
	}
	if writer, token := storedReport(t, key); writer != "successor" || token != lock.Token() {
		t.Errorf("report written by %q under token %d, want successor under %d", writer, token, lock.Token())
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.ask(t, "lost?") != "lost: true" {
		if time.Now().After(deadline) {
			t.Fatal("the continued holder never learned it lost the lock")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockHolder is the helper process of TestStoppedLockHolderProcessIsFenced,
// talked to a line at a time.
type lockHolder struct {
	*process
	stdin io.WriteCloser
	lines chan string
}

// startLockHolder starts this test binary as a lock holder of key.
func startLockHolder(t *testing.T, key client.ObjectKey) *lockHolder {
	t.Helper()
	kc := kubeconfig(t, "lock-holder")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := newProcess("lock holder", self, []string{helperEnv + "=lockholder", "KUBECONFIG=" + kc, "LOCK_NAMESPACE=" + key.Namespace, "LOCK_NAME=" + key.Name}, "-test.run=^$")
	p.cmd.Stdout = nil
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &lockHolder{process: p, stdin: stdin, lines: make(chan string, 16)}
	p.start(t)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			fmt.Fprintln(p.out, "> "+s.Text())
			h.lines <- s.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() { _ = stdin.Close() })
	return h
}

// expect returns the rest of the holder's next line, which must start
// with prefix.
func (h *lockHolder) expect(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("lock holder said %q (open %t), want %q...", line, ok, prefix)
		}
		return strings.TrimPrefix(line, prefix)
	case <-time.After(20 * time.Second):
		t.Fatalf("lock holder said nothing, want %q...", prefix)
	}
	return ""
}

// ask sends a command and returns the holder's answer.
func (h *lockHolder) ask(t *testing.T, command string) string {
	t.Helper()
	if _, err := fmt.Fprintln(h.stdin, command); err != nil {
		t.Fatal(err)
	}
	return h.expect(t, "")
}
