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
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jobstate-dev/jobstate/pkg/update"
)

// An updateAction increments a counter in a ConfigMap. Update reads the
// object (or creates it), applies the action and writes with the
// resourceVersion precondition, re-reading and re-applying on conflict — so
// concurrent incrementers never lose one another's writes.
func ExampleUpdater_Update() {
	ctx := context.Background()
	u, err := update.New[*corev1.ConfigMap](env.Client, update.Options{CreateIfMissing: true})
	if err != nil {
		panic(err)
	}
	incr := func(cm *corev1.ConfigMap) error {
		n, _ := strconv.Atoi(cm.Data["visits"])
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["visits"] = strconv.Itoa(n + 1)
		return nil
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "visits"}}
	for range 3 {
		// cm carries the stored object between calls: no read before write.
		if err := u.Update(ctx, cm, incr); err != nil {
			panic(err)
		}
	}
	fmt.Println(cm.Data["visits"])
	// Output: 3
}
