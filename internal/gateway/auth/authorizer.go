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

package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// Access is what a call does in a namespace.
type Access int

const (
	// Read: SubjectAccessReview verb "get" on
	// eventstreams.state.jobstate.dev in the namespace.
	Read Access = iota
	// Write: verbs "create" and "update" on eventstreams in the namespace,
	// both allowed.
	Write
	// Admin: ns.create, ns.delete and ns.list. The admin token, or a
	// Kubernetes identity allowed verb "create" on namespaces
	// cluster-wide: one check for all three calls, deleting and listing
	// included, so that one ClusterRole rule makes an EventoDB admin.
	Admin
)

// String is the access as error messages name it.
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	default:
		return fmt.Sprintf("Access(%d)", int(a))
	}
}

// DefaultTokenNamespace is where namespace tokens are stored unless
// Options.TokenNamespace says otherwise: the namespace config/default
// deploys the manager in.
const DefaultTokenNamespace = "jobstate-system"

// Options configure an Authorizer.
type Options struct {
	// Config connects to the API server that reviews Kubernetes tokens
	// and stores namespace tokens; the package doc lists what its identity
	// needs. Required.
	Config *rest.Config
	// TokenNamespace is the namespace holding the namespace tokens'
	// Secrets. Default DefaultTokenNamespace.
	TokenNamespace string
	// AdminTokenFile is the path of a file whose content, trimmed of
	// surrounding whitespace, is the admin token: at least 16 bytes, no
	// whitespace inside. New reads it and fails when it cannot; Start
	// re-reads it every AdminTokenCheckPeriod, so a rotated Secret volume
	// takes effect without a restart. Default "": no admin token, Admin
	// only for Kubernetes identities RBAC allows.
	AdminTokenFile string
	// AdminTokenCheckPeriod is how often Start re-reads AdminTokenFile.
	// Default 10s.
	AdminTokenCheckPeriod time.Duration
	// AuthenticationCacheTTL is how long the API server's answer to a
	// TokenReview is reused: a deleted ServiceAccount's token works that
	// much longer. Default 10s.
	AuthenticationCacheTTL time.Duration
	// AuthorizationCacheTTL is how long the API server's answer to a
	// SubjectAccessReview, allowed or denied, is reused: an RBAC change
	// takes effect that much later. Default 10s.
	AuthorizationCacheTTL time.Duration
	// RetryBackoff is how TokenReviews and SubjectAccessReviews are
	// retried when the API server does not answer. Default
	// DefaultRetryBackoff.
	RetryBackoff *wait.Backoff
	// Clock stamps Record.CreatedAt. Default the real clock.
	Clock clock.PassiveClock
}

// DefaultRetryBackoff is k8s.io/apiserver's DefaultAuthWebhookRetryBackoff
// (500ms, ×1.5, 5 attempts: about 4s before a 503), copied as
// controller-runtime's metrics filter does rather than importing
// k8s.io/apiserver/pkg/server/options.
var DefaultRetryBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// reviewTimeout bounds one TokenReview, as controller-runtime's metrics
// filter does.
const reviewTimeout = 10 * time.Second

// Authorizer authorizes the gateway's calls. Run Start (or add it to a
// controller-runtime manager) before serving: namespace tokens are
// verified from the cache Start fills.
type Authorizer struct {
	tokens   *Tokens
	informer cache.SharedIndexInformer
	factory  informers.SharedInformerFactory
	authn    authenticator.Request
	authz    authorizer.Authorizer
	admin    *adminToken
	started  atomic.Bool
	synced   chan struct{}
}

// complete validates opts and fills in the defaults.
func (opts *Options) complete() error {
	if opts.Config == nil {
		return errors.New("auth: Options.Config is required")
	}
	if opts.TokenNamespace == "" {
		opts.TokenNamespace = DefaultTokenNamespace
	}
	if err := validateNamespace(opts.TokenNamespace); err != nil {
		return fmt.Errorf("auth: Options.TokenNamespace: %w", err)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"AdminTokenCheckPeriod", &opts.AdminTokenCheckPeriod}, {"AuthenticationCacheTTL", &opts.AuthenticationCacheTTL}, {"AuthorizationCacheTTL", &opts.AuthorizationCacheTTL}} {
		if *d.v < 0 {
			return fmt.Errorf("auth: Options.%s is negative (%v); leave it 0 for the default", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = 10 * time.Second
		}
	}
	if opts.RetryBackoff == nil {
		opts.RetryBackoff = &DefaultRetryBackoff
	}
	if opts.RetryBackoff.Steps < 1 {
		return fmt.Errorf("auth: Options.RetryBackoff.Steps is %d; at least 1 attempt is needed", opts.RetryBackoff.Steps)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return nil
}

// New validates opts and returns an Authorizer; it makes no request.
func New(opts Options) (*Authorizer, error) {
	// Step 1. Options and their defaults.
	if err := opts.complete(); err != nil {
		return nil, err
	}
	// Step 2. The admin token: a configured file that cannot be read is
	// an error now rather than an admin locked out later.
	admin, err := newAdminToken(opts.AdminTokenFile, opts.AdminTokenCheckPeriod)
	if err != nil {
		return nil, err
	}
	// Step 3. The delegating authenticator and authorizer, with their
	// caches: the ecosystem's TokenReview and SubjectAccessReview clients.
	cs, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("auth: a client for Options.Config: %w", err)
	}
	authn, authz, err := delegates(cs, opts)
	if err != nil {
		return nil, err
	}
	// Step 4. The token cache: only token Secrets, only in the token
	// namespace, so the gateway needs no access to other Secrets.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(opts.TokenNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			selected := listOptions()
			o.LabelSelector, o.FieldSelector = selected.LabelSelector, selected.FieldSelector
		}))
	secrets := factory.Core().V1().Secrets()
	informer := secrets.Informer()
	if err := informer.SetTransform(stripManagedFields); err != nil {
		return nil, fmt.Errorf("auth: setting up the token cache: %w", err)
	}
	return &Authorizer{
		tokens: &Tokens{
			secrets:   cs.CoreV1().Secrets(opts.TokenNamespace),
			cached:    secrets.Lister().Secrets(opts.TokenNamespace),
			namespace: opts.TokenNamespace,
			clock:     opts.Clock,
		},
		informer: informer,
		factory:  factory,
		authn:    authn,
		authz:    authz,
		admin:    admin,
		synced:   make(chan struct{}),
	}, nil
}

// delegates are the delegating authenticator and authorizer (TokenReview
// and SubjectAccessReview, with their caches) for opts.
func delegates(cs kubernetes.Interface, opts Options) (authenticator.Request, authorizer.Authorizer, error) {
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		CacheTTL:                 opts.AuthenticationCacheTTL,
		TokenAccessReviewClient:  cs.AuthenticationV1(),
		TokenAccessReviewTimeout: reviewTimeout,
		WebhookRetryBackoff:      opts.RetryBackoff,
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("auth: making the delegating authenticator: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cs.AuthorizationV1(),
		AllowCacheTTL:             opts.AuthorizationCacheTTL,
		DenyCacheTTL:              opts.AuthorizationCacheTTL,
		WebhookRetryBackoff:       opts.RetryBackoff,
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("auth: making the delegating authorizer: %w", err)
	}
	return authn, authz, nil
}

// stripManagedFields keeps the cache small: nothing here reads them.
func stripManagedFields(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok {
		s.ManagedFields = nil
	}
	return obj, nil
}

// Tokens is the store of namespace tokens whose Secrets this Authorizer
// verifies against.
func (a *Authorizer) Tokens() *Tokens { return a.tokens }

// Start fills the token cache, keeps it in sync and re-reads the admin
// token file, until ctx ends; then it returns nil. It may be called once.
func (a *Authorizer) Start(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("auth: Authorizer.Start called twice")
	}
	a.factory.Start(ctx.Done())
	defer a.factory.Shutdown()
	go a.admin.watch(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), a.informer.HasSynced) {
		return nil
	}
	close(a.synced)
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: every gateway replica authorizes its own
// calls (controller-runtime's manager.LeaderElectionRunnable).
func (a *Authorizer) NeedLeaderElection() bool { return false }

// HasSynced reports whether the token cache has been filled, for a
// readiness check: until then namespace tokens wait for it.
func (a *Authorizer) HasSynced() bool {
	select {
	case <-a.synced:
		return true
	default:
		return false
	}
}

// Authorize verifies token for a call doing access and returns the
// Kubernetes namespace the call acts in. namespace is the one the caller
// asked for, "" for the token's own: a namespace token's, or a
// ServiceAccount token's ServiceAccount's; the admin token and other
// Kubernetes users have none and must name one. For Admin, namespace is
// the target namespace, "" when the call has none (ns.list), and is
// returned as is.
//
// A refusal is an *Error matching ErrRequired, ErrInvalidToken or
// ErrUnauthorized; any other error means the decision could not be made
// (the API server did not answer, the cache is not synced before ctx
// ended, Start was not called).
func (a *Authorizer) Authorize(ctx context.Context, token, namespace string, access Access) (string, error) {
	// Step 1. Refuse what no token can do, before any lookup.
	if token == "" {
		return "", &Error{Kind: ErrRequired, Namespace: namespace, Reason: "the call carries no token; send one in an Authorization: Bearer header"}
	}
	if access < Read || access > Admin {
		return "", &Error{Kind: ErrUnauthorized, Namespace: namespace, Reason: fmt.Sprintf("unknown access %v", access)}
	}
	// Step 2. The admin token, compared first so that it is never sent
	// to the API server.
	if a.admin.matches(token) {
		const user = "admin token"
		if err := validTarget(user, namespace); err != nil {
			return "", err
		}
		if namespace == "" && access != Admin {
			return "", &Error{Kind: ErrUnauthorized, User: user, Reason: fmt.Sprintf("the admin token has no namespace of its own; name the namespace to %s", access)}
		}
		return namespace, nil
	}
	// Step 3. Namespace tokens, verified from the cache, never sent to
	// the API server.
	if len(token) >= len(tokenPrefix) && token[:len(tokenPrefix)] == tokenPrefix {
		return a.authorizeNamespaceToken(ctx, token, namespace, access)
	}
	// Step 4. Everything else is the API server's to judge.
	return a.authorizeKubernetes(ctx, token, namespace, access)
}

// authorizeNamespaceToken is Authorize for a namespace token.
func (a *Authorizer) authorizeNamespaceToken(ctx context.Context, token, namespace string, access Access) (string, error) {
	own, err := ParseToken(token)
	if err != nil {
		return "", err
	}
	if err := a.waitSynced(ctx); err != nil {
		return "", err
	}
	// The namespace is part of what is hashed: a token whose namespace was
	// edited is looked up in that namespace's Secret and does not match.
	hash := tokenHash(token)
	stored, err := a.tokens.storedHash(ctx, own, false)
	if err != nil || !hashesEqual(hash[:], stored) {
		// The cache may not have seen a token issued a moment ago, by
		// this replica or another: ask the API server before refusing.
		// (A revoked token stays accepted until the watch delivers the
		// deletion: the cache is only ever behind.)
		if stored, err = a.tokens.storedHash(ctx, own, true); err != nil {
			return "", err
		}
	}
	if !hashesEqual(hash[:], stored) {
		return "", &Error{Kind: ErrInvalidToken, Namespace: own,
			Reason: fmt.Sprintf("the token is not namespace %s's current token (revoked and reissued, or never issued); ask an admin for the current one", own)}
	}
	user := "namespace token for " + own
	if err := validTarget(user, namespace); err != nil {
		return "", err
	}
	if access == Admin {
		return "", &Error{Kind: ErrUnauthorized, User: user, Namespace: namespace,
			Reason: "a namespace token cannot administer namespaces; use the admin token or a Kubernetes identity allowed to create namespaces"}
	}
	if namespace != "" && namespace != own {
		return "", &Error{Kind: ErrUnauthorized, User: user, Namespace: namespace,
			Reason: fmt.Sprintf("a token for namespace %s cannot %s in namespace %s; use that namespace's token", own, access, namespace)}
	}
	return own, nil
}

// validTarget refuses a namespace asked for that is no namespace name,
// once the token has been verified (an unverified one is ErrInvalidToken
// whatever it asks for).
func validTarget(user, namespace string) error {
	if namespace == "" {
		return nil
	}
	if problem := namespaceProblem(namespace); problem != "" {
		return &Error{Kind: ErrUnauthorized, User: user, Namespace: namespace, Reason: "no call may act in an invalid namespace: " + problem}
	}
	return nil
}

// waitSynced waits for the token cache, until ctx ends.
func (a *Authorizer) waitSynced(ctx context.Context) error {
	if !a.started.Load() {
		return errors.New("auth: the Authorizer is not started, so namespace tokens cannot be verified; run Start (or add it to the manager) before serving")
	}
	select {
	case <-a.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting for the cache of namespace tokens (Secrets in %s) to sync: %w", a.tokens.namespace, context.Cause(ctx))
	}
}
