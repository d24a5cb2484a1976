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
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// tokenNamespace holds the gateway's namespace tokens, as in config/default.
const tokenNamespace = "jobstate-system"

// gatewayProcess is cmd/gateway running as its own process.
type gatewayProcess struct {
	url, token string
	namespace  string
	// exited receives what cmd.Wait returned, once.
	exited chan error
}

// startGateway starts the gateway (none if --gateway-address is empty) in
// s, waits for it to answer, and makes a namespace token for the namespace
// with the admin token, so the seed's curl commands run as written.
func startGateway(s *session, env *testenv.Env, bin string, o options, log *os.File) (*gatewayProcess, error) {
	if o.gatewayAddr == "" {
		return nil, nil
	}
	admin, adminFile, kubeconfig, err := gatewayCredentials(s.ctx, env, o.dir)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(s.ctx, bin, "--kubeconfig", kubeconfig, "--bind-address", o.gatewayAddr,
		"--admin-token-file", adminFile, "--token-namespace", tokenNamespace)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the gateway: %w", err)
	}
	g := &gatewayProcess{url: "http://" + o.gatewayAddr, namespace: o.namespace, exited: make(chan error, 1)}
	go func() { g.exited <- cmd.Wait() }()
	if g.token, err = g.createToken(s.ctx, admin); err != nil {
		_ = cmd.Process.Kill()
		return nil, &failure{what: "gateway", log: log.Name(), err: err}
	}
	s.goRun("gateway", log, func(context.Context) error { return <-g.exited })
	s.scr.item("Gateway", "EventoDB on %s, namespace %s (log: %s)", g.url, o.namespace, filepath.Base(log.Name()))
	return g, nil
}

// gatewayCredentials makes the namespace of the gateway's tokens, an admin
// token in a file in dir and a kubeconfig for the gateway's ServiceAccount
// (config/admission lets it seal), and returns the token and the two paths.
func gatewayCredentials(ctx context.Context, env *testenv.Env, dir string) (admin, adminFile, kubeconfig string, err error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tokenNamespace}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", "", "", fmt.Errorf("creating namespace %s: %w", tokenNamespace, err)
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	admin = hex.EncodeToString(secret)
	adminFile = filepath.Join(dir, "gateway-admin.token")
	if err := os.WriteFile(adminFile, []byte(admin+"\n"), 0o600); err != nil {
		return "", "", "", err
	}
	kubeconfig = filepath.Join(dir, "gateway.kubeconfig")
	if err := writeKubeConfig(env, kubeconfig, testenv.GatewayUser); err != nil {
		return "", "", "", err
	}
	return admin, adminFile, kubeconfig, nil
}

// probeClient asks the gateway for a token; a request that hangs (another
// program on the address) is retried like one refused.
var probeClient = &http.Client{Timeout: 2 * time.Second}

// createToken waits up to 30s for the gateway to serve, then calls
// ns.create for the namespace. A gateway that exits meanwhile (its address
// taken, say) is an error at once.
func (g *gatewayProcess) createToken(ctx context.Context, admin string) (string, error) {
	body, _ := json.Marshal([]any{"ns.create", g.namespace, map[string]any{"description": "make run"}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/rpc", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := probeClient.Do(req)
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
		case err := <-g.exited:
			return "", fmt.Errorf("it exited before serving on %s: %v", g.url, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
