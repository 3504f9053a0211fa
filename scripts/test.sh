#!/usr/bin/env bash
# Runs Kalla's checks and tests. Tests start their own throwaway Postgres
# (and S3-compatible servers: gofakes3, then versitygw) unless
# KALLA_TEST_POSTGRES_URL is set; this script installs the Postgres server
# binaries and iproute2 when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if [ -z "${KALLA_TEST_POSTGRES_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# The protected-mode tests put a client in a network namespace with ip (as
# root; they skip otherwise).
if ! command -v ip >/dev/null 2>&1; then
  missing+=(iproute2)
fi
# The console's browser tests (ui/) drive a headless Chromium.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-headless-shell >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]} for the tests" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -count=1 -timeout 45m "$@" ./...

# The S3 tests once more against versitygw, an S3 gateway that verifies
# SigV4 signatures (gofakes3, above, checks none): the s3 package, the
# harness's own tests, kallad's S3 process tests (S3 in their names) and
# the S3 kinds of the source conformance suite.
# kallatest builds versitygw once into the user cache folder (go install
# from the Go module proxy). See docs/operations.md ("S3 in the tests").
KALLA_TEST_S3=versitygw go test -count=1 -timeout 20m ./s3/ ./internal/kallatest/
KALLA_TEST_S3=versitygw go test -count=1 -timeout 10m -run 'TestSourceConformance/s3' ./internal/conformance/
KALLA_TEST_S3=versitygw go test -count=1 -timeout 20m -run S3 ./cmd/kallad/

# The deployment files (compose files, Kubernetes manifests, KEDA's
# ScaledObject), validated offline by deploy/check: a module of its own, so
# compose-go and kubeconform stay out of the main go.mod. See
# docs/deployment.md, "Validating the files".
(
  cd deploy/check
  go vet ./...
  go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
  go test -count=1 ./...
)
