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

package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/lease"
	"github.com/jobstate-dev/jobstate/pkg/update"
)

// helperEnv, set in a child process's environment, makes the test binary
// that helper instead of running tests.
const helperEnv = "JOBSTATE_FAULTS_HELPER"

// helperMain runs the helper helperEnv names; its exit code.
func helperMain() int {
	var err error
	switch h := os.Getenv(helperEnv); h {
	case "lockholder":
		err = lockHolderMain()
	default:
		err = fmt.Errorf("unknown helper %q", h)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// lockHolderMain holds the lock $LOCK_NAMESPACE/$LOCK_NAME (TTL 3s) as
// "stopped-holder", through $KUBECONFIG, and says "acquired <token>". Then,
// a line of stdin at a time: "write" writes the report ConfigMap of the
// same name, fenced with its token, with a context of its own (as a
// holder that does not know it lost the lock would) and answers "write:
// ok", "write: stale <token> <stored>" or "write: error ..."; "lost?"
// answers "lost: true" once the lock's Lost is closed. It exits at the end
// of stdin.
func lockHolderMain() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	key := client.ObjectKey{Namespace: os.Getenv("LOCK_NAMESPACE"), Name: os.Getenv("LOCK_NAME")}
	locks, err := lease.New(c, lease.Options{Identity: "stopped-holder", TTL: 3 * time.Second})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lock, err := locks.Acquire(ctx, key)
	if err != nil {
		return err
	}
	fmt.Printf("acquired %d\n", lock.Token())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "write":
			cm := &corev1.ConfigMap{}
			cm.Namespace, cm.Name = key.Namespace, key.Name
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := update.Update(ctx, c, cm, update.Fenced(lock.Token(), tokenField, publish("stopped-holder")), update.Options{})
			cancel()
			var stale *update.StaleTokenError
			switch {
			case err == nil:
				fmt.Println("write: ok")
			case errors.As(err, &stale):
				fmt.Printf("write: stale %d %d\n", stale.Token, stale.Stored)
			default:
				fmt.Printf("write: error %v\n", err)
			}
		case "lost?":
			select {
			case <-lock.Lost():
				fmt.Println("lost: true")
			default:
				fmt.Println("lost: false")
			}
		default:
			fmt.Printf("unknown command %q\n", in.Text())
		}
	}
	return nil
}
