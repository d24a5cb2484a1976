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
	"errors"
	"fmt"

	"github.com/anishathalye/porcupine"

	"github.com/jobstate-dev/jobstate/pkg/lease"
)

// LockOp names an operation of pkg/lease.
type LockOp int

const (
	// Acquire is lease.Client.Acquire.
	Acquire LockOp = iota
	// TryAcquire is lease.Client.TryAcquire.
	TryAcquire
	// Release is lease.Lock.Release.
	Release
)

func (o LockOp) String() string {
	return [...]string{"acquire", "try-acquire", "release"}[o]
}

// LockInput is an operation on one lock by one holder.
type LockInput struct {
	Op LockOp
	// Key names the lock; histories are checked lock by lock.
	Key string
	// Holder is the holder identity (one lease.Client), as a number.
	Holder int
}

// LockOutput is what a lock operation returned.
type LockOutput struct {
	Outcome Outcome
	// Token is the fencing token of an acquisition (lease.Lock.Token).
	Token int64
	// Held: TryAcquire was refused because the lock is held.
	Held bool
	// Err is the operation's error, for the visualization.
	Err string
}

func (o LockOutput) outcome() Outcome { return o.Outcome }

// AcquireOutput is the output of an Acquire or TryAcquire that returned
// l and err.
func AcquireOutput(l *lease.Lock, err error) LockOutput {
	if err != nil {
		return LockOutput{Outcome: OutcomeOf(err), Held: errors.Is(err, lease.ErrHeld), Err: err.Error()}
	}
	return LockOutput{Outcome: Done, Token: l.Token()}
}

// ReleaseOutput is the output of a Release that returned err.
func ReleaseOutput(err error) LockOutput {
	if err != nil {
		return LockOutput{Outcome: OutcomeOf(err), Err: err.Error()}
	}
	return LockOutput{Outcome: Done}
}

// Holders of lockState besides the holders' numbers.
const (
	free = -1
	// vanished: held by a holder that does not know it holds it — an
	// acquisition whose response was lost, or a release that may not
	// have been stored. Nobody renews it, so its TTL passes and any
	// acquisition may take it over.
	vanished = -2
)

type lockState struct {
	holder int
	// token is the largest fencing token handed out (a lower bound, if a
	// vanished acquisition took one).
	token int64
}

// LockModel is a lock with fencing tokens, as pkg/lease documents it:
//
//   - An acquisition succeeds only while the lock is free, or held by a
//     holder that vanished; its token is larger than every earlier one.
//   - TryAcquire refused as Held needs a holder (a vanished one counts).
//   - Release by the holder frees the lock. A release that failed or whose
//     outcome is unknown leaves it free or held until its TTL passes: for
//     the model, vanished.
//
// An acquisition whose outcome is unknown takes the lock for a vanished
// holder wherever the checker places it while it is free.
func LockModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionBy(func(in any) string { return in.(LockInput).Key }),
		Init:      func() any { return lockState{holder: free} },
		Step: func(state, input, output any) (bool, any) {
			return stepLock(state.(lockState), input.(LockInput), output.(LockOutput))
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(LockInput), output.(LockOutput)
			call := fmt.Sprintf("%s %s by %d", in.Op, in.Key, in.Holder)
			switch {
			case out.Held:
				return call + ": held"
			case out.Outcome != Done:
				return fmt.Sprintf("%s: %s (%s)", call, out.Outcome, out.Err)
			case in.Op == Release:
				return call
			}
			return fmt.Sprintf("%s -> token %d", call, out.Token)
		},
		DescribeState: func(state any) string {
			s := state.(lockState)
			switch s.holder {
			case free:
				return fmt.Sprintf("free (token %d)", s.token)
			case vanished:
				return fmt.Sprintf("held by a vanished holder (token > %d)", s.token-1)
			}
			return fmt.Sprintf("held by %d (token %d)", s.holder, s.token)
		},
	}
}

func stepLock(s lockState, in LockInput, out LockOutput) (bool, lockState) {
	takeable := s.holder == free || s.holder == vanished
	if in.Op == Release {
		if s.holder != in.Holder {
			return false, s
		}
		if out.Outcome == Done {
			return true, lockState{holder: free, token: s.token}
		}
		return true, lockState{holder: vanished, token: s.token}
	}
	switch out.Outcome {
	case Done:
		return takeable && out.Token > s.token, lockState{holder: in.Holder, token: out.Token}
	case Refused:
		return !out.Held || s.holder != free, s
	}
	if takeable {
		return true, lockState{holder: vanished, token: s.token + 1}
	}
	return true, s
}
