#!/usr/bin/env bash
# Builds the SeaweedFS server binary (weed) once and caches it at
# $(go env GOPATH)/bin/weed-<version>; prints that path on stdout.
# `go install` refuses the module (its go.mod has a replace directive), so
# this downloads the module and builds ./weed inside a writable copy.
set -euo pipefail
WEED_VERSION="${WEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
bin="$(go env GOPATH)/bin/weed-${WEED_VERSION}"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
dir="$(go mod download -json "github.com/seaweedfs/seaweedfs@${WEED_VERSION}" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir" ]] || { echo "build-weed: go mod download gave no Dir" >&2; exit 1; }
src="$(mktemp -d)"
trap 'chmod -R u+w "$src" 2>/dev/null; rm -rf "$src"' EXIT
cp -r "$dir/." "$src/"
chmod -R u+w "$src"
mkdir -p "$(dirname "$bin")"
# No DWARF (compile or link) and no symbol table: the test server is never
# debugged, and both cost build time on a binary this large.
(cd "$src" && GOFLAGS=-mod=mod go build -trimpath -gcflags=all=-dwarf=false -ldflags='-s -w' -o "$bin.tmp" ./weed) >&2
mv "$bin.tmp" "$bin"
echo "$bin"
