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
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/jobstate-dev/jobstate/pkg/update"
)

// FuzzAnnotationToken: the fencing token kept in an annotation is text
// anyone who may update the object can write. Whatever it holds, reading it
// does not panic; a token written by Set reads back as itself; a Fenced
// write refuses every token below one the annotation holds as a number,
// and every token when it holds no number (it fails closed, with an error
// naming the annotation), leaving the object as it was.
func FuzzAnnotationToken(f *testing.F) {
	for _, s := range []struct {
		stored string
		token  int64
	}{{"5", 3}, {"", 0}, {"garbage", 1}, {"-7", -8}, {"99999999999999999999", 5}, {"+5", 4}, {" 5", 4}, {"0x10", 3}} {
		f.Add(s.stored, s.token)
	}
	const key = "example.com/token"
	field := update.AnnotationToken[*corev1.ConfigMap](key)
	f.Fuzz(func(t *testing.T, stored string, token int64) {
		cm := &corev1.ConfigMap{}
		cm.Annotations = map[string]string{key: stored}
		n, parseErr := strconv.ParseInt(stored, 10, 64)
		if got, err := field.Get(cm); (err != nil) != (parseErr != nil) || err == nil && got != n {
			t.Fatalf("Get of %q = %d, %v", stored, got, err)
		}
		set := &corev1.ConfigMap{}
		field.Set(set, token)
		if got, err := field.Get(set); err != nil || got != token {
			t.Fatalf("token %d was written as %q and reads as %d, %v", token, set.Annotations[key], got, err)
		}
		applied := false
		err := update.Fenced(token, field, func(*corev1.ConfigMap) error { applied = true; return nil })(cm)
		switch {
		case parseErr != nil:
			if err == nil || applied || !strings.Contains(err.Error(), key) || cm.Annotations[key] != stored {
				t.Fatalf("token %d against a stored %q: err %v, applied %v, annotation now %q", token, stored, err, applied, cm.Annotations[key])
			}
		case n > token:
			if !errors.Is(err, update.ErrStaleToken) || applied || cm.Annotations[key] != stored {
				t.Fatalf("token %d against a stored %q: err %v, applied %v, annotation now %q", token, stored, err, applied, cm.Annotations[key])
			}
		default:
			if err != nil || !applied {
				t.Fatalf("token %d against a stored %q: err %v, applied %v", token, stored, err, applied)
			}
		}
	})
}
