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
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// Every validation rule jobstate ships has a key, and every key has a test
// (a row of one of the tables that write the illegal value to the real API
// server). TestEveryRuleHasATest finds the rules in the generated CRDs and
// in config/admission, so a marker or policy added without a test fails
// here. A key is
//
//	<resource> <path> <keyword>           for an OpenAPI bound: "jobstates status.progress maximum"
//	<resource> <path> required            for a required field: "eventsegments spec.stream required"
//	<resource> <path> rule: <message>     for a CEL rule (x-kubernetes-validations)
//	policy <name>: <validation message>   for a ValidatingAdmissionPolicy validation
//
// where path is the field's JSON path below the object ("[]" steps into a
// list's items; "." is the object itself).

// ruleSchema is the part of an OpenAPI v3 schema that holds rules.
type ruleSchema struct {
	Minimum     *json.Number      `json:"minimum"`
	Maximum     *json.Number      `json:"maximum"`
	MinLength   *int64            `json:"minLength"`
	MaxLength   *int64            `json:"maxLength"`
	MaxItems    *int64            `json:"maxItems"`
	Pattern     string            `json:"pattern"`
	Enum        []json.RawMessage `json:"enum"`
	Required    []string          `json:"required"`
	ListType    string            `json:"x-kubernetes-list-type"`
	Validations []struct {
		Rule    string `json:"rule"`
		Message string `json:"message"`
	} `json:"x-kubernetes-validations"`
	Properties map[string]ruleSchema `json:"properties"`
	Items      *ruleSchema           `json:"items"`
}

// crdRules returns the keys of every rule in the CRD of resource.
func crdRules(t *testing.T, resource string) []string {
	t.Helper()
	data, err := os.ReadFile(crdFile(resource))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema ruleSchema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("parsing %s: %v", crdFile(resource), err)
	}
	var keys []string
	for _, v := range crd.Spec.Versions {
		if v.Name != jobstatev1alpha1.GroupVersion.Version {
			continue
		}
		walkRules(resource, "", v.Schema.OpenAPIV3Schema, &keys)
	}
	if len(keys) == 0 {
		t.Fatalf("no rules found in %s", crdFile(resource))
	}
	return keys
}

func walkRules(resource, path string, s ruleSchema, keys *[]string) {
	at := path
	if at == "" {
		at = "."
	}
	add := func(keyword string) { *keys = append(*keys, resource+" "+at+" "+keyword) }
	if s.Minimum != nil {
		add("minimum")
	}
	if s.Maximum != nil {
		add("maximum")
	}
	if s.MinLength != nil {
		add("minLength")
	}
	if s.MaxLength != nil {
		add("maxLength")
	}
	if s.MaxItems != nil {
		add("maxItems")
	}
	if s.Pattern != "" {
		add("pattern")
	}
	if len(s.Enum) > 0 {
		add("enum")
	}
	if s.ListType == "map" {
		add("listType=map")
	}
	for _, v := range s.Validations {
		add("rule: " + v.Message)
	}
	for _, r := range s.Required {
		*keys = append(*keys, resource+" "+join(path, r)+" required")
	}
	for name, p := range s.Properties {
		walkRules(resource, join(path, name), p, keys)
	}
	if s.Items != nil {
		walkRules(resource, path+"[]", *s.Items, keys)
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// policyRules returns the keys of every validation of the
// ValidatingAdmissionPolicies in config/admission.
func policyRules(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../config/admission/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Spec struct {
					Validations []struct {
						Message           string `json:"message"`
						MessageExpression string `json:"messageExpression"`
						Expression        string `json:"expression"`
					} `json:"validations"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj.Kind != "ValidatingAdmissionPolicy" {
				continue
			}
			for i := range obj.Spec.Validations {
				keys = append(keys, policyKey(obj.Metadata.Name, i))
			}
		}
	}
	if len(keys) == 0 {
		t.Fatal("no admission policy validations found in config/admission")
	}
	return keys
}

// policyKey names validation i of the policy name.
func policyKey(name string, i int) string {
	return "policy " + name + " validation " + string(rune('0'+i))
}

// allRules is every rule key, sorted.
func allRules(t *testing.T) []string {
	var keys []string
	for _, r := range []string{"jobstates", "eventstreams", "eventsegments"} {
		keys = append(keys, crdRules(t, r)...)
	}
	keys = append(keys, policyRules(t)...)
	sort.Strings(keys)
	return slices.Compact(keys)
}

// testedRules are the rule keys of every row of the tables that write
// illegal values to the API server, with the rows naming each.
func testedRules() map[string][]string {
	rows := map[string][]string{}
	for _, tc := range invalidWriteCases() {
		rows[tc.rule] = append(rows[tc.rule], "TestInvalidWritesRejected/"+tc.name)
	}
	for _, tc := range invalidSpecCases() {
		rows[tc.rule] = append(rows[tc.rule], "TestInvalidSpecRejectedAtCreate/"+tc.name)
	}
	for _, tc := range ruleCases() {
		rows[tc.rule] = append(rows[tc.rule], "TestRulesRefuseIllegalWrites/"+tc.rule+"/"+tc.name)
	}
	return rows
}

// TestEveryRuleHasATest: every rule of the CRDs and of config/admission
// has a row in one of the tables (so a rule added without a test fails
// here), and every row names a rule that exists (so a reworded or removed
// rule is noticed). It reads files only and needs no API server. Run it
// with -v to print which rows test each rule.
func TestEveryRuleHasATest(t *testing.T) {
	rules := allRules(t)
	rows := testedRules()
	for _, r := range rules {
		if len(rows[r]) == 0 {
			t.Errorf("rule %q has no test: add a row to ruleCases (rules_test.go) that makes the illegal write", r)
			continue
		}
		t.Logf("%s: %s", r, strings.Join(rows[r], ", "))
	}
	for r, names := range rows {
		if !slices.Contains(rules, r) {
			t.Errorf("rows %q test rule %q, which is in no CRD or policy", names, r)
		}
	}
}
