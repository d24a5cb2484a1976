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

package lease_test

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// One writer at a time publishes a report. The lock keeps live writers
// apart; the fencing token keeps out a writer that paused past its lease
// and does not know yet that it lost it.
func Example() {
	ctx := context.Background()
	// One Client per process serves every namespace.
	locks, err := lease.New(env.Client, lease.Options{Identity: "report-writer-1"})
	if err != nil {
		panic(err)
	}
	lock, err := locks.Acquire(ctx, client.ObjectKey{Namespace: "default", Name: "monthly-report"})
	if err != nil {
		panic(err)
	}
	defer lock.Release(ctx)

	// The write is guarded with the lock's token and done with its context,
	// which is cancelled if the lock is lost.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "monthly-report"}}
	publish := update.Fenced(lock.Token(), update.AnnotationToken[*corev1.ConfigMap]("example.jobstate.dev/token"),
		func(cm *corev1.ConfigMap) error {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data["status"] = "published"
			return nil
		})
	err = update.Update(lock.Context(), env.Client, cm, publish, update.Options{CreateIfMissing: true})
	if errors.Is(err, update.ErrStaleToken) {
		return // A newer holder of the lock has written the report.
	}
	if err != nil {
		panic(err)
	}
	fmt.Println(cm.Data["status"])

	if err := lock.Release(ctx); err != nil {
		panic(err)
	}
	<-lock.Lost()
	fmt.Println("released")
	// Output:
	// published
	// released
}
