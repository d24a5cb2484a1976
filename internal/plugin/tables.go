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
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// TableOptions are how PrintJobs and PrintStreams lay out a table.
type TableOptions struct {
	// Wide adds the columns -o wide shows.
	Wide bool
	// WithNamespace adds a NAMESPACE column first, as -A does.
	WithNamespace bool
}

// PrintJobs writes jobs to w as the table `kubectl jobstate jobs get`
// prints, with ages as of now, so that another program (make run) shows
// the same columns. No jobs write nothing.
func PrintJobs(w io.Writer, jobs []jobstatev1alpha1.JobState, now time.Time, opts TableOptions) error {
	objs, rows := jobTable(jobs, now)
	return printTable(w, jobColumns, objs, rows, opts)
}

// PrintStreams writes streams to w as the table `kubectl jobstate streams
// get` prints, with ages as of now. No streams write nothing.
func PrintStreams(w io.Writer, streams []jobstatev1alpha1.EventStream, now time.Time, opts TableOptions) error {
	objs, rows := streamTable(streams, now)
	return printTable(w, streamColumns, objs, rows, opts)
}

func jobTable(jobs []jobstatev1alpha1.JobState, now time.Time) ([]runtime.Object, [][]any) {
	objs := make([]runtime.Object, len(jobs))
	rows := make([][]any, len(jobs))
	for i := range jobs {
		objs[i] = &jobs[i]
		rows[i] = jobRow(&jobs[i], now)
	}
	return objs, rows
}

func streamTable(streams []jobstatev1alpha1.EventStream, now time.Time) ([]runtime.Object, [][]any) {
	objs := make([]runtime.Object, len(streams))
	rows := make([][]any, len(streams))
	for i := range streams {
		objs[i] = &streams[i]
		rows[i] = streamRow(&streams[i], now)
	}
	return objs, rows
}

// printTable prints rows (rows[i] describing objs[i]) under columns with
// kubectl's table printer.
func printTable(w io.Writer, columns []metav1.TableColumnDefinition, objs []runtime.Object, rows [][]any, opts TableOptions) error {
	t := &metav1.Table{ColumnDefinitions: columns}
	for i, obj := range objs {
		t.Rows = append(t.Rows, metav1.TableRow{Cells: rows[i], Object: runtime.RawExtension{Object: obj}})
	}
	if len(t.Rows) == 0 {
		return nil
	}
	p := printers.NewTablePrinter(printers.PrintOptions{Wide: opts.Wide, WithNamespace: opts.WithNamespace})
	return p.PrintObj(t, w)
}
