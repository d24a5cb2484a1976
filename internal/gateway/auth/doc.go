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

// Package auth decides, for every call to jobstate's EventoDB gateway,
// whether its bearer token may do what the call does in the namespace it
// acts in: Authorize takes the token, the namespace asked for and the
// Access, and answers with the namespace or a refusal the gateway maps to
// an EventoDB error code (ErrRequired, ErrInvalidToken, ErrUnauthorized).
//
// Three kinds of token are accepted, told apart in this order:
//   - The admin token, the content of Options.AdminTokenFile: Admin, and
//     Read and Write in every namespace.
//   - Namespace tokens, EventoDB's own kind ("ns_<namespace>_<secret>"):
//     Read and Write in their one namespace. Tokens stores them as Secrets
//     holding a SHA-256 of the token, and Authorize verifies them against
//     a watch-fed cache of those Secrets.
//   - Every other token is a Kubernetes token (a ServiceAccount token, an
//     OIDC token, ...): the API server authenticates it (TokenReview) and
//     RBAC authorizes the call (SubjectAccessReview), through
//     k8s.io/apiserver's delegating authenticator and authorizer, with
//     their caches.
//
// What it guarantees:
//   - A namespace token acts only in its own namespace and never gets
//     Admin, whatever namespace its holder asks for: the namespace is part
//     of the token and of what its hash covers, so a token edited to name
//     another namespace does not verify.
//   - Revocation by deleting the Secret: once the watch delivers the
//     deletion (milliseconds; after a broken watch, once the informer has
//     listed again), the token is refused. A token the cache verifies
//     costs no API request; one it does not know (issued a moment ago, by
//     this replica or another, or never) costs one GET of its Secret before
//     it is refused, so a token works on the call right after ns.create.
//   - No plaintext namespace token is stored: a Secret holds only the
//     SHA-256 of the token (32 random bytes in it make a hash without salt
//     enough), compared in constant time. The admin token is kept in
//     memory only as its SHA-256. No error message contains a token.
//   - A Kubernetes token can do through the gateway only what the API
//     server's authorizer (RBAC) lets it do: Read is "get" on
//     eventstreams.state.jobstate.dev in the namespace, Write both "create"
//     and "update" there, Admin "create" on namespaces (cluster-wide, for
//     creating, deleting and listing namespaces alike).
//   - Failing closed: when the API server cannot answer, or the token cache
//     has not synced, the call is refused with an error that is none of
//     the sentinels (the gateway answers 503), never allowed.
//
// What it does not guarantee:
//   - Immediate revocation of a Kubernetes token or an RBAC change: answers
//     are cached for Options.AuthenticationCacheTTL and
//     Options.AuthorizationCacheTTL (10s by default), so a deleted
//     RoleBinding keeps working that long, and a deleted ServiceAccount's
//     token that long plus as long as the API server itself caches a
//     successful authentication (10s in kube-apiserver; on envtest the
//     token was still accepted 5s after the deletion).
//   - That namespace tokens expire: like EventoDB's, they are valid until
//     deleted.
//   - Protection against guessing traffic: every token that is not a
//     namespace or admin token is sent to the API server (a TokenReview;
//     successes are cached, refusals that come with an error message, as
//     most do, are not); rate-limit in front of the gateway. The tokens a client sends are therefore seen by
//     the API server, as they are by every delegating authenticator.
//   - Audience checks: a Kubernetes token minted for the API server is
//     accepted, as the API server itself would accept it.
//   - That the namespace exists: Authorize decides who may act where, not
//     whether there is anything there.
//   - Protection from whoever may create or update Secrets in
//     Options.TokenNamespace: they can issue themselves a token for any
//     namespace. Grant that to the gateway and cluster admins only.
//
// The identity of Options.Config needs: "create" on tokenreviews
// (authentication.k8s.io) and subjectaccessreviews (authorization.k8s.io),
// cluster-wide; "get", "list", "watch", "create" and "delete" on secrets in
// Options.TokenNamespace.
package auth
