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

// Package v1alpha1 contains the state.jobstate.dev/v1alpha1 API: JobState, the
// state of one job that many writers (workers, controllers, people with
// kubectl) change concurrently, and EventStream with its EventSegments, an
// append-only history of events. The invariants every writer must respect are
// enforced by the API server itself through CEL validation rules on the types.
// +kubebuilder:object:generate=true
// +groupName=state.jobstate.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "state.jobstate.dev", Version: "v1alpha1"}

	// SchemeBuilder adds this group-version's types to a scheme. (The API
	// package depends only on apimachinery, so anyone can import it.)
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&JobState{}, &JobStateList{},
		&EventStream{}, &EventStreamList{},
		&EventSegment{}, &EventSegmentList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
