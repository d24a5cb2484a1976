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
	"encoding/base64"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

// adminSecret is the admin token of these tests.
const adminSecret = "0123456789abcdef-admin-token"

func TestNoToken(t *testing.T) {
	a := newAuthorizer(t, auth.Options{AdminTokenFile: adminTokenFile(t, adminSecret)})
	for _, access := range []auth.Access{auth.Read, auth.Write, auth.Admin} {
		wantRefused(t, a, "", "orders", access, auth.ErrRequired)
		wantRefused(t, a, "", "", access, auth.ErrRequired)
	}
}

func TestInvalidTokens(t *testing.T) {
	a := newAuthorizer(t, auth.Options{AdminTokenFile: adminTokenFile(t, adminSecret)})
	billing, err := a.Tokens().Create(t.Context(), "billing", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventuallyAllowed(t, a, billing.Token, "", auth.Read, "billing")
	neverCreated, err := auth.NewToken("orders")
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"garbage":               "hello-this-is-not-a-token",
		"garbage JWT":           "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
		"malformed ns_ token":   "ns_b3JkZXJz_nothex",
		"never created":         neverCreated,
		"forged for billing":    "ns_" + base64.RawURLEncoding.EncodeToString([]byte("billing")) + "_" + strings.Repeat("ab", 32),
		"billing's, edited":     billing.Token[:len(billing.Token)-1] + flip(billing.Token[len(billing.Token)-1]),
		"billing's, with space": billing.Token[:20] + " " + billing.Token[20:],
		"admin, with a suffix":  adminSecret + "x",
		"admin, one byte off":   adminSecret[:len(adminSecret)-1] + "X",
		"space inside":          "abc def",
	} {
		t.Run(name, func(t *testing.T) {
			for _, access := range []auth.Access{auth.Read, auth.Write, auth.Admin} {
				wantRefused(t, a, tok, "billing", access, auth.ErrInvalidToken)
				wantRefused(t, a, tok, "", access, auth.ErrInvalidToken)
				// Not authenticated, so not told what it may not do.
				wantRefused(t, a, tok, "Not_A-Namespace", access, auth.ErrInvalidToken)
			}
		})
	}
}

// flip changes a lowercase hex digit into another.
func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestNamespaceToken(t *testing.T) {
	a := newAuthorizer(t, auth.Options{})
	rec, err := a.Tokens().Create(t.Context(), "orders", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventuallyAllowed(t, a, rec.Token, "", auth.Read, "orders")
	for _, access := range []auth.Access{auth.Read, auth.Write} {
		wantAllowed(t, a, rec.Token, "", access, "orders")
		wantAllowed(t, a, rec.Token, "orders", access, "orders")
		e := wantRefused(t, a, rec.Token, "billing", access, auth.ErrUnauthorized)
		if e.User != "namespace token for orders" || e.Namespace != "billing" {
			t.Errorf("the refusal names user %q and namespace %q", e.User, e.Namespace)
		}
	}
	for _, ns := range []string{"", "orders", "billing"} {
		wantRefused(t, a, rec.Token, ns, auth.Admin, auth.ErrUnauthorized)
	}
}

// Whatever the holder of one namespace's token tries, it reaches no other
// namespace and never administers namespaces.
func TestHostileNamespaceTokenHolder(t *testing.T) {
	a := newAuthorizer(t, auth.Options{AdminTokenFile: adminTokenFile(t, adminSecret)})
	mine, err := a.Tokens().Create(t.Context(), "team-a", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := a.Tokens().Create(t.Context(), "team-b", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventuallyAllowed(t, a, mine.Token, "", auth.Write, "team-a")
	eventuallyAllowed(t, a, theirs.Token, "", auth.Write, "team-b")
	secret := mine.Token[strings.LastIndexByte(mine.Token, '_')+1:]
	enc := func(ns string) string { return base64.RawURLEncoding.EncodeToString([]byte(ns)) }
	type try struct {
		token, namespace string
		access           auth.Access
		want             error
	}
	var tries []try
	for _, access := range []auth.Access{auth.Read, auth.Write} {
		tries = append(tries,
			try{mine.Token, "team-b", access, auth.ErrUnauthorized},
			try{mine.Token, "default", access, auth.ErrUnauthorized},
			try{mine.Token, "kube-system", access, auth.ErrUnauthorized},
			try{mine.Token, "TEAM-A", access, auth.ErrUnauthorized},
			try{mine.Token, "team-a/../team-b", access, auth.ErrUnauthorized},
			try{mine.Token, "team-a ", access, auth.ErrUnauthorized},
			try{"ns_" + enc("team-b") + "_" + secret, "team-b", access, auth.ErrInvalidToken},
			try{"ns_" + enc("team-b") + "_" + secret, "", access, auth.ErrInvalidToken},
			try{"NS_" + mine.Token[3:], "team-b", access, auth.ErrInvalidToken},
			try{mine.Token + "0", "team-b", access, auth.ErrInvalidToken},
			try{mine.Token + "\nAuthorization: Bearer " + theirs.Token, "team-b", access, auth.ErrInvalidToken},
		)
	}
	for _, ns := range []string{"", "team-a", "team-b"} {
		tries = append(tries,
			try{mine.Token, ns, auth.Admin, auth.ErrUnauthorized},
			try{"ns_" + enc("team-b") + "_" + secret, ns, auth.Admin, auth.ErrInvalidToken},
			try{mine.Token + adminSecret, ns, auth.Admin, auth.ErrInvalidToken},
		)
	}
	tries = append(tries, try{mine.Token, "team-a", auth.Access(7), auth.ErrUnauthorized})
	for _, tr := range tries {
		wantRefused(t, a, tr.token, tr.namespace, tr.access, tr.want)
	}
}

func TestAdminToken(t *testing.T) {
	a := newAuthorizer(t, auth.Options{AdminTokenFile: adminTokenFile(t, "  "+adminSecret+"\n\n")})
	wantAllowed(t, a, adminSecret, "", auth.Admin, "")
	wantAllowed(t, a, adminSecret, "orders", auth.Admin, "orders")
	for _, ns := range []string{"orders", "billing", "kube-system"} {
		wantAllowed(t, a, adminSecret, ns, auth.Read, ns)
		wantAllowed(t, a, adminSecret, ns, auth.Write, ns)
	}
	wantRefused(t, a, adminSecret, "Orders", auth.Read, auth.ErrUnauthorized)
	e := wantRefused(t, a, adminSecret, "", auth.Read, auth.ErrUnauthorized)
	if !strings.Contains(e.Reason, "name the namespace") {
		t.Errorf("the refusal does not say to name a namespace: %v", e)
	}
	wantRefused(t, a, "not-"+adminSecret, "orders", auth.Admin, auth.ErrInvalidToken)
	wantRefused(t, a, strings.ToUpper(adminSecret), "orders", auth.Read, auth.ErrInvalidToken)
	wantRefused(t, a, adminSecret[:len(adminSecret)-1], "", auth.Admin, auth.ErrInvalidToken)

	// Without an admin token file nothing is the admin token.
	none := newAuthorizer(t, auth.Options{})
	wantRefused(t, none, adminSecret, "", auth.Admin, auth.ErrInvalidToken)
}

// Start re-reads the admin token file: a rotated token replaces the old
// one, and a file gone disables the admin token.
func TestAdminTokenFileReload(t *testing.T) {
	file := adminTokenFile(t, adminSecret)
	a := newAuthorizer(t, auth.Options{AdminTokenFile: file, AdminTokenCheckPeriod: 20 * time.Millisecond})
	wantAllowed(t, a, adminSecret, "", auth.Admin, "")
	rotated := "rotated-" + adminSecret
	if err := os.WriteFile(file, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	eventuallyAllowed(t, a, rotated, "", auth.Admin, "")
	wantRefused(t, a, adminSecret, "", auth.Admin, auth.ErrInvalidToken)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removed admin token to be refused", func() error {
		if _, err := authorize(t, a, rotated, "", auth.Admin); !errors.Is(err, auth.ErrInvalidToken) {
			return errors.New("still accepted")
		}
		return nil
	})
}

func TestNewValidatesOptions(t *testing.T) {
	short := adminTokenFile(t, "short")
	spaced := adminTokenFile(t, "0123456789 abcdef-admin")
	for name, opts := range map[string]auth.Options{
		"no Config":                   {},
		"invalid TokenNamespace":      {Config: env.Config, TokenNamespace: "Jobstate_System"},
		"missing admin token file":    {Config: env.Config, AdminTokenFile: "/nonexistent/admin-token"},
		"short admin token":           {Config: env.Config, AdminTokenFile: short},
		"admin token with whitespace": {Config: env.Config, AdminTokenFile: spaced},
		"negative cache TTL":          {Config: env.Config, AuthorizationCacheTTL: -time.Second},
		"negative check period":       {Config: env.Config, AdminTokenCheckPeriod: -time.Second},
		"no retry attempt":            {Config: env.Config, RetryBackoff: &wait.Backoff{}},
	} {
		if a, err := auth.New(opts); err == nil || a != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, a, err)
		}
	}
	if _, err := auth.New(auth.Options{Config: env.Config}); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}

func TestServiceAccounts(t *testing.T) {
	a := newAuthorizer(t, auth.Options{})
	ns, other := env.Namespace(t), env.Namespace(t)
	editorRole, viewerRole := shippedRole(t, "eventstream_editor_role.yaml"), shippedRole(t, "eventstream_viewer_role.yaml")

	t.Run("editor", func(t *testing.T) {
		tok := serviceAccountToken(t, ns, "editor", editorRole)
		eventuallyAllowed(t, a, tok, "", auth.Read, ns)
		wantAllowed(t, a, tok, "", auth.Write, ns)
		wantAllowed(t, a, tok, ns, auth.Read, ns)
		wantAllowed(t, a, tok, ns, auth.Write, ns)
		for _, access := range []auth.Access{auth.Read, auth.Write} {
			e := wantRefused(t, a, tok, other, access, auth.ErrUnauthorized)
			if want := "system:serviceaccount:" + ns + ":editor"; e.User != want || e.Namespace != other {
				t.Errorf("the refusal names user %q in %q, want %q in %q", e.User, e.Namespace, want, other)
			}
		}
		wantRefused(t, a, tok, "", auth.Admin, auth.ErrUnauthorized)
		wantRefused(t, a, tok, ns, auth.Admin, auth.ErrUnauthorized)
		wantRefused(t, a, tok, strings.ToUpper(ns), auth.Read, auth.ErrUnauthorized)
	})
	t.Run("viewer", func(t *testing.T) {
		tok := serviceAccountToken(t, ns, "viewer", viewerRole)
		eventuallyAllowed(t, a, tok, "", auth.Read, ns)
		e := wantRefused(t, a, tok, "", auth.Write, auth.ErrUnauthorized)
		if !strings.Contains(e.Reason, "create") || e.Namespace != ns {
			t.Errorf("the refusal does not say what is missing where: %v", e)
		}
	})
	t.Run("no RBAC", func(t *testing.T) {
		tok := serviceAccountToken(t, ns, "nobody", "")
		for _, access := range []auth.Access{auth.Read, auth.Write, auth.Admin} {
			e := wantRefused(t, a, tok, "", access, auth.ErrUnauthorized)
			if want := "system:serviceaccount:" + ns + ":nobody"; e.User != want {
				t.Errorf("refused as %q, want %q: the token was not authenticated", e.User, want)
			}
		}
	})
	t.Run("namespace creator is admin", func(t *testing.T) {
		tok := serviceAccountToken(t, ns, "creator", "")
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "namespace-creator-" + ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}}},
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "creator"}},
		}
		for _, obj := range []client.Object{role, binding} {
			if err := env.Client.Create(t.Context(), obj); err != nil {
				t.Fatal(err)
			}
		}
		eventuallyAllowed(t, a, tok, "", auth.Admin, "")
		wantAllowed(t, a, tok, "orders", auth.Admin, "orders")
		// Creating namespaces is not reading streams.
		wantRefused(t, a, tok, "", auth.Read, auth.ErrUnauthorized)
	})
}

// When the API server does not answer, every token that needs it is
// neither allowed nor refused: the error is none of the sentinels. The
// admin token needs no API server.
func TestAPIServerUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = "https://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{Config: cfg, AdminTokenFile: adminTokenFile(t, adminSecret), RetryBackoff: &wait.Backoff{Duration: time.Millisecond, Steps: 1}})
	if err != nil {
		t.Fatal(err)
	}
	nsToken, err := auth.NewToken("orders")
	if err != nil {
		t.Fatal(err)
	}
	saToken := serviceAccountToken(t, env.Namespace(t), "unreachable", "")
	undecided := func(what string, got string, err error) {
		t.Helper()
		if err == nil || got != "" {
			t.Fatalf("%s = %q, %v; want an error", what, got, err)
		}
		for _, sentinel := range []error{auth.ErrRequired, auth.ErrInvalidToken, auth.ErrUnauthorized} {
			if errors.Is(err, sentinel) {
				t.Fatalf("%s: %v matches %v, so the gateway would not answer 503", what, err, sentinel)
			}
		}
	}
	got, err := authorize(t, a, saToken, "", auth.Read)
	undecided("a ServiceAccount token", got, err)
	got, err = authorize(t, a, nsToken, "", auth.Read)
	undecided("a namespace token before Start", got, err)
	start(t, a)
	// Once Start has begun, a call waits for the cache until its context
	// ends.
	eventually(t, "a namespace token to wait for the cache", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		got, err := a.Authorize(ctx, nsToken, "", auth.Read)
		undecided("a namespace token before the cache synced", got, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	})
	wantAllowed(t, a, adminSecret, "orders", auth.Write, "orders")
}

// A gateway whose identity lacks a permission the package doc lists
// answers 503 for Kubernetes tokens, not a refusal that blames the token.
func TestGatewayWithoutPermissions(t *testing.T) {
	ns := env.Namespace(t)
	tok := serviceAccountToken(t, ns, "editor", shippedRole(t, "eventstream_editor_role.yaml"))
	for name, rules := range map[string][]rbacv1.PolicyRule{"no permissions": nil, "no subjectaccessreviews": gatewayRules[:1]} {
		t.Run(name, func(t *testing.T) {
			user := "gateway-" + strings.ReplaceAll(name, " ", "-") + "-" + ns
			if rules != nil {
				role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rules}
				binding := &rbacv1.ClusterRoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: user},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
					Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
				}
				for _, obj := range []client.Object{role, binding} {
					if err := env.Client.Create(t.Context(), obj); err != nil {
						t.Fatal(err)
					}
				}
			}
			cfg, err := env.ConfigFor(user)
			if err != nil {
				t.Fatal(err)
			}
			a, err := auth.New(auth.Options{Config: cfg, RetryBackoff: &wait.Backoff{Duration: time.Millisecond, Steps: 1}})
			if err != nil {
				t.Fatal(err)
			}
			// With only tokenreviews, the token is authenticated once RBAC
			// has caught up, and the SubjectAccessReview is forbidden.
			eventually(t, "the refusal of the gateway's request", func() error {
				got, err := authorize(t, a, tok, "", auth.Read)
				if err == nil || got != "" {
					t.Fatalf("Authorize = %q, %v; want an error", got, err)
				}
				for _, sentinel := range []error{auth.ErrRequired, auth.ErrInvalidToken, auth.ErrUnauthorized} {
					if errors.Is(err, sentinel) {
						t.Fatalf("Authorize: %v matches %v, so the gateway would not answer 503", err, sentinel)
					}
				}
				if rules != nil && !strings.Contains(err.Error(), "SubjectAccessReview") {
					return err
				}
				return nil
			})
		})
	}
}
