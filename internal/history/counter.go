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

package history

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// CounterInput is an operation on a counter that starts at 0: an increment
// through update.Updater, or a live read.
type CounterInput struct {
	// Read is a read; otherwise the operation adds 1.
	Read bool
	// ID names an increment: its action also records it in the object, so
	// that a final read shows which increments took effect, in order (see
	// SettleIncrements).
	ID string
}

// CounterOutput is what a counter operation returned.
type CounterOutput struct {
	Outcome Outcome
	// Value is the counter as read, or as the increment wrote it: the
	// value its own action computed in the write that was stored.
	Value int
	// Err is the operation's error, for the visualization.
	Err string
}

func (o CounterOutput) outcome() Outcome { return o.Outcome }

// Increment is the input of the increment id.
func Increment(id string) CounterInput { return CounterInput{ID: id} }

// ReadCounter is the input of a read.
func ReadCounter() CounterInput { return CounterInput{Read: true} }

// IncrementOutput is the output of an increment that returned err, whose
// action computed value in its last call.
func IncrementOutput(value int, err error) CounterOutput {
	out := CounterOutput{Outcome: OutcomeOf(err), Value: value}
	if err != nil {
		out.Value, out.Err = 0, err.Error()
	}
	return out
}

// CounterModel is a counter: an increment adds exactly 1 and returns the
// new value; a read returns the value. A refused increment changes
// nothing; one whose outcome is unknown adds 1 wherever the checker places
// it (after everything else: never) — at the point where the counter
// reaches its Value, if SettleIncrements found it.
func CounterModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return 0 },
		Step: func(state, input, output any) (bool, any) {
			n, in, out := state.(int), input.(CounterInput), output.(CounterOutput)
			switch {
			case in.Read:
				return out.Outcome != Done || out.Value == n, n
			case out.Outcome == Done:
				return out.Value == n+1, n + 1
			case out.Outcome == Refused:
				return true, n
			}
			return out.Value == 0 || out.Value == n+1, n + 1
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(CounterInput), output.(CounterOutput)
			op := "increment"
			if in.Read {
				op = "read"
			}
			if out.Outcome != Done {
				return fmt.Sprintf("%s: %s (%s)", op, out.Outcome, out.Err)
			}
			return fmt.Sprintf("%s -> %d", op, out.Value)
		},
		DescribeState: func(state any) string { return fmt.Sprint(state) },
	}
}

// SettleIncrements uses evidence of what the increments of unknown outcome
// did: applied is the ids every stored increment recorded in the object,
// in order, as a final live read shows them (each action appends its id).
// An unknown increment whose id is not there never took effect: it is left
// out, as the checker could place it after everything else anyway. One at
// position p wrote p+1, which its output then says; it still returns at
// +∞, since when it took effect is not known. Without this the checker
// tries every subset of the unknown increments at every point — they are
// otherwise alike — and does not finish for a few dozen of them. Failed
// reads, which observed nothing, are left out too.
func SettleIncrements(ops []porcupine.Operation, applied []string) []porcupine.Operation {
	at := map[string]int{}
	for p, id := range applied {
		at[id] = p
	}
	var settled []porcupine.Operation
	for _, op := range ops {
		in, out := op.Input.(CounterInput), op.Output.(CounterOutput)
		if out.Outcome == Unknown {
			p, ok := at[in.ID]
			if in.Read || !ok {
				continue
			}
			out.Value = p + 1
			op.Output = out
		}
		settled = append(settled, op)
	}
	return settled
}
