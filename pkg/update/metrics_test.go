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

package update_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/metrics"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// The metric tests write ConfigMaps: the other tests of this package write
// JobStates, so the "configmaps" series move only here.
var configMaps = metrics.ForResource("configmaps")

// updateMetrics is a reading of the "configmaps" update metrics.
type updateMetrics struct {
	conflicts, retries        float64
	success, conflict, failed uint64 // Updates by result
	writes                    uint64 // stored writes
	carried                   float64
}

func readUpdateMetrics() updateMetrics {
	m := updateMetrics{conflicts: testutil.ToFloat64(configMaps.Conflicts), retries: testutil.ToFloat64(configMaps.Retries)}
	m.success, _ = metrics.Observed(configMaps.Success)
	m.conflict, _ = metrics.Observed(configMaps.Conflict)
	m.failed, _ = metrics.Observed(configMaps.Error)
	m.writes, m.carried = metrics.Observed(configMaps.Batch)
	return m
}

// since is m minus before.
func (m updateMetrics) since(before updateMetrics) updateMetrics {
	return updateMetrics{
		conflicts: m.conflicts - before.conflicts, retries: m.retries - before.retries,
		success: m.success - before.success, conflict: m.conflict - before.conflict, failed: m.failed - before.failed,
		writes: m.writes - before.writes, carried: m.carried - before.carried,
	}
}

func newCounterMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace(t), Name: "counter"}, Data: map[string]string{"n": "0"}}
	if err := env.Client.Create(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

// incrementMap is the updateAction of these tests: data.n += 1.
func incrementMap(cm *corev1.ConfigMap) error {
	n, err := strconv.Atoi(cm.Data["n"])
	if err != nil {
		return err
	}
	cm.Data["n"] = strconv.Itoa(n + 1)
	return nil
}

// writeElsewhere is a second writer's increment of data.other, made
// directly: made from inside an action, it makes that action's write
// conflict.
func writeElsewhere(t *testing.T, key client.ObjectKey) {
	other := &corev1.ConfigMap{}
	if err := env.Client.Get(t.Context(), key, other); err != nil {
		t.Error(err)
		return
	}
	n, _ := strconv.Atoi(other.Data["other"])
	other.Data["other"] = strconv.Itoa(n + 1)
	if err := env.Client.Update(t.Context(), other); err != nil {
		t.Error(err)
	}
}

func getMap(t *testing.T, key client.ObjectKey) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(t.Context(), key, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

// TestMetricsOfAConflictRetriedAndWon: a second writer writes between the
// Update's read and its write, once. Exactly one conflict, one retry, one
// successful Update whose one stored write carried one update — and both
// writers' changes are stored.
func TestMetricsOfAConflictRetriedAndWon(t *testing.T) {
	cm := newCounterMap(t)
	key := client.ObjectKeyFromObject(cm)
	u, err := update.New[*corev1.ConfigMap](env.Client, update.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := readUpdateMetrics()
	calls := 0
	err = u.Update(t.Context(), cm, func(cm *corev1.ConfigMap) error {
		if calls++; calls == 1 {
			writeElsewhere(t, key)
		}
		return incrementMap(cm)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readUpdateMetrics().since(before)
	want := updateMetrics{conflicts: 1, retries: 1, success: 1, writes: 1, carried: 1}
	if got != want {
		t.Errorf("update metrics moved by %+v, want %+v", got, want)
	}
	if stored := getMap(t, key).Data; stored["n"] != "1" || stored["other"] != "1" {
		t.Errorf("stored %v, want n 1 and other 1: an update was lost", stored)
	}
}

// TestMetricsOfAnUpdateThatGivesUp: every attempt of an Update limited to
// 3 conflicts with a second writer. 3 conflicts, 2 retries, one Update
// ending in a *ConflictError, nothing stored.
func TestMetricsOfAnUpdateThatGivesUp(t *testing.T) {
	cm := newCounterMap(t)
	key := client.ObjectKeyFromObject(cm)
	u, err := update.New[*corev1.ConfigMap](env.Client, update.Options{MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	before := readUpdateMetrics()
	err = u.Update(t.Context(), cm, func(cm *corev1.ConfigMap) error {
		writeElsewhere(t, key)
		return incrementMap(cm)
	})
	var conflict *update.ConflictError
	if !apierrors.IsConflict(err) || !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want a *ConflictError", err)
	}
	got := readUpdateMetrics().since(before)
	want := updateMetrics{conflicts: 3, retries: 2, conflict: 1}
	if got != want {
		t.Errorf("update metrics moved by %+v, want %+v", got, want)
	}
	if stored := getMap(t, key).Data; stored["n"] != "0" || stored["other"] != "3" {
		t.Errorf("stored %v, want n 0 and other 3", stored)
	}
}

// TestMetricsOfGroupCommit: two writers (two Updaters, as two processes)
// with 8 callers each increment one ConfigMap 25 times per caller. The
// stored writes carried exactly the 400 updates, in fewer writes (group
// commit); every Update succeeded; every conflict between the two was
// retried, once.
func TestMetricsOfGroupCommit(t *testing.T) {
	cm := newCounterMap(t)
	key := client.ObjectKeyFromObject(cm)
	const callers, calls = 8, 25
	before := readUpdateMetrics()
	var wg sync.WaitGroup
	for range 2 {
		u, err := update.New[*corev1.ConfigMap](env.Client, update.Options{Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		for range callers {
			wg.Go(func() {
				obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
				for range calls {
					if err := u.Update(t.Context(), obj, incrementMap); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	const total = 2 * callers * calls
	got := readUpdateMetrics().since(before)
	if got.carried != total || got.success != total || got.conflict != 0 || got.failed != 0 {
		t.Errorf("update metrics moved by %+v: want %d updates carried, %d successful Updates", got, total, total)
	}
	if got.writes >= total {
		t.Errorf("%d stored writes for %d updates: no group commit", got.writes, total)
	}
	if got.retries != got.conflicts {
		t.Errorf("%g retries after %g conflicts, want one retry per conflict", got.retries, got.conflicts)
	}
	if n := getMap(t, key).Data["n"]; n != strconv.Itoa(total) {
		t.Errorf("n = %s, want %d", n, total)
	}
	t.Logf("%d updates in %d writes, %g conflicts", total, got.writes, got.conflicts)
}
