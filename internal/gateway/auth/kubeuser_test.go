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
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// A Kubernetes user that is not a ServiceAccount (a person with an OIDC
// token, say) has no namespace of its own: it must name one, and RBAC
// decides there. The package's control plane authenticates no such token
// (its users have client certificates), so this test starts a second one
// whose kube-apiserver reads a static token file (--token-auth-file).
func TestKubernetesUser(t *testing.T) {
	ctx := t.Context()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(secret)
	cfg := staticTokenControlPlane(t, token+`,alice,alice-uid,"eventodb-users"`)
	cs := kubernetes.NewForConfigOrDie(cfg)

	// alice may edit EventStreams in orders, with the shipped role.
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "eventstream_editor_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "orders"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "orders", Name: "alice-editor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "alice"}},
	}
	if _, err := cs.RbacV1().RoleBindings("orders").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The gateway's own permissions are TestServiceAccounts' subject;
	// here it runs as the control plane's admin.
	a, err := auth.New(auth.Options{Config: cfg, TokenNamespace: "default", AuthenticationCacheTTL: 50 * time.Millisecond, AuthorizationCacheTTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	eventuallyAllowed(t, a, token, "orders", auth.Read, "orders")
	wantAllowed(t, a, token, "orders", auth.Write, "orders")
	for _, access := range []auth.Access{auth.Read, auth.Write} {
		e := wantRefused(t, a, token, "", access, auth.ErrUnauthorized)
		if e.User != "alice" || !strings.Contains(e.Reason, "name the namespace") {
			t.Errorf("the refusal of a user without a namespace does not say to name one: %v (user %q)", e, e.User)
		}
		e = wantRefused(t, a, token, "billing", access, auth.ErrUnauthorized)
		if e.User != "alice" || e.Namespace != "billing" {
			t.Errorf("the refusal names user %q in %q", e.User, e.Namespace)
		}
	}
	wantRefused(t, a, token, "", auth.Admin, auth.ErrUnauthorized)
	wantRefused(t, a, token, "orders", auth.Admin, auth.ErrUnauthorized)
	wantRefused(t, a, token[1:], "orders", auth.Read, auth.ErrInvalidToken)
}

// staticTokenControlPlane starts kube-apiserver and etcd with line as its
// static token file, until the test ends, and returns an admin config.
func staticTokenControlPlane(t *testing.T, line string) *rest.Config {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plane := &envtest.Environment{BinaryAssetsDirectory: testenv.AssetsDir()}
	plane.ControlPlane.APIServer = &envtest.APIServer{}
	plane.ControlPlane.APIServer.Configure().Set("token-auth-file", file)
	cfg, err := plane.Start()
	// Registered even when Start failed: it may have started processes.
	t.Cleanup(func() {
		if err := plane.Stop(); err != nil {
			t.Errorf("stopping the second control plane: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("starting a control plane with a static token file: %v", err)
	}
	return cfg
}
