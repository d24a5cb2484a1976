#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd, kubectl) from the Go
# module proxy into the setup-envtest store layout, so envtest, setup-envtest
# and IDE test runs find them offline:
#
#   ${ENVTEST_STORE}/k8s/${K8S_VERSION}-linux-amd64/{kube-apiserver,etcd,kubectl}
#
# setup-envtest downloads prebuilt binaries from the internet; build machines
# here reach only the Go module proxy, so we compile them instead. Binaries
# already present are skipped, unless kube-apiserver or kubectl reports a
# version other than v${K8S_VERSION} (builds before the version stamp said
# v0.0.0-master): those are rebuilt. Prints the asset directory on the last
# line of stdout (progress goes to stderr), so callers can do
#   KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
ENVTEST_STORE="${ENVTEST_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest}"
ASSETS="${ENVTEST_STORE}/k8s/${K8S_VERSION}-${GOOS}-${GOARCH}"
STAGING_VERSION="v0.${K8S_VERSION#1.}"   # 1.37.2 -> v0.37.2

log() { printf '[envtest-assets %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "${ASSETS}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
export GOFLAGS="-mod=mod" GOWORK=off CGO_ENABLED=0

# Version stamp: what Kubernetes' own build (hack/lib/version.sh,
# kube::version::ldflags) sets with -X, in both packages that carry it —
# component-base/version is what kube-apiserver --version and the server side
# of `kubectl version` report, client-go/pkg/version kubectl's client side.
# gitCommit is left empty: the module proxy serves the release without the
# commit it was tagged from, and the in-tree "$Format:%H$" would say nothing.
stamp_ldflags() {
  local pkg key val flags=""
  local -A vars=(
    [gitVersion]="v${K8S_VERSION}"
    [gitMajor]="${K8S_VERSION%%.*}"
    [gitMinor]="$(cut -d. -f2 <<<"${K8S_VERSION}")"
    [gitCommit]=""
    [gitTreeState]="clean"
    [buildDate]="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  )
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in "${!vars[@]}"; do
      val="${vars[$key]}"
      flags+=" -X '${pkg}.${key}=${val}'"
    done
  done
  echo "${flags}"
}

# current NAME: whether ${ASSETS}/NAME exists and, for the binaries that carry
# the Kubernetes version stamp, reports v${K8S_VERSION}.
current() {
  local bin="${ASSETS}/$1" out
  [[ -x "${bin}" ]] || return 1
  case "$1" in
    kube-apiserver) out="$("${bin}" --version 2>/dev/null)" || return 1 ;;
    kubectl) out="$("${bin}" version --client 2>/dev/null)" || return 1 ;;
    *) return 0 ;;
  esac
  [[ "${out}"$'\n' == *" v${K8S_VERSION}"$'\n'* ]] # "Kubernetes v1.37.2", "Client Version: v1.37.2"
}

# build NAME MODULE_REQUIREMENTS MAIN_GO [REPLACES]: compiles a throwaway module
# whose main.go is MAIN_GO into ${ASSETS}/NAME atomically (tmp + rename), so an
# interrupted build never leaves a half-written binary that later runs would
# skip, and a process running the old binary keeps it.
build() {
  local name="$1" requires="$2" main="$3" replaces="${4:-}"
  if current "${name}"; then
    log "${name}: present, skipping"
    return
  elif [[ -x "${ASSETS}/${name}" ]]; then
    log "${name}: present but not stamped v${K8S_VERSION}, rebuilding"
  fi
  local dir="${WORK}/${name}"
  mkdir -p "${dir}"
  printf 'module envtestassets/%s\n\ngo 1.26\n\nrequire (\n%s\n)\n%s\n' \
    "${name}" "${requires}" "${replaces}" >"${dir}/go.mod"
  printf '%s\n' "${main}" >"${dir}/main.go"
  log "${name}: resolving modules"
  (cd "${dir}" && go mod tidy >&2)
  log "${name}: compiling (kube-apiserver takes ~12 min cold on 2 cores)"
  local start=$SECONDS
  (cd "${dir}" && go build -trimpath -ldflags "-s -w $(stamp_ldflags)" -o "${ASSETS}/.${name}.tmp" . >&2)
  mv "${ASSETS}/.${name}.tmp" "${ASSETS}/${name}"
  log "${name}: built in $((SECONDS - start))s"
}

# k8s.io/kubernetes replaces its staging modules with ./staging paths, which a
# module depending on it cannot follow; point each at its published release.
staging_replaces() {
  local mod
  mod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "${mod}" | awk '/=> \.\/staging/ {print $1}' | while read -r m; do
    case "$m" in k8s.io/sample-cli-plugin|k8s.io/sample-controller) continue ;; esac # never published
    printf '\t%s => %s %s\n' "$m" "$m" "${STAGING_VERSION}"
  done
  echo ")"
}

build etcd "	go.etcd.io/etcd/server/v3 ${ETCD_VERSION}" 'package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }'

build kubectl "	k8s.io/kubectl ${STAGING_VERSION}
	k8s.io/component-base ${STAGING_VERSION}" 'package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() { cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()) }'

# Checked here too so that a present, stamped kube-apiserver skips the module
# download staging_replaces does.
if ! current kube-apiserver; then
  build kube-apiserver "	k8s.io/kubernetes v${K8S_VERSION}
	k8s.io/component-base ${STAGING_VERSION}" 'package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }' "$(staging_replaces)"
else
  log "kube-apiserver: present, skipping"
fi

log "assets ready in ${ASSETS}"
echo "${ASSETS}"
