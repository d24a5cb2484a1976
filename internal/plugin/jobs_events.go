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

package plugin

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/text"
)

// reportingController names the plugin in the Events it records.
const reportingController = "jobstate.dev/kubectl-jobstate"

// maxEventNote keeps an Event's note within events.k8s.io/v1's 1 kB,
// counting characters of up to 4 bytes.
const maxEventNote = 1024 / 4

// eventRecorder records the transitions the plugin makes as Kubernetes
// Events on the JobState, as a worker's Recorder does, so that a job
// driven by hand in an incident says so in its Events. Unlike client-go's
// recorder it writes each Event before returning: the process exits right
// after. An Event that cannot be written is a warning, not a failure: the
// transition is already stored.
type eventRecorder struct {
	ctx      context.Context
	c        client.Client
	instance string // the identity the plugin acts as
	warn     io.Writer
}

var _ events.EventRecorder = (*eventRecorder)(nil)

// Eventf records one Event regarding the object.
func (r *eventRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(Scheme, regarding)
	if err != nil {
		fmt.Fprintf(r.warn, "warning: not recording an Event of %s: %v\n", reason, err)
		return
	}
	now := time.Now()
	e := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ref.Namespace,
			Name:      fmt.Sprintf("%v.%x", ref.Name, now.UnixNano()),
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: reportingController,
		ReportingInstance:   text.Truncate(reportingController+"/"+r.instance, 128, ""),
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Note:                text.Truncate(fmt.Sprintf(note, args...), maxEventNote, "..."),
		Type:                eventtype,
	}
	if related != nil {
		if rel, err := reference.GetReference(Scheme, related); err == nil {
			e.Related = rel
		}
	}
	if e.Type == "" {
		e.Type = corev1.EventTypeNormal
	}
	if err := r.c.Create(r.ctx, e); err != nil {
		fmt.Fprintf(r.warn, "warning: the %s is stored, but recording its Event failed: %v\n", reason, err)
	}
}
