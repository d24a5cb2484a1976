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

package auth_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

// The gateway's use: one Authorizer per process, started before serving,
// asked on every call.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := auth.New(auth.Options{Config: env.Config, TokenNamespace: "default"})
	if err != nil {
		panic(err)
	}
	go func() { _ = a.Start(ctx) }() // Or mgr.Add(a).

	// ns.create issues a namespace token; only its hash is stored.
	rec, err := a.Tokens().Create(ctx, "example-orders", "", "the orders service", nil)
	if err != nil {
		panic(err)
	}
	defer a.Tokens().Delete(ctx, "example-orders")

	// A call with it: "" is the token's own namespace.
	callCtx, done := context.WithTimeout(ctx, 5*time.Second)
	defer done()
	// A gateway reports ready once HasSynced; until then namespace tokens
	// wait for the cache.
	for i := 0; !a.HasSynced() && i < 500; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	ns, err := a.Authorize(callCtx, rec.Token, "", auth.Write)
	fmt.Println(ns, err)

	// Another namespace: refused, with the code the gateway answers.
	_, err = a.Authorize(callCtx, rec.Token, "example-billing", auth.Read)
	switch {
	case errors.Is(err, auth.ErrRequired), errors.Is(err, auth.ErrInvalidToken):
		fmt.Println("401")
	case errors.Is(err, auth.ErrUnauthorized):
		fmt.Println("403")
	case err != nil:
		fmt.Println("503")
	}
	// Output:
	// example-orders <nil>
	// 403
}

// A namespace token names its namespace; ParseToken reads it without
// verifying the token.
func ExampleParseToken() {
	token, err := auth.NewToken("orders")
	if err != nil {
		panic(err)
	}
	ns, err := auth.ParseToken(token)
	fmt.Println(ns, err)
	_, err = auth.ParseToken("ns_not-a-token")
	fmt.Println(errors.Is(err, auth.ErrInvalidToken))
	// Output:
	// orders <nil>
	// true
}
