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

package controllers

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// CacheOptions is the cache of a manager that runs these controllers.
// Nothing they do reads managedFields, and they are over half of a
// finished JobState as the API server returns it (1.2 of 2.1 KB): the
// cache keeps every object without them. Writes are unaffected; an Update
// that carries no managedFields keeps the stored ones.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
}

// SetupWithManager registers the JobState and EventStream controllers
// with mgr, each reconciling up to maxConcurrent objects at once (0:
// controller-runtime's default, one).
func SetupWithManager(mgr ctrl.Manager, maxConcurrent int) error {
	if err := (&JobStateReconciler{Client: mgr.GetClient(), MaxConcurrentReconciles: maxConcurrent}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the JobState controller: %w", err)
	}
	if err := (&EventStreamReconciler{Client: mgr.GetClient(), MaxConcurrentReconciles: maxConcurrent}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the EventStream controller: %w", err)
	}
	return nil
}
