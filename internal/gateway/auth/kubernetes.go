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
	"net"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// authorizeKubernetes is Authorize for a token the API server judges.
func (a *Authorizer) authorizeKubernetes(ctx context.Context, token, namespace string, access Access) (string, error) {
	// Step 1. Who the token is (TokenReview, cached).
	u, err := a.authenticate(ctx, token)
	if err != nil {
		return "", err
	}
	// Step 2. Where it acts: a ServiceAccount in its own namespace unless
	// it names another; any other user must name one, as kubectl needs
	// one from them.
	if err := validTarget(u.GetName(), namespace); err != nil {
		return "", err
	}
	target := namespace
	if target == "" && access != Admin {
		own, _, err := serviceaccount.SplitUsername(u.GetName())
		if err != nil {
			return "", &Error{Kind: ErrUnauthorized, User: u.GetName(),
				Reason: fmt.Sprintf("%s is not a ServiceAccount, so it has no namespace of its own; name the namespace to %s", u.GetName(), access)}
		}
		target = own
	}
	// Step 3. What RBAC lets it do there (SubjectAccessReview, cached):
	// every check must allow.
	for _, attrs := range checks(u, target, access) {
		decision, reason, err := a.authz.Authorize(ctx, attrs)
		if err != nil {
			return "", fmt.Errorf("auth: asking the API server whether %s may %s %s (SubjectAccessReview): %w", u.GetName(), attrs.Verb, resourceName(attrs), err)
		}
		if decision != authorizer.DecisionAllow {
			return "", denied(u, attrs, access, reason)
		}
	}
	return target, nil
}

// authenticate asks the API server who token is, through the delegating
// authenticator (which reads tokens from requests).
func (a *Authorizer) authenticate(ctx context.Context, token string) (user.Info, error) {
	// The bearer token authenticator reads up to the first space and
	// ignores the rest; a token it would cut short is not one.
	if !printable(token) {
		return nil, &Error{Kind: ErrInvalidToken, Reason: "the token contains whitespace or characters outside printable ASCII; send it exactly as issued"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/rpc", nil)
	if err != nil {
		return nil, fmt.Errorf("auth: making the request to authenticate: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, ok, err := a.authn.AuthenticateRequest(req)
	if err != nil && unavailable(err) {
		return nil, fmt.Errorf("auth: asking the API server who the token is (TokenReview): %w", err)
	}
	if err != nil || !ok {
		return nil, &Error{Kind: ErrInvalidToken, Err: err,
			Reason: "the API server does not accept the token (it is not the admin token, not a namespace token, and not a valid Kubernetes token: unknown, expired or revoked); get a new one, for a ServiceAccount with kubectl create token"}
	}
	return resp.User, nil
}

// unavailable reports whether err from the delegating authenticator means
// the API server did not answer (or refused the gateway itself), rather
// than that it judged the token. The token's own faults come back as
// plain errors made from TokenReview's status.error; a failed request
// comes back as a transport error or an API status.
func unavailable(err error) bool {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if unavailable(e) {
				return true
			}
		}
		return false
	}
	var status apierrors.APIStatus
	var urlErr *url.Error
	var netErr net.Error
	return errors.As(err, &status) || errors.As(err, &urlErr) || errors.As(err, &netErr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// checks are the SubjectAccessReviews access needs in namespace.
func checks(u user.Info, namespace string, access Access) []authorizer.AttributesRecord {
	stream := func(verb string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: u, Verb: verb, Namespace: namespace, ResourceRequest: true,
			APIGroup: jobstatev1alpha1.GroupVersion.Group, APIVersion: jobstatev1alpha1.GroupVersion.Version, Resource: "eventstreams"}
	}
	switch access {
	case Read:
		return []authorizer.AttributesRecord{stream("get")}
	case Write:
		return []authorizer.AttributesRecord{stream("create"), stream("update")}
	default:
		return []authorizer.AttributesRecord{{User: u, Verb: "create", ResourceRequest: true, APIVersion: "v1", Resource: "namespaces"}}
	}
}

// denied is the refusal of a check.
func denied(u user.Info, attrs authorizer.AttributesRecord, access Access, reason string) error {
	where := "cluster-wide"
	if attrs.Namespace != "" {
		where = "in namespace " + attrs.Namespace
	}
	msg := fmt.Sprintf("%s may not %s %s %s, which %s needs; grant it with RBAC", u.GetName(), attrs.Verb, resourceName(attrs), where, access)
	if access != Admin {
		msg += " (config/rbac/eventstream_editor_role.yaml bound in the namespace allows read and write)"
	}
	if reason != "" {
		msg += "; the API server said: " + reason
	}
	return &Error{Kind: ErrUnauthorized, User: u.GetName(), Namespace: attrs.Namespace, Reason: msg}
}

// resourceName is attrs' resource as kubectl names it.
func resourceName(attrs authorizer.AttributesRecord) string {
	if attrs.APIGroup == "" {
		return attrs.Resource
	}
	return attrs.Resource + "." + attrs.APIGroup
}
