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
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Output is -o: a table (the default; "wide" adds the columns of priority
// 1), or one of kubectl's printers of the objects themselves: json, yaml,
// name, jsonpath=..., go-template=....
type Output struct {
	print *genericclioptions.PrintFlags
}

// AddOutput adds -o to cmd.
func AddOutput(cmd *cobra.Command) *Output {
	out := &Output{print: genericclioptions.NewPrintFlags("").WithTypeSetter(Scheme)}
	out.print.AddFlags(cmd)
	flag := cmd.Flags().Lookup("output")
	flag.Usage = "Output format: table (default), wide, " + strings.Join(out.print.AllowedFormats(), ", ") + "."
	return out
}

// table reports whether the output is a table (and whether wide).
func (out *Output) table() (table, wide bool) {
	switch f := *out.print.OutputFormat; f {
	case "", "table":
		return true, false
	case "wide":
		return true, true
	}
	return false, false
}

// Validate refuses an unknown -o before anything is read or written.
func (out *Output) Validate() error {
	if t, _ := out.table(); t {
		return nil
	}
	if _, err := out.print.ToPrinter(); err != nil {
		return usageError("-o %s: %v; use table, wide, %s", *out.print.OutputFormat, err, strings.Join(out.print.AllowedFormats(), ", "))
	}
	return nil
}

// Print prints objs: the table built from them (rows[i] for objs[i]), or
// the objects themselves. A list of more than one object prints as a List
// in json and yaml, as kubectl does.
func (out *Output) Print(o *Options, columns []metav1.TableColumnDefinition, objs []runtime.Object, rows [][]any) error {
	if table, wide := out.table(); table {
		if len(objs) == 0 {
			_, err := fmt.Fprintln(o.ErrOut, "No resources found.")
			return err
		}
		return printTable(o.Out, columns, objs, rows, TableOptions{Wide: wide, WithNamespace: o.AllNamespaces})
	}
	p, err := out.print.ToPrinter()
	if err != nil {
		return err
	}
	if len(objs) == 1 {
		return p.PrintObj(objs[0], o.Out)
	}
	list := &metav1.List{TypeMeta: metav1.TypeMeta{Kind: "List", APIVersion: "v1"}}
	for _, obj := range slices.Clone(objs) {
		list.Items = append(list.Items, runtime.RawExtension{Object: obj})
	}
	if *out.print.OutputFormat == "name" {
		for _, obj := range objs {
			if err := p.PrintObj(obj, o.Out); err != nil {
				return err
			}
		}
		return nil
	}
	return p.PrintObj(list, o.Out)
}
