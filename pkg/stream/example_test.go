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

package stream_test

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// The seed's bank account: deposit with the version last seen as the
// expected version, and decide again on a conflict.
func Example() {
	ctx := context.Background()
	// One Client for every namespace: each call names its stream.
	accounts, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		panic(err)
	}
	account := client.ObjectKey{Namespace: "default", Name: "account-123"}
	deposit := func(amount int) (stream.AppendResult, error) {
		version, _, err := accounts.Version(ctx, account) // NoStream (-1) if there is none
		if err != nil {
			return stream.AppendResult{}, err
		}
		return accounts.Append(ctx, account,
			[]stream.EventData{{Type: "Deposited", Data: map[string]int{"amount": amount}}},
			stream.ExpectVersion(version))
	}
	res, err := deposit(100)
	if err != nil {
		panic(err)
	}
	fmt.Println("deposited at version", res.Version)

	// Another writer saw no stream yet (version -1) and appends after us.
	_, err = accounts.Append(ctx, account,
		[]stream.EventData{{Type: "Withdrawn", Data: map[string]int{"amount": 30}}}, stream.ExpectVersion(-1))
	var conflict *stream.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Println(conflict.Code()+":", conflict)
	}

	events, err := accounts.Read(ctx, account, 0, 10)
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Println(e.Position, e.Type, string(e.Data))
	}
	// Output:
	// deposited at version 0
	// STREAM_VERSION_CONFLICT: Expected version -1, stream is at version 0
	// 0 Deposited {"amount":100}
}
