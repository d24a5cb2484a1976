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

package jobstate_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/jobstate"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// crd validates JobStates as the API server does, in process: the
// generated CRD's OpenAPI schema (with its defaults) and its CEL rules.
type crd struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	rules      *cel.Validator
}

var jobStateCRD = sync.OnceValues(func() (*crd, error) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "state.jobstate.dev_jobstates.yaml"))
	if err != nil {
		return nil, err
	}
	var def apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &def); err != nil {
		return nil, err
	}
	var internal apiextensionsinternal.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(def.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		return nil, err
	}
	v, _, err := apiservervalidation.NewSchemaValidator(&internal)
	if err != nil {
		return nil, err
	}
	return &crd{structural: s, schema: v, rules: cel.NewValidator(s, true, celconfig.PerCallLimit)}, nil
})

// unstructured is js as the API server's validation sees it.
func unstructured(t *testing.T, js *jobstatev1alpha1.JobState) map[string]any {
	t.Helper()
	b, err := json.Marshal(js)
	if err != nil {
		t.Fatal(err)
	}
	var u map[string]any
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	return intsOf(u).(map[string]any)
}

// intsOf turns whole float64s into int64s, as the API server's decoder
// gives them.
func intsOf(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = intsOf(x)
		}
	case []any:
		for i, x := range v {
			v[i] = intsOf(x)
		}
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
	}
	return v
}

// refused returns why the API server would refuse a status write from old
// to js; empty if it would store it.
func (c *crd) refused(t *testing.T, js, old *jobstatev1alpha1.JobState) field.ErrorList {
	t.Helper()
	obj, prev := unstructured(t, js), unstructured(t, old)
	structuraldefaulting.Default(obj, c.structural)
	structuraldefaulting.Default(prev, c.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, c.schema)
	if len(errs) > 0 {
		return errs
	}
	errs, _ = c.rules.Validate(context.Background(), nil, c.structural, obj, prev, celconfig.RuntimeCELCostBudget)
	return errs
}

// FuzzProject: the events of a JobState's stream are written by workers,
// so their type and data are untrusted text. Whatever they hold, Project
// neither panics nor fails; it advances the projected position over each
// event; projecting the same events again changes nothing; and the status
// it computes is one the API server stores: it passes the CRD's schema and
// CEL rules as a write from the status before the events (one batch) and
// from the status before each event (batches of one). A status the API
// server refused would stop the projection at that event for good.
func FuzzProject(f *testing.F) {
	c, err := jobStateCRD()
	if err != nil {
		f.Fatal(err)
	}
	payload := func(p jobstate.EventPayload) string {
		b, _ := json.Marshal(p)
		return string(b)
	}
	claim := payload(jobstate.EventPayload{Holder: "w1"})
	beat := payload(jobstate.EventPayload{Holder: "w1", Attempt: 1, Progress: 40})
	for _, s := range []struct {
		prefix             uint8
		t1, d1, t2, d2, t3 string
		d3                 string
	}{
		{0, jobstate.EventClaimed, claim, jobstate.EventHeartbeat, beat, jobstate.EventSucceeded, payload(jobstate.EventPayload{Holder: "w1", Attempt: 1, Message: "done"})},
		{1, jobstate.EventFailed, payload(jobstate.EventPayload{Holder: "w1", Attempt: 1, Message: "disk full"}), jobstate.EventClaimed, payload(jobstate.EventPayload{Holder: "w2"}), jobstate.EventLost, payload(jobstate.EventPayload{Holder: "w2", Attempt: 2})},
		{1, jobstate.EventDataPatched, `{"patch":{"cursor":"p-2","n":null,"deep":{"a":[1,2]}}}`, jobstate.EventHeartbeat, `{"holder":"w1","attempt":1,"progress":101}`, jobstate.EventCancelled, `{"message":"stop"}`},
		{2, jobstate.EventClaimed, claim, "Exploded", `{}`, jobstate.EventDeadlineExceeded, `{}`},
		{0, jobstate.EventClaimed, `{"holder":"` + "\xff\xfe" + `"}`, jobstate.EventClaimed, `{"holder":1}`, jobstate.EventSucceeded, `{"holder":"w1","attempt":1,"message":"` + "\u00e9\u00e9" + `","extra":true}`},
		{1, jobstate.EventDataPatched, `{"patch":{}}`, jobstate.EventDataPatched, `{}`, jobstate.EventHeartbeat, `{"holder":"w1","attempt":-1}`},
		{3, jobstate.EventClaimed, claim, jobstate.EventFailed, `{"holder":"w1","attempt":1,"message":"x"}`, jobstate.EventCancelled, `null`},
	} {
		f.Add(s.prefix, s.t1, s.d1, s.t2, s.d2, s.t3, s.d3)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// The legal histories a fuzzed batch may follow.
	prefixes := [][]stream.EventData{
		nil,
		{jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"})},
		{jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"}), jobstate.NewEvent(jobstate.EventFailed, jobstate.EventPayload{Holder: "w1", Attempt: 1})},
		{jobstate.NewEvent(jobstate.EventClaimed, jobstate.EventPayload{Holder: "w1"}), jobstate.NewEvent(jobstate.EventSucceeded, jobstate.EventPayload{Holder: "w1", Attempt: 1})},
	}
	f.Fuzz(func(t *testing.T, prefix uint8, t1, d1, t2, d2, t3, d3 string) {
		js := &jobstatev1alpha1.JobState{
			TypeMeta:   metav1.TypeMeta{APIVersion: jobstatev1alpha1.GroupVersion.String(), Kind: "JobState"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "job", Generation: 1, CreationTimestamp: metav1.NewTime(t0)},
			Spec:       jobstatev1alpha1.JobStateSpec{EventStreamRef: &jobstatev1alpha1.EventStreamReference{Name: "events"}},
		}
		var events []stream.RecordedEvent
		for _, e := range prefixes[int(prefix)%len(prefixes)] {
			data, _ := json.Marshal(e.Data)
			events = append(events, stream.RecordedEvent{Type: e.Type, Data: data})
		}
		n := len(events)
		for _, e := range [][2]string{{t1, d1}, {t2, d2}, {t3, d3}} {
			events = append(events, stream.RecordedEvent{Type: e[0], Data: json.RawMessage(e[1])})
		}
		for i := range events {
			events[i].Position = int64(i)
			events[i].Time = t0.Add(time.Duration(i) * time.Minute)
		}
		if err := jobstate.Project(js, events[:n]); err != nil {
			t.Fatalf("projecting the legal prefix: %v", err)
		}
		stored := js.DeepCopy()
		for i := n; i < len(events); i++ {
			before := js.DeepCopy()
			if err := jobstate.Project(js, events[i:i+1]); err != nil {
				t.Fatalf("projecting event %d (%s %q): %v", i, events[i].Type, events[i].Data, err)
			}
			if got := jobstate.ProjectedPosition(js); got != int64(i) {
				t.Fatalf("after event %d the projected position is %d", i, got)
			}
			if errs := c.refused(t, js, before); len(errs) > 0 {
				t.Fatalf("the API server would refuse the status after event %d (%s %q): %v\nstatus: %+v", i, events[i].Type, events[i].Data, errs, js.Status)
			}
			if errs := c.refused(t, js, stored); len(errs) > 0 {
				t.Fatalf("the API server would refuse the status after events %d to %d as one write: %v", n, i, errs)
			}
		}
		again := js.DeepCopy()
		if err := jobstate.Project(again, events); err != nil || !equality.Semantic.DeepEqual(again.Status, js.Status) {
			t.Fatalf("projecting the same events again changed the status (%v)", err)
		}
	})
}

// TestCRDOracle: the in-process check FuzzProject relies on refuses what
// the API server refuses (validation_test.go has these on the real one)
// and accepts a legal write.
func TestCRDOracle(t *testing.T) {
	c, err := jobStateCRD()
	if err != nil {
		t.Fatal(err)
	}
	succeeded := &jobstatev1alpha1.JobState{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "job"},
		Status: jobstatev1alpha1.JobStateStatus{Phase: jobstatev1alpha1.PhaseSucceeded, Holder: "w1", Attempt: 1}}
	for _, tc := range []struct {
		name   string
		mutate func(s *jobstatev1alpha1.JobStateStatus)
		legal  bool
	}{
		{"a new message", func(s *jobstatev1alpha1.JobStateStatus) { s.Message = "done" }, true},
		{"terminal to Running", func(s *jobstatev1alpha1.JobStateStatus) { s.Phase = jobstatev1alpha1.PhaseRunning }, false},
		{"attempt decreases", func(s *jobstatev1alpha1.JobStateStatus) { s.Attempt = 0 }, false},
		{"progress 101", func(s *jobstatev1alpha1.JobStateStatus) { s.Progress = 101 }, false},
		{"holder of 254", func(s *jobstatev1alpha1.JobStateStatus) { s.Holder = string(make([]byte, 254)) }, false},
		{"17 rejected events", func(s *jobstatev1alpha1.JobStateStatus) {
			s.Projection = &jobstatev1alpha1.ProjectionStatus{Rejected: make([]jobstatev1alpha1.RejectedEvent, 17)}
			for i := range s.Projection.Rejected {
				s.Projection.Rejected[i] = jobstatev1alpha1.RejectedEvent{Type: "T", Reason: "UnknownType"}
			}
		}, false},
	} {
		js := succeeded.DeepCopy()
		tc.mutate(&js.Status)
		if errs := c.refused(t, js, succeeded); (len(errs) == 0) != tc.legal {
			t.Errorf("%s: refused %v, want legal %v", tc.name, errs, tc.legal)
		}
	}
}
