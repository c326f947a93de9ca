#!/usr/bin/env bash
# Runs replywatch's whole test suite: unit tests, integration tests against a
# real redis-server and the Kafka wire protocol, and the deployment checks.
# On Debian/Ubuntu it installs what the tests need (redis-server, prometheus,
# prometheus-alertmanager, kcat, chromium and a CJK font for the pages
# browser test) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || command -v sudo >/dev/null 2>&1; }; then
    echo "installing test dependencies: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "replywatch's tests need ${need[*]} on PATH." >&2
    echo "On Debian/Ubuntu: apt-get install ${need[*]}; elsewhere install Redis >= 7, Prometheus (promtool) Alertmanager (amtool) and Chromium from your package manager." >&2
    exit 1
  fi
fi

go vet ./...
go test -race -count=1 -timeout 20m ./...
bash .ci/deploy-checks.sh
