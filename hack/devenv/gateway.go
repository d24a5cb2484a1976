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

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// tokenNamespace holds the gateway's namespace tokens, as in config/default.
const tokenNamespace = "jobstate-system"

// runGateway starts the gateway on addr (none if addr is "") in wg, and
// returns what make run prints about it.
func runGateway(ctx context.Context, wg *sync.WaitGroup, env *testenv.Env, root, addr, namespace string) (string, error) {
	if addr == "" {
		return "", nil
	}
	gw, err := startGateway(ctx, env, root, addr, namespace)
	if err != nil {
		return "", err
	}
	wg.Go(func() {
		if err := gw.wait(); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
	})
	return gw.note(), nil
}

// gatewayProcess is cmd/gateway running as its own process.
type gatewayProcess struct {
	cmd        *exec.Cmd
	url, token string
	namespace  string
}

// startGateway builds and starts cmd/gateway on addr, waits for it to
// answer, and makes a namespace token for namespace with the admin token
// (a file in bin/), so the seed's curl commands run as written.
func startGateway(ctx context.Context, env *testenv.Env, root, addr, namespace string) (*gatewayProcess, error) {
	bin := filepath.Join(root, "bin", "gateway")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gateway")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building cmd/gateway: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tokenNamespace}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", tokenNamespace, err)
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	admin := hex.EncodeToString(secret)
	adminFile := filepath.Join(root, "bin", "gateway-admin.token")
	if err := os.WriteFile(adminFile, []byte(admin+"\n"), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(root, "bin", "gateway.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// As its own ServiceAccount: config/admission lets it seal.
	kubeconfig := filepath.Join(root, "bin", "gateway.kubeconfig")
	if err := writeKubeConfig(env, kubeconfig, testenv.GatewayUser); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kubeconfig, "--bind-address", addr,
		"--admin-token-file", adminFile, "--token-namespace", tokenNamespace)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the gateway: %w", err)
	}
	g := &gatewayProcess{cmd: cmd, url: "http://" + addr, namespace: namespace}
	if g.token, err = g.createToken(ctx, admin); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%w (its log: %s)", err, logPath)
	}
	return g, nil
}

// createToken waits up to 30s for the gateway to serve, then calls
// ns.create for the namespace.
func (g *gatewayProcess) createToken(ctx context.Context, admin string) (string, error) {
	body, _ := json.Marshal([]any{"ns.create", g.namespace, map[string]any{"description": "make run"}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/rpc", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct {
				Token string
				Error *struct{ Code, Message string }
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			switch {
			case err == nil && out.Token != "":
				return out.Token, nil
			case err == nil && out.Error != nil && out.Error.Code != "BACKEND_ERROR":
				return "", fmt.Errorf("the gateway refused ns.create: %s: %s", out.Error.Code, out.Error.Message)
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the gateway did not serve on %s within 30s: %v", g.url, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (g *gatewayProcess) wait() error { return g.cmd.Wait() }

// note is what make run prints about the gateway.
func (g *gatewayProcess) note() string {
	return fmt.Sprintf(`
 The EventoDB gateway serves %s (namespace %s; its log: bin/gateway.log).
 The seed's curl commands run as written in another terminal:

   export TOKEN=%s
   curl -s -X POST %s/rpc -H "Authorization: Bearer $TOKEN" -d '["stream.version", "account-123"]'
   URL=%s TOKEN=$TOKEN node examples/eventodb/bank-account.mjs

`, g.url, g.namespace, g.token, g.url, g.url)
}
