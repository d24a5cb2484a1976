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

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/internal/gateway"
	"github.com/jobstate-dev/jobstate/internal/testenv"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// gatewayUser is the gateway's ServiceAccount as config/default deploys it.
const gatewayUser = testenv.GatewayUser

// tokenNamespace is where config/default's gateway keeps namespace tokens.
const tokenNamespace = "jobstate-system"

// TestEventoDBExamples: the scripts of examples/eventodb, run with bash and
// node as a user runs them, pass against the gateway, and the streams they
// wrote hold exactly the events their flows store, and nothing else.
//
// The gateway is cmd/gateway as a process, authenticated as its
// ServiceAccount holding exactly the RBAC config/default renders for it, so
// the test also shows the shipped RBAC is enough for these calls; the token
// is a namespace token from ns.create.
func TestEventoDBExamples(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	root := testenv.RepoRoot()
	bash, node := lookPath(t, "bash"), lookPath(t, "node")
	ns := env.Namespace(t)
	url, token := startGateway(ctx, t, ns)
	runID := randomHex(t, 4)

	// The shell script: the guide's curl flow.
	locking := "account-locking-" + runID
	out := runExample(ctx, t, root, []string{"URL=" + url, "TOKEN=" + token, "STREAM=" + locking},
		bash, filepath.Join("examples", "eventodb", "optimistic-locking.sh"))
	if !strings.Contains(out, "B: conflict, as expected: STREAM_VERSION_CONFLICT: Expected version 0, stream is at version 1") {
		t.Errorf("optimistic-locking.sh did not report the conflict:\n%s", out)
	}

	// The Node.js script: the guide's client and its three flows.
	out = runExample(ctx, t, root, []string{"URL=" + url, "TOKEN=" + token, "RUN_ID=" + runID},
		node, filepath.Join("examples", "eventodb", "bank-account.mjs"))
	for _, want := range []string{"Balance: $120", "Successes: 1", "Failures: 1", "Final balance: $100"} {
		if !strings.Contains(out, want) {
			t.Errorf("bank-account.mjs did not print %q:\n%s", want, out)
		}
	}

	// What the API server stores: each stream's events, in order.
	deposited := func(amount int, meta string) string {
		return fmt.Sprintf(`Deposited {"amount":%d} %s`, amount, meta)
	}
	want := map[string][]string{
		locking: {deposited(100, `{"client":"setup"}`), deposited(50, `{"client":"A"}`), deposited(25, `{"client":"B"}`)},
		"account-" + runID: {
			fmt.Sprintf(`AccountOpened {"accountId":%q,"initialBalance":100} null`, runID),
			deposited(50, "null"),
			`Withdrawn {"amount":30} null`,
		},
		// Opened, and the one deposit of the two concurrent ones that won.
		"account-concurrent-test-" + runID: {`AccountOpened {"balance":0} null`, deposited(100, "null")},
		"account-retry-" + runID: {
			deposited(100, `{"writer":1}`), deposited(100, `{"writer":2}`), deposited(100, `{"writer":3}`),
		},
	}
	var list jobstatev1alpha1.EventStreamList
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, es := range list.Items {
		names = append(names, es.Name)
		if got := es.Annotations[gateway.StreamAnnotation]; got != es.Name {
			t.Errorf("EventStream %s: annotation %s = %q, want the stream name", es.Name, gateway.StreamAnnotation, got)
		}
	}
	if slices.Sort(names); !slices.Equal(names, slices.Sorted(maps.Keys(want))) {
		t.Errorf("EventStreams in %s: %v, want exactly %v", ns, names, slices.Sorted(maps.Keys(want)))
	}
	streams, err := stream.New(env.Client, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, events := range want {
		got := storedEvents(ctx, t, streams, client.ObjectKey{Namespace: ns, Name: name})
		if name == "account-retry-"+runID {
			// The three writers race: any order, each once.
			slices.Sort(got)
		}
		if !slices.Equal(got, events) {
			t.Errorf("stream %s holds\n  %s\nwant\n  %s", name, strings.Join(got, "\n  "), strings.Join(events, "\n  "))
		}
	}
}

// TestDefaultConfigDeploysTheGateway: `kubectl kustomize config/default`
// renders the gateway under the prefixed names: its Deployment runs /gateway
// from the manager's image as the gateway's ServiceAccount, the Service
// reaches its pods, and the token Role is bound to it in its namespace.
func TestDefaultConfigDeploysTheGateway(t *testing.T) {
	docs := renderDefault(t.Context(), t)
	gw, manager := &appsv1.Deployment{}, &appsv1.Deployment{}
	docs.get(t, "Deployment", "jobstate-gateway", gw)
	docs.get(t, "Deployment", "jobstate-controller-manager", manager)
	pod := gw.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the gateway's pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	switch {
	case gw.Namespace != "jobstate-system" || pod.ServiceAccountName != "jobstate-gateway":
		t.Errorf("gateway Deployment in %q as ServiceAccount %q, want jobstate-system and jobstate-gateway", gw.Namespace, pod.ServiceAccountName)
	case c.Image != manager.Spec.Template.Spec.Containers[0].Image:
		t.Errorf("gateway image %q, want the manager's %q", c.Image, manager.Spec.Template.Spec.Containers[0].Image)
	case !slices.Equal(c.Command, []string{"/gateway"}):
		t.Errorf("gateway command %v, want [/gateway]", c.Command)
	case !slices.Contains(c.Args, "--admin-token-file=/etc/jobstate-gateway/admin/token"):
		t.Errorf("gateway args %v have no --admin-token-file", c.Args)
	case len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "jobstate-gateway-admin":
		t.Errorf("gateway volumes %+v, want the Secret jobstate-gateway-admin", pod.Volumes)
	}

	svc := &corev1.Service{}
	docs.get(t, "Service", "jobstate-gateway", svc)
	for k, v := range svc.Spec.Selector {
		if gw.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %v does not select the gateway's pods %v", svc.Spec.Selector, gw.Spec.Template.Labels)
		}
	}
	if len(svc.Spec.Selector) == 0 || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("Service %+v, want a selector and port 8080 first", svc.Spec)
	}

	tokens := &rbacv1.RoleBinding{}
	docs.get(t, "RoleBinding", "jobstate-gateway-tokens-rolebinding", tokens)
	want := rbacv1.Subject{Kind: "ServiceAccount", Name: "jobstate-gateway", Namespace: "jobstate-system"}
	if tokens.Namespace != "jobstate-system" || tokens.RoleRef.Name != "jobstate-gateway-tokens" || !slices.Equal(tokens.Subjects, []rbacv1.Subject{want}) {
		t.Errorf("token RoleBinding %s/%s binds %s to %+v, want jobstate-gateway-tokens to %+v in jobstate-system", tokens.Namespace, tokens.Name, tokens.RoleRef.Name, tokens.Subjects, want)
	}
}

// startGateway runs cmd/gateway as a process on 127.0.0.1 until the test
// ends, authenticated as gatewayUser with no groups: exactly the RBAC
// config/default renders for it. It returns the gateway's URL and a token
// for namespace ns, made with ns.create and the admin token.
func startGateway(ctx context.Context, t *testing.T, ns string) (url, token string) {
	t.Helper()
	g := runGateway(ctx, t)
	return g.url, g.createToken(ctx, t, ns)
}

// gatewayProcess is a running cmd/gateway.
type gatewayProcess struct {
	url, admin string
}

// runGateway builds and starts cmd/gateway, and waits until it is ready.
func runGateway(ctx context.Context, t *testing.T) *gatewayProcess {
	t.Helper()
	installDefault(t) // the gateway's ServiceAccount and RBAC
	dir := t.TempDir()
	data, err := env.KubeConfigFor(gatewayUser)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "gateway.kubeconfig")
	g := &gatewayProcess{admin: randomHex(t, 24)}
	adminFile := filepath.Join(dir, "admin.token")
	for path, content := range map[string][]byte{kubeconfig: data, adminFile: []byte(g.admin)} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	g.url = "http://" + addr
	start(ctx, t, build(t, testenv.RepoRoot(), dir, "./cmd/gateway"), "--kubeconfig", kubeconfig,
		"--bind-address", addr, "--admin-token-file", adminFile, "--token-namespace", tokenNamespace, "--auth-cache-ttl", "1s")
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(g.url + "/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("the gateway did not become ready on %s: %v", addr, err)
	}
	return g
}

// createToken makes namespace ns an EventoDB namespace with ns.create and
// returns its token.
func (g *gatewayProcess) createToken(ctx context.Context, t *testing.T, ns string) string {
	t.Helper()
	var out struct{ Token string }
	if status, body := rpc(ctx, t, g.url, g.admin, "", &out, "ns.create", ns); status != http.StatusOK || out.Token == "" {
		t.Fatalf("ns.create %s: %d %s", ns, status, body)
	}
	return out.Token
}

// rpc posts [method, args...] with token (and namespace in the
// X-Jobstate-Namespace header, if set), decodes a 200's body into out, and
// returns the status and body.
func rpc(ctx context.Context, t *testing.T, url, token, namespace string, out any, method string, args ...any) (int, string) {
	t.Helper()
	body, err := json.Marshal(append([]any{method}, args...))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/rpc", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if namespace != "" {
		req.Header.Set(gateway.NamespaceHeader, namespace)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: decoding %s: %v", method, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rendered are the objects of a kustomization, as YAML documents by kind
// and name.
type rendered map[string]string

// renderDefault renders config/default with kubectl.
func renderDefault(ctx context.Context, t *testing.T) rendered {
	t.Helper()
	out, err := exec.CommandContext(ctx, filepath.Join(testenv.AssetsDir(), "kubectl"), "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	docs := rendered{}
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		docs[meta.Kind+"/"+meta.Metadata.Name] = doc
	}
	return docs
}

// get decodes the object kind/name into obj, strictly.
func (r rendered) get(t *testing.T, kind, name string, obj any) {
	t.Helper()
	doc, ok := r[kind+"/"+name]
	if !ok {
		t.Fatalf("config/default renders no %s %s", kind, name)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
}

// runExample runs an example script from the repository's root with env
// added to the environment, fails the test unless it exits 0, and returns
// its output.
func runExample(ctx context.Context, t *testing.T, root string, env []string, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out.String()
}

// storedEvents reads the stream key through pkg/stream, each event as
// "<type> <data> <metadata>" in compact JSON.
func storedEvents(ctx context.Context, t *testing.T, streams *stream.Client, key client.ObjectKey) []string {
	t.Helper()
	events, err := streams.Read(ctx, key, 0, 100)
	if err != nil {
		t.Fatalf("reading stream %s: %v", key, err)
	}
	compact := func(raw json.RawMessage) string {
		if len(raw) == 0 {
			return "null"
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatalf("stream %s: %v in %s", key, err, raw)
		}
		return b.String()
	}
	var got []string
	for i, ev := range events {
		if ev.Position != int64(i) {
			t.Errorf("stream %s: event %d at position %d", key, i, ev.Position)
		}
		got = append(got, ev.Type+" "+compact(ev.Data)+" "+compact(ev.Metadata))
	}
	return got
}

// lookPath finds a program the test runs; it is on every machine the tests
// run on, so a missing one fails the test.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to run examples/eventodb: %v", name, err)
	}
	return path
}

// randomHex is n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
