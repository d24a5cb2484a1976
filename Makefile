# jobstate — see README.md. `make help` lists the targets.

# Kubernetes version of the local control plane (kube-apiserver, etcd,
# kubectl built from the Go module proxy by hack/envtest-assets.sh).
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_STORE ?= $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/kubebuilder-envtest
GOOS ?= $(shell go env GOOS)
GOARCH ?= $(shell go env GOARCH)
KUBEBUILDER_ASSETS ?= $(ENVTEST_STORE)/k8s/$(ENVTEST_K8S_VERSION)-$(GOOS)-$(GOARCH)
export KUBEBUILDER_ASSETS

IMG ?= jobstate-controller:latest
# Where `make build-installer` writes install.yaml.
DIST ?= dist

# Tools, pinned. Installed into bin/ with the version in the name, so a bump
# rebuilds them.
LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
STATICCHECK_VERSION ?= v0.8.2
KUBECTL ?= $(KUBEBUILDER_ASSETS)/kubectl

# Test flags: -race on by default; TESTFLAGS=... to add more.
TESTFLAGS ?= -race -count=1 -timeout=20m

# Version stamped on the plugin archives of `make plugin-dist` (the
# release tag krew-release-bot renders hack/krew/jobstate.yaml with).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Platforms of the plugin archives: those hack/krew/jobstate.yaml lists.
PLUGIN_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

# How long `make soak` runs its load (a Go duration); SOAKFLAGS=... to add
# flags (go run ./test/soak -h).
DURATION ?= 2m

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: verify-gen
verify-gen: manifests generate ## Regenerate and fail if committed generated files are stale.
	@if ! git diff --quiet -- api config; then \
		echo "Generated files are stale; run 'make manifests generate' and commit:"; \
		git --no-pager diff --stat -- api config; exit 1; fi
	@if [ -n "$$(git status --porcelain -- api config)" ]; then \
		echo "Untracked generated files:"; git status --porcelain -- api config; exit 1; fi

.PHONY: fmt
fmt: ## Run gofmt; fails listing files that were not formatted.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: fmt vet ## Run gofmt, go vet and staticcheck.
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl from the Go module proxy, version-stamped (skips what exists and reports the version).
	ENVTEST_STORE="$(ENVTEST_STORE)" K8S_VERSION="$(ENVTEST_K8S_VERSION)" hack/envtest-assets.sh >/dev/null

.PHONY: test
test: fmt vet verify-gen envtest-assets ## Unit and envtest tests against a local API server.
	go test $(TESTFLAGS) ./...

.PHONY: bench
bench: envtest-assets ## Throughput table against one local API server (see test/bench).
	go run ./test/bench $(BENCHFLAGS)

.PHONY: soak
soak: envtest-assets ## Mixed load against a local control plane and the manager for DURATION (default 2m); fails on a lost or duplicated write (see test/soak).
	go run ./test/soak -duration=$(DURATION) $(SOAKFLAGS)

.PHONY: run
run: envtest-assets ## Run the manager (and a local control plane, sample jobs and a demo worker if no cluster is configured).
	go run ./hack/devenv $(RUNFLAGS)

##@ Build

.PHONY: build
build: ## Build the manager and the demo worker into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/worker ./examples/worker

.PHONY: plugin
plugin: ## Build the kubectl plugin into bin/kubectl-jobstate (put bin/ on PATH for `kubectl jobstate`).
	go build -o $(LOCALBIN)/kubectl-jobstate ./cmd/kubectl-jobstate

.PHONY: plugin-dist
plugin-dist: ## Build the plugin's release archives for krew into dist/ (VERSION=<tag>; see hack/krew/jobstate.yaml).
	@mkdir -p dist
	@for p in $(PLUGIN_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; dir=$$(mktemp -d); \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -o $$dir/kubectl-jobstate ./cmd/kubectl-jobstate; \
		tar -czf dist/kubectl-jobstate_$(VERSION)_$${os}_$${arch}.tar.gz -C $$dir kubectl-jobstate; \
		rm -r $$dir; \
		echo dist/kubectl-jobstate_$(VERSION)_$${os}_$${arch}.tar.gz; \
	done
	cd dist && sha256sum kubectl-jobstate_$(VERSION)_*.tar.gz > kubectl-jobstate_$(VERSION)_checksums.txt

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and every JobState) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: build-installer
build-installer: manifests ## Write $(DIST)/install.yaml: everything `make deploy` installs, in one file, with the image IMG.
	@mkdir -p $(DIST)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r config "$$tmp/" && mkdir "$$tmp/config/installer" && \
	img='$(IMG)' && base=$${img##*/} && name=$$img && tag=latest && \
	if [[ $$base == *:* ]]; then name=$${img%:*}; tag=$${img##*:}; fi && \
	printf 'resources:\n- ../default\nimages:\n- name: jobstate-controller\n  newName: %s\n  newTag: %s\n' "$$name" "$$tag" \
		>"$$tmp/config/installer/kustomization.yaml" && \
	$(KUBECTL) kustomize "$$tmp/config/installer" >$(DIST)/install.yaml
	@echo "$(DIST)/install.yaml (image $(IMG)): kubectl apply --server-side -f $(DIST)/install.yaml"

.PHONY: deploy
deploy: build-installer ## Deploy the controller (CRDs, RBAC, admission policies, the manager and gateway Deployments with IMG) to the cluster.
	$(KUBECTL) apply --server-side -f $(DIST)/install.yaml

.PHONY: undeploy
undeploy: ## Remove the controller from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
