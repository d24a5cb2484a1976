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

package update

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// read gets the object live. A missing object is an empty one carrying the
// key when CreateIfMissing is set, else an error.
func (u *Updater[T]) read(ctx context.Context, key client.ObjectKey) (T, bool, error) {
	obj := u.newObj()
	err := u.live.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && u.opts.CreateIfMissing {
		obj = u.newObj()
		obj.SetNamespace(key.Namespace)
		obj.SetName(key.Name)
		return obj, false, nil
	}
	if err != nil {
		return obj, false, fmt.Errorf("reading %s %s: %w", u.kind, key, err)
	}
	return obj, true, nil
}

// write stores work with its resourceVersion as the precondition, or creates
// it. It returns what the API server stored.
func (u *Updater[T]) write(ctx context.Context, work T, exists bool) (T, error) {
	if exists {
		if work.GetResourceVersion() == "" {
			// An Update without resourceVersion would be unconditional.
			return work, fmt.Errorf("updating %s %s: no resourceVersion to use as precondition", u.kind, client.ObjectKeyFromObject(work))
		}
		if u.opts.Status {
			return work, u.c.Status().Update(ctx, work)
		}
		return work, u.c.Update(ctx, work)
	}
	if !u.opts.Status {
		return work, u.c.Create(ctx, work)
	}
	return u.createWithStatus(ctx, work)
}

// createWithStatus creates work and then writes its status, which the API
// server drops on create.
func (u *Updater[T]) createWithStatus(ctx context.Context, work T) (T, error) {
	desired, err := runtime.DefaultUnstructuredConverter.ToUnstructured(work)
	if err != nil {
		return work, fmt.Errorf("creating %s %s: %w", u.kind, client.ObjectKeyFromObject(work), err)
	}
	status, _ := desired["status"].(map[string]any)
	if err := u.c.Create(ctx, work); err != nil || status == nil {
		return work, err
	}
	created, err := runtime.DefaultUnstructuredConverter.ToUnstructured(work)
	if err != nil {
		return work, err
	}
	created["status"] = status
	withStatus := u.newObj()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(created, withStatus); err != nil {
		return work, err
	}
	err = u.c.Status().Update(ctx, withStatus)
	if err != nil && !u.retriable(err) {
		// The status was refused: take the created object back (only
		// this very object, by UID), so a failed Update leaves nothing.
		uid := work.GetUID()
		_ = u.c.Delete(ctx, work, client.Preconditions{UID: &uid})
		return withStatus, fmt.Errorf("creating %s %s: writing its status: %w", u.kind, client.ObjectKeyFromObject(work), err)
	}
	// A conflict means someone wrote the new object first: the retry
	// re-reads it and applies the action to its status.
	return withStatus, err
}

func (u *Updater[T]) copyOf(obj T) T {
	c := u.newObj()
	obj.DeepCopyInto(c)
	return c
}
