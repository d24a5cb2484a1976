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

package v1alpha1_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// crdFile is the CRD controller-gen generates for resource.
func crdFile(resource string) string {
	return "../../config/crd/bases/state.jobstate.dev_" + resource + ".yaml"
}

// schema is the part of an OpenAPI v3 schema the constants are checked
// against.
type schema struct {
	Default    json.RawMessage   `json:"default"`
	MaxLength  *int64            `json:"maxLength"`
	Maximum    *int64            `json:"maximum"`
	MaxItems   *int64            `json:"maxItems"`
	Properties map[string]schema `json:"properties"`
	Items      *schema           `json:"items"`
}

// TestLimitsMatchCRD checks each constant of limits.go against the marker
// it repeats, as the generated CRD has it: a marker changed without its
// constant (or the other way round) fails here. It reads the file only and
// needs no API server.
func TestLimitsMatchCRD(t *testing.T) {
	for _, tc := range []struct {
		field   string // dotted path below the root; "[]" steps into items
		keyword string // default, maxLength, maximum or maxItems
		want    int64
		crd     string // the resource; "" is jobstates
	}{
		{"spec.backoffLimit", "default", int64(jobstatev1alpha1.DefaultBackoffLimit), ""},
		{"spec.heartbeatTimeoutSeconds", "default", int64(jobstatev1alpha1.DefaultHeartbeatTimeoutSeconds), ""},
		{"status.progress", "maximum", int64(jobstatev1alpha1.MaxProgress), ""},
		{"status.holder", "maxLength", jobstatev1alpha1.MaxHolderLength, ""},
		{"status.message", "maxLength", jobstatev1alpha1.MaxMessageLength, ""},
		{"status.projection.rejected", "maxItems", jobstatev1alpha1.MaxRejectedEvents, ""},
		{"status.projection.rejected[].type", "maxLength", jobstatev1alpha1.MaxRejectedTypeLength, ""},
		{"status.projection.rejected[].message", "maxLength", jobstatev1alpha1.MaxRejectedMessageLength, ""},
		{"head.events", "maxLength", jobstatev1alpha1.MaxEventLogLength, "eventstreams"},
		{"spec.events", "maxLength", jobstatev1alpha1.MaxEventLogLength, "eventsegments"},
		{"spec.stream", "maxLength", jobstatev1alpha1.MaxStreamNameLength, "eventsegments"},
	} {
		if tc.crd == "" {
			tc.crd = "jobstates"
		}
		t.Run(tc.crd+"/"+tc.field+"/"+tc.keyword, func(t *testing.T) {
			s := readSchema(t, crdFile(tc.crd))
			for _, name := range strings.Split(tc.field, ".") {
				items := strings.HasSuffix(name, "[]")
				next, ok := s.Properties[strings.TrimSuffix(name, "[]")]
				if !ok {
					t.Fatalf("the CRD schema has no %s (at %q)", tc.field, name)
				}
				if s = next; items {
					if s.Items == nil {
						t.Fatalf("%s is not an array in the CRD schema", name)
					}
					s = *s.Items
				}
			}
			got := keyword(t, s, tc.keyword)
			if got == nil {
				t.Fatalf("the CRD schema of %s has no %s", tc.field, tc.keyword)
			}
			if *got != tc.want {
				t.Errorf("the CRD schema of %s has %s %d, the constant is %d", tc.field, tc.keyword, *got, tc.want)
			}
		})
	}
}

// readSchema returns the openAPIV3Schema of the CRD's one version.
func readSchema(t *testing.T, file string) schema {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema schema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name == jobstatev1alpha1.GroupVersion.Version {
			return v.Schema.OpenAPIV3Schema
		}
	}
	t.Fatalf("%s has no version %s", file, jobstatev1alpha1.GroupVersion.Version)
	return schema{}
}

// keyword is the value of an integer keyword of s, or nil if s has none.
func keyword(t *testing.T, s schema, name string) *int64 {
	t.Helper()
	switch name {
	case "default":
		if s.Default == nil {
			return nil
		}
		var v int64
		if err := json.Unmarshal(s.Default, &v); err != nil {
			t.Fatalf("default %s is not an integer: %v", s.Default, err)
		}
		return &v
	case "maxLength":
		return s.MaxLength
	case "maximum":
		return s.Maximum
	case "maxItems":
		return s.MaxItems
	}
	t.Fatalf("unknown keyword %q", name)
	return nil
}
