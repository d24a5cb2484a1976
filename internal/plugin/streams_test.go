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

package plugin_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// eventID is the fixed UUID of the test's event i.
func eventID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// times and globals are what varies between runs in streams output.
var (
	times   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	globals = regexp.MustCompile(`\b\d+\.\d+\b`)
)

// normalizeStream is normalize, with event times as TIME and global
// positions as GLOBAL.
func normalizeStream(out string, ns string) string {
	out = times.ReplaceAllString(out, "TIME")
	out = globals.ReplaceAllString(out, "GLOBAL")
	return normalize(out, ns)
}

// version is the stream's version, read through pkg/stream (NoStream for
// none).
func version(t *testing.T, ns, name string) int64 {
	t.Helper()
	sc, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := sc.Version(t.Context(), client.ObjectKey{Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestStreamsAppendRead: appends print their positions (a retried id is a
// duplicate), and read prints them in order as a table, wide, json, yaml,
// and from a position with a limit.
func TestStreamsAppendRead(t *testing.T) {
	ns := env.Namespace(t)
	r := mustRun(t, 0, "-n", ns, "streams", "append", "orders", "--type", "Placed", "--data", `{"sku":"A1","qty":2}`, "--id", eventID(0), "--expected-version", "-1")
	golden(t, "streams_append", normalizeStream(r.stdout, ns))
	mustRun(t, 0, "-n", ns, "streams", "append", "orders", "--type", "Paid", "--data", `{"amount":1200}`, "--metadata", `{"correlationId":"c-1"}`, "--id", eventID(1), "--expected-version", "0")
	mustRun(t, 0, "-n", ns, "streams", "append", "orders", "--type", "Shipped", "--data", `{}`, "--id", eventID(2))
	r = mustRun(t, 0, "-n", ns, "streams", "append", "orders", "--type", "Shipped", "--data", `{}`, "--id", eventID(2))
	golden(t, "streams_append_duplicate", normalizeStream(r.stdout, ns))

	for _, c := range []struct {
		name string
		args []string
	}{
		{"streams_read", nil},
		{"streams_read_wide", []string{"-o", "wide"}},
		{"streams_read_json", []string{"-o", "json"}},
		{"streams_read_yaml", []string{"-o", "yaml"}},
		{"streams_read_from", []string{"--from", "1", "--limit", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustRun(t, 0, append([]string{"-n", ns, "streams", "read", "orders"}, c.args...)...)
			golden(t, c.name, normalizeStream(r.stdout, ns))
		})
	}
	r = mustRun(t, 0, "-n", ns, "streams", "version", "orders")
	if r.stdout != "2\n" {
		t.Errorf("streams version: %q, want 2", r.stdout)
	}
	r = mustRun(t, 2, "-n", ns, "streams", "read", "orders", "-o", "name")
	if !strings.Contains(r.stderr, "-o name") || r.stdout != "" {
		t.Errorf("read -o name: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// TestStreamsAppendConflict: an append expecting another version prints
// the stream library's message, exits 3 and stores nothing.
func TestStreamsAppendConflict(t *testing.T) {
	ns := env.Namespace(t)
	for i := range 4 {
		mustRun(t, 0, "-n", ns, "streams", "append", "s", "--type", "T", "--data", `{}`, "--id", eventID(i))
	}
	r := mustRun(t, 3, "-n", ns, "streams", "append", "s", "--type", "T", "--data", `{}`, "--expected-version", "2")
	if r.stderr != "error: Expected version 2, stream is at version 3\n" || r.stdout != "" {
		t.Errorf("conflict: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = mustRun(t, 3, "-n", ns, "streams", "append", "new", "--type", "T", "--data", `{}`, "--expected-version", "0")
	if r.stderr != "error: Expected version 0, stream is at version -1\n" {
		t.Errorf("conflict on a new stream: stderr %q", r.stderr)
	}
	if v := version(t, ns, "s"); v != 3 {
		t.Errorf("version after the conflict: %d, want 3", v)
	}
	if v := version(t, ns, "new"); v != stream.NoStream {
		t.Errorf("version of the stream a conflict refused: %d, want none", v)
	}
}

// TestStreamsAppendBadInput: bad --data, --metadata, --id, --type or
// --expected-version exit 2 and store nothing (not even the stream).
func TestStreamsAppendBadInput(t *testing.T) {
	ns := env.Namespace(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--type", "T", "--data", `[1,2]`}, "is not a JSON object"},
		{[]string{"--type", "T", "--data", `{"a":`}, "is not valid JSON"},
		{[]string{"--type", "T", "--data", `{}`, "--metadata", `"x"`}, "--metadata"},
		{[]string{"--type", "T"}, "needs --data"},
		{[]string{"--data", `{}`}, "needs --type"},
		{[]string{"--type", "T", "--data", `{}`, "--expected-version", "-2"}, "--expected-version -2"},
		{[]string{"--type", "T", "--data", `{}`, "--id", "not-a-uuid"}, "is not a UUID"},
		{[]string{"--type", strings.Repeat("T", 129), "--data", `{}`}, "1 to 128 characters"},
		{[]string{"--type", "T", "--data", `{"big":"` + strings.Repeat("x", 70<<10) + `"}`}, "the limit is"},
	} {
		r := mustRun(t, 2, append([]string{"-n", ns, "streams", "append", "bad"}, c.args...)...)
		if !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("append %.80v: stdout %q, stderr %.300q, want %q", c.args, r.stdout, r.stderr, c.want)
		}
	}
	err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "bad"}, &jobstatev1alpha1.EventStream{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the stream after refused appends: %v, want not found", err)
	}
}

// TestStreamsMissing: a stream that does not exist has no version (exit
// 0), and read and describe say it is not found (exit 1).
func TestStreamsMissing(t *testing.T) {
	ns := env.Namespace(t)
	r := mustRun(t, 0, "-n", ns, "streams", "version", "nope")
	if r.stdout != "none: the stream has no events\n" {
		t.Errorf("version of a missing stream: %q", r.stdout)
	}
	want := "error: eventstream nope not found in namespace " + ns
	for _, cmd := range []string{"read", "describe", "get"} {
		r = mustRun(t, 1, "-n", ns, "streams", cmd, "nope")
		if !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%s of a missing stream: stderr %q, want %q...", cmd, r.stderr, want)
		}
	}

	// A stream object without events (made by hand) reads as missing too.
	if err := env.Client.Create(t.Context(), &jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "empty"}}); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, 1, "-n", ns, "streams", "read", "empty")
	if want := "error: eventstream empty not found in namespace " + ns; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("read of a stream without events: stderr %q, want %q...", r.stderr, want)
	}
	r = mustRun(t, 0, "-n", ns, "streams", "version", "empty")
	if r.stdout != "none: the stream has no events\n" {
		t.Errorf("version of a stream without events: %q", r.stdout)
	}
	r = mustRun(t, 0, "-n", ns, "streams", "describe", "empty")
	golden(t, "streams_describe_empty", normalizeStream(r.stdout, ns))
}

// sealedStream appends n events to name in ns through a sealer Client with
// a fixed clock, 10 an append, so that segments exist.
func sealedStream(t *testing.T, ns, name string, n int) {
	t.Helper()
	sc, err := stream.New(env.Client, stream.Options{Sealer: true, Clock: clocktesting.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 10 {
		var evs []stream.EventData
		for j := i; j < min(i+10, n); j++ {
			evs = append(evs, stream.EventData{ID: eventID(j), Type: "Counted", Data: map[string]int{"n": j}})
		}
		if _, err := sc.Append(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, evs, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamsDescribe: a stream with segments, its head and retention.
func TestStreamsDescribe(t *testing.T) {
	ns := env.Namespace(t)
	sealedStream(t, ns, "counter", 130)
	es := &jobstatev1alpha1.EventStream{}
	key := client.ObjectKey{Namespace: ns, Name: "counter"}
	if err := env.Client.Get(t.Context(), key, es); err != nil {
		t.Fatal(err)
	}
	es.Annotations = map[string]string{"eventodb.jobstate.dev/stream": "counter-1"}
	es.Spec.Retention = &jobstatev1alpha1.RetentionPolicy{MaxEvents: new(int64(1000)), MaxAge: &metav1.Duration{Duration: 720 * time.Hour}}
	if err := env.Client.Update(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, 0, "-n", ns, "streams", "describe", "counter")
	golden(t, "streams_describe", normalizeStream(r.stdout, ns))
	if !strings.Contains(r.stdout, "counter.000000000000") {
		t.Errorf("describe shows no segment:\n%s", r.stdout)
	}
	r = mustRun(t, 0, "-n", ns, "streams", "read", "counter", "--from", "5", "--limit", "2")
	golden(t, "streams_read_sealed", normalizeStream(r.stdout, ns))
	r = mustRun(t, 0, "-n", ns, "streams", "get")
	golden(t, "streams_get", normalizeStream(r.stdout, ns))
}

// follower is a running `streams read --follow`: its stdout lines.
type follower struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *strings.Builder
	done   chan error
}

// startFollow starts `kubectl jobstate streams read --follow args...`; it
// is killed when the test ends, whatever happened.
func startFollow(t *testing.T, args ...string) *follower {
	t.Helper()
	bin, err := built()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	f := &follower{lines: make(chan string, 100), stderr: &strings.Builder{}, done: make(chan error, 1)}
	f.cmd = exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig(t, "developer"), "streams", "read", "--follow"}, args...)...)
	f.cmd.Stderr = f.stderr
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			f.lines <- s.Text()
		}
		io.Copy(io.Discard, stdout)
		close(f.lines)
		f.done <- f.cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel() // Kills it if it still runs.
		<-f.done
	})
	return f
}

// expect reads the next line, which must contain want, within 15 s.
func (f *follower) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok {
			t.Fatalf("streams read --follow ended, waiting for %q; stderr: %s", want, f.stderr)
		}
		if !strings.Contains(l, want) {
			t.Fatalf("streams read --follow printed %q, want a line with %q", l, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("streams read --follow printed nothing for 15s, waiting for %q", want)
	}
}

// wait waits for the follower to exit by itself and returns its exit code.
func (f *follower) wait(t *testing.T) int {
	t.Helper()
	for range f.lines {
	}
	select {
	case err := <-f.done:
		f.done <- err // For the cleanup.
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(15 * time.Second):
		t.Fatal("streams read --follow did not exit within 15s")
	}
	return -1
}

// TestStreamsFollow: --follow prints what exists, then the events appended
// after it started (by another client), and ends when the stream is
// deleted; on a stream without events it waits for the first; SIGTERM
// ends it with exit 0.
func TestStreamsFollow(t *testing.T) {
	ns := env.Namespace(t)
	key := client.ObjectKey{Namespace: ns, Name: "live"}
	sc, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendOne := func(i int) {
		t.Helper()
		if _, err := sc.Append(t.Context(), key, []stream.EventData{{ID: eventID(i), Type: fmt.Sprintf("E%d", i)}}, stream.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(0)

	f := startFollow(t, "-n", ns, "live")
	f.expect(t, "POSITION")
	f.expect(t, eventID(0))
	appendOne(1)
	f.expect(t, eventID(1))
	appendOne(2)
	appendOne(3)
	f.expect(t, eventID(2))
	f.expect(t, eventID(3))
	if err := env.Client.Delete(t.Context(), &jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "live"}}); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 || !strings.Contains(f.stderr.String(), "eventstream live was deleted") {
		t.Errorf("after the stream was deleted: exit %d, stderr %q", code, f.stderr)
	}

	// A stream object without events yet: --follow waits for its first.
	if err := env.Client.Create(t.Context(), &jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "live"}}); err != nil {
		t.Fatal(err)
	}
	f = startFollow(t, "-n", ns, "live", "-o", "json")
	time.Sleep(500 * time.Millisecond) // Let it start watching; the append must work either way.
	appendOne(10)
	f.expect(t, `"id":"`+eventID(10)+`"`)
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 {
		t.Errorf("after SIGTERM: exit %d, stderr %q", code, f.stderr)
	}
}
