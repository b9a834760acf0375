#!/usr/bin/env bash
# Installs the pinned OpenID Connect provider (npm oidc-provider, tools/oidc-test-provider) into
# build/oidc-test-provider for the single sign-on tests. Idempotent: nothing runs when the installed
# lockfile matches. npm ci installs exactly what package-lock.json pins (with its integrity hashes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tools/oidc-test-provider"
DEST="${VETPACS_OIDC_PROVIDER_DIR:-$ROOT/build/oidc-test-provider}"
command -v npm >/dev/null || { echo "install-oidc-test-provider: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$DEST"
cp "$SRC/server.mjs" "$DEST/server.mjs"
if [[ -d "$DEST/node_modules" ]] && cmp -s "$SRC/package-lock.json" "$DEST/package-lock.json"; then
    exit 0
fi
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "oidc-provider installed in $DEST"
