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
	"errors"
	"fmt"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrStaleToken is matched (errors.Is) by every *StaleTokenError.
var ErrStaleToken = errors.New("fencing token is stale")

// StaleTokenError: the object already carries a fencing token newer than the
// writer's — a later holder of the lock has written it.
type StaleTokenError struct {
	// Token is the writer's token; Stored the object's.
	Token, Stored int64
}

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("fencing token %d is stale: the object was written under token %d", e.Token, e.Stored)
}

// Is makes errors.Is(err, ErrStaleToken) true.
func (e *StaleTokenError) Is(target error) bool { return target == ErrStaleToken }

// TokenField says where an object keeps the fencing token of its last
// guarded write. Get returns 0 for an object never written under a token,
// and an error if what is stored is no token: Fenced then refuses the
// write rather than guess (a guess of 0 would let any holder in).
type TokenField[T any] struct {
	Get func(T) (int64, error)
	Set func(T, int64)
}

// AnnotationToken keeps the token in the annotation key, as a decimal
// number. Annotations are metadata: use it for writes to the main
// resource, not the status subresource (which ignores metadata changes).
func AnnotationToken[T client.Object](key string) TokenField[T] {
	return TokenField[T]{
		Get: func(obj T) (int64, error) {
			v, ok := obj.GetAnnotations()[key]
			if !ok {
				return 0, nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("annotation %s is %q, not a fencing token (a decimal int64): set it to the last holder's token", key, v)
			}
			return n, nil
		},
		Set: func(obj T, token int64) {
			a := obj.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a[key] = strconv.FormatInt(token, 10)
			obj.SetAnnotations(a)
		},
	}
}

// Fenced guards action with a fencing token (for example a lease.Lock's
// Token): if the object already carries a larger token, a newer lock holder
// has written it and the action fails with a *StaleTokenError without being
// applied; otherwise the action is applied and the token stored with it.
//
// Because the write that stores the token is preconditioned on the
// resourceVersion read, a holder that paused past its lease cannot slip a
// write in after its successor's first guarded write: it either conflicts and
// re-reads the newer token, or reads it in the first place.
func Fenced[T any](token int64, field TokenField[T], action Action[T]) Action[T] {
	return func(obj T) error {
		stored, err := field.Get(obj)
		if err != nil {
			return err
		}
		if stored > token {
			return &StaleTokenError{Token: token, Stored: stored}
		}
		if err := action(obj); err != nil {
			return err
		}
		if stored != token {
			field.Set(obj, token)
		}
		return nil
	}
}
