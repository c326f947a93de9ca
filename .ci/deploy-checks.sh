#!/usr/bin/env bash
# Checks the deployment kit (deployments/) with the tools that consume it:
# promtool, amtool, helm, the replywatch binary itself, and the Go tests
# of the deployments package. No Docker engine is needed.
#
#   .ci/deploy-checks.sh            (from the repository root or anywhere)
#
# Installs promtool/amtool (Debian packages prometheus and
# prometheus-alertmanager) when missing, and builds helm from the Go module
# proxy once, cached as $(go env GOPATH)/bin/helm-$HELM_VERSION.
set -euo pipefail

HELM_VERSION=v3.22.0
# The Kubernetes version helm's release binaries of HELM_VERSION assume when
# not told (the minor of its k8s.io/client-go, v0.37). Helm's Makefile sets
# it at link time; a plain `go install` leaves 1.20, which the chart
# (kubeVersion >= 1.25) refuses, so the build below sets it as the Makefile
# does.
HELM_KUBE_DEFAULT=1.37
# The Kubernetes version helm lint/template render for (the chart needs >= 1.25).
KUBE_VERSION=1.30.0

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
die() { printf 'deploy-checks: %s\n' "$*" >&2; exit 1; }

# --- tools ------------------------------------------------------------------

if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  step "installing promtool and amtool"
  [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null ||
    die "promtool/amtool are missing and this is not Debian/Ubuntu: install Prometheus and Alertmanager's promtool and amtool"
  [[ $(id -u) -eq 0 ]] ||
    die "promtool/amtool are missing: run as root, or: sudo apt-get install -y prometheus prometheus-alertmanager"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus prometheus-alertmanager
fi

helm="$(go env GOPATH)/bin/helm-$HELM_VERSION-k$HELM_KUBE_DEFAULT"
if [[ ! -x $helm ]]; then
  step "building helm $HELM_VERSION from the Go module proxy (once)"
  mkdir -p "$(dirname "$helm")"
  kube_major=${HELM_KUBE_DEFAULT%%.*} kube_minor=${HELM_KUBE_DEFAULT#*.}
  GOBIN="$work/helm-bin" go install \
    -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$kube_major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$kube_major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$work/helm-bin/helm" "$helm"
fi
[[ $("$helm" version --template '{{.Version}}') == "$HELM_VERSION" ]] || die "$helm is not helm $HELM_VERSION"

# --- Prometheus and Alertmanager ---------------------------------------------

step "promtool: rules, rule unit tests, example config"
promtool check rules deployments/prometheus/rules.yml
promtool test rules deployments/prometheus/rules_test.yml
promtool check config deployments/prometheus/prometheus.yml

step "amtool: Alertmanager config"
amtool check-config deployments/alertmanager/alertmanager.yml

# --- the binary the image builds -----------------------------------------------

if [[ -d cmd/replywatch ]]; then
  step "replywatch: the Dockerfile's build, and the configs the kit ships"
  version_flag='-X github.com/replywatch/replywatch/app.Version='
  grep -q -- "$version_flag" deployments/Dockerfile || die "deployments/Dockerfile no longer sets $version_flag"
  CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags "-s -w ${version_flag}ci-check -X github.com/replywatch/replywatch/app.Revision=ci" \
    -o "$work/replywatch" ./cmd/replywatch
  "$work/replywatch" version | grep -q 'ci-check' || die "the Dockerfile's -ldflags do not set the version"
  if command -v ldd >/dev/null && ldd "$work/replywatch" >/dev/null 2>&1; then
    die "the replywatch binary is dynamically linked; the distroless static image needs CGO_ENABLED=0"
  fi
  # The image's HEALTHCHECK runs this subcommand: it must exist and fail
  # when nothing answers.
  if "$work/replywatch" healthcheck --url http://127.0.0.1:9/healthz 2>/dev/null; then
    die "replywatch healthcheck succeeded against a closed port"
  fi
  "$work/replywatch" validate --config deployments/compose/replywatch.yaml >/dev/null
else
  echo "cmd/replywatch not present: skipping the binary and config checks"
fi

# --- Helm ----------------------------------------------------------------------

chart=deployments/helm/replywatch
full=deployments/helm/ci-full-values.yaml

step "helm $HELM_VERSION: lint and template (default values, $full)"
"$helm" lint --strict --kube-version "$KUBE_VERSION" "$chart"
"$helm" lint --strict --kube-version "$KUBE_VERSION" -f "$full" "$chart"
"$helm" template rw "$chart" --kube-version "$KUBE_VERSION" >"$work/default.yaml"
"$helm" template rw "$chart" --kube-version "$KUBE_VERSION" -f "$full" >"$work/full.yaml"

step "helm: template without --kube-version (helm's own default Kubernetes version, as a user's helm has)"
"$helm" template rw "$chart" >/dev/null
echo "renders for helm's default Kubernetes version $HELM_KUBE_DEFAULT"

step "helm: NOTES.txt renders (helm template skips it, so a copy renders it as data)"
cp -r "$chart" "$work/notes-chart"
cp "$chart/templates/NOTES.txt" "$work/notes-chart/notes.tpl"
echo 'notes: {{ tpl (.Files.Get "notes.tpl") . | toJson }}' >"$work/notes-chart/templates/zz-notes.yaml"
for values in "" "$full"; do
  notes=$("$helm" template rw "$work/notes-chart" --kube-version "$KUBE_VERSION" ${values:+-f "$values"} \
    --show-only templates/zz-notes.yaml)
  grep -q 'is installed as rw-replywatch' <<<"$notes" || die "NOTES.txt did not render:
$notes"
  if grep -q '<no value>' <<<"$notes"; then die "NOTES.txt refers to a value that does not exist:
$notes"; fi
done
echo "NOTES.txt renders with the default and the full values"

step "helm: values the chart must refuse"
expect_fail() {
  local want=$1; shift
  if out=$("$helm" template rw "$chart" --kube-version "$KUBE_VERSION" "$@" 2>&1); then
    die "helm template $* succeeded; want an error containing: $want"
  fi
  grep -qF -- "$want" <<<"$out" || die "helm template $*: error does not say \"$want\":
$out"
  echo "refused as expected: $*"
}
expect_fail "keda.maxReplicaCount (13) exceeds kafka.partitions (12)" --set keda.enabled=true --set keda.maxReplicaCount=13
expect_fail "replicaCount (13) exceeds kafka.partitions (12)" --set replicaCount=13
expect_fail "terminationGracePeriodSeconds" --set terminationGracePeriodSeconds=5
expect_fail "additional properties" --set replicaCont=3
expect_fail "is not a memory quantity such as 512Mi" --set resources.limits.memory=lots

step "rendered manifests"
go run ./deployments/internal/manifestcheck -partitions 12 -config-out "$work/config-default" "$work/default.yaml"
go run ./deployments/internal/manifestcheck -partitions 24 -config-out "$work/config-full" "$work/full.yaml"
kinds=$(grep -h '^kind:' "$work/full.yaml" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
for k in Deployment Service PodDisruptionBudget ConfigMap ServiceMonitor PrometheusRule ScaledObject NetworkPolicy Pod; do
  grep -q "kind: $k;" <<<"$kinds" || die "the full values render no $k ($kinds)"
done
if [[ -x $work/replywatch ]]; then
  for f in "$work"/config-default/*.yaml "$work"/config-full/*.yaml; do
    # The receivers' secrets exist only in the pod (files and variables from webhookSecrets).
    "$work/replywatch" validate --skip-secrets --config "$f" >/dev/null || die "the chart renders a config replywatch rejects: $f"
  done
  echo "replywatch validate accepts the chart's config files"
fi

# --- dashboards, Compose, queries: the Go tests ---------------------------------

step "go test ./deployments/... (dashboards, Compose, queries, routing, inhibition; promtool check metrics on a live /metrics)"
go vet ./deployments/...
go test -count=1 ./deployments/...

step "all deployment checks passed"
