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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
	"github.com/jobstate-dev/jobstate/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// waitFor bounds every wait of these tests: RBAC changes and watch events
// arrive in milliseconds on envtest.
const waitFor = 5 * time.Second

// eventually polls cond until it returns nil, for at most waitFor, and
// fails the test with cond's last error.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, waitFor, true, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %v: %v", what, waitFor, last)
	}
}

// gatewayRules are what the package doc says the gateway's identity needs
// cluster-wide; gatewaySecretRules what it needs in the token namespace.
var (
	gatewayRules = []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
	gatewaySecretRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
	}
)

// gatewayConfig returns a config for a user holding exactly the
// permissions the package doc lists, with tokenNS as token namespace, once
// RBAC lets it use them.
func gatewayConfig(t *testing.T, tokenNS string) *rest.Config {
	t.Helper()
	ctx := t.Context()
	name := "eventodb-gateway-" + tokenNS
	objs := []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: gatewayRules},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}},
		},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tokenNS, Name: name}, Rules: gatewaySecretRules},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: tokenNS, Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}},
		},
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := env.ConfigFor(name)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	eventually(t, "the gateway's RBAC to take effect", func() error {
		if _, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "probe"}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		_, err := cs.CoreV1().Secrets(tokenNS).List(ctx, metav1.ListOptions{})
		return err
	})
	return cfg
}

// newAuthorizer returns a started, synced Authorizer authenticating as a
// least-privileged gateway, with its tokens in a fresh namespace unless
// opts names one, and caches of 50ms unless opts sets them.
func newAuthorizer(t *testing.T, opts auth.Options) *auth.Authorizer {
	t.Helper()
	if opts.TokenNamespace == "" {
		opts.TokenNamespace = env.Namespace(t)
	}
	if opts.Config == nil {
		opts.Config = gatewayConfig(t, opts.TokenNamespace)
	}
	if opts.AuthenticationCacheTTL == 0 {
		opts.AuthenticationCacheTTL = 50 * time.Millisecond
	}
	if opts.AuthorizationCacheTTL == 0 {
		opts.AuthorizationCacheTTL = 50 * time.Millisecond
	}
	a, err := auth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	eventually(t, "the token cache to sync", func() error {
		if !a.HasSynced() {
			return errors.New("not synced")
		}
		return nil
	})
	return a
}

// start runs a.Start until the test ends, and waits for it to return.
func start(t *testing.T, a *auth.Authorizer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
}

// adminTokenFile writes token to a file and returns its path.
func adminTokenFile(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// shippedRole creates the ClusterRole in config/rbac/<file>, under its
// name with suffix "-gw-auth-test" (shared by the tests), and returns that
// name.
func shippedRole(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	role.Name += "-gw-auth-test"
	if err := env.Client.Create(t.Context(), role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return role.Name
}

// serviceAccountToken creates ServiceAccount ns/name, binds it in ns to
// ClusterRole role (none if role is ""), and returns a token for it from
// the TokenRequest API.
func serviceAccountToken(t *testing.T, ns, name, role string) string {
	t.Helper()
	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if role != "" {
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		if err := env.Client.Create(ctx, binding); err != nil {
			t.Fatal(err)
		}
	}
	return createToken(t, ns, name)
}

// createToken returns a token for ServiceAccount ns/name.
func createToken(t *testing.T, ns, name string) string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// authorize calls a.Authorize with the test's context.
func authorize(t *testing.T, a *auth.Authorizer, token, ns string, access auth.Access) (string, error) {
	t.Helper()
	return a.Authorize(t.Context(), token, ns, access)
}

// wantAllowed fails unless Authorize allows the call in namespace want.
func wantAllowed(t *testing.T, a *auth.Authorizer, token, ns string, access auth.Access, want string) {
	t.Helper()
	got, err := authorize(t, a, token, ns, access)
	if err != nil || got != want {
		t.Fatalf("Authorize(%s in %q) = %q, %v; want %q, nil", access, ns, got, err, want)
	}
}

// eventuallyAllowed is wantAllowed once RBAC has caught up.
func eventuallyAllowed(t *testing.T, a *auth.Authorizer, token, ns string, access auth.Access, want string) {
	t.Helper()
	eventually(t, "Authorize("+access.String()+" in "+ns+") to allow", func() error {
		got, err := authorize(t, a, token, ns, access)
		if err == nil && got != want {
			t.Fatalf("Authorize(%s in %q) = %q, want %q", access, ns, got, want)
		}
		return err
	})
}

// wantRefused fails unless Authorize refuses the call with an *auth.Error
// matching kind (and no other sentinel), whose message holds no token.
func wantRefused(t *testing.T, a *auth.Authorizer, token, ns string, access auth.Access, kind error) *auth.Error {
	t.Helper()
	got, err := authorize(t, a, token, ns, access)
	return checkRefusal(t, got, err, kind, token, "Authorize("+access.String()+" in "+ns+")")
}

// checkRefusal is wantRefused's check of a result.
func checkRefusal(t *testing.T, got string, err, kind error, token, what string) *auth.Error {
	t.Helper()
	var e *auth.Error
	if !errors.As(err, &e) || !errors.Is(err, kind) {
		t.Fatalf("%s = %q, %v; want an *auth.Error matching %v", what, got, err, kind)
	}
	if got != "" {
		t.Errorf("%s returned namespace %q with its refusal", what, got)
	}
	for _, other := range []error{auth.ErrRequired, auth.ErrInvalidToken, auth.ErrUnauthorized, auth.ErrTokenExists, auth.ErrNoToken, auth.ErrInvalidNamespace} {
		if other != kind && errors.Is(err, other) {
			t.Errorf("%s: %v matches %v too", what, err, other)
		}
	}
	if len(token) >= 8 && strings.Contains(err.Error(), token) {
		t.Errorf("%s: the error message holds the token: %v", what, err)
	}
	return e
}
