#!/usr/bin/env bash
# Builds the light viewer (viewer-light/, Cornerstone3D + Vite) into build/light-viewer, served at /m/.
#
# The npm packages are pinned exactly in viewer-light/package.json and their integrity in
# package-lock.json; `npm ci` installs exactly those. The same step copies the browser libraries the
# pages use (htmx 0BSD, ECharts Apache-2.0, from the same lockfile) to build/light-viewer/vendor/, so
# nothing is fetched from a CDN at run time. Idempotent: a stamp of the inputs' hash skips a rebuild.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/viewer-light"
DEST="${VETPACS_LIGHT_VIEWER_DIR:-$ROOT/build/light-viewer}"
STAMP_DIR="$ROOT/build"
STAMP="$STAMP_DIR/.light-viewer-stamp"

command -v npm >/dev/null || { echo "build-light-viewer: npm is needed (apt-get install npm)" >&2; exit 1; }
inputs_hash() {
    (cd "$SRC" && cat package.json package-lock.json vite.config.js index.html $(find src -type f | sort)) \
        | sha256sum | cut -d' ' -f1
}
WANT="$(inputs_hash) dest=$DEST"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -f "$DEST/index.html" && -f "$DEST/vendor/htmx.min.js" ]]; then
    exit 0
fi

echo "build-light-viewer: installing the pinned packages (npm ci)"
(cd "$SRC" && npm ci --no-audit --no-fund --loglevel=error)
echo "build-light-viewer: building into $DEST"
mkdir -p "$(dirname "$DEST")"
(cd "$SRC" && VETPACS_LIGHT_VIEWER_OUT="$DEST" npx --no-install vite build --logLevel error --outDir "$DEST" --emptyOutDir)
mkdir -p "$DEST/vendor"
cp "$SRC/node_modules/htmx.org/dist/htmx.min.js" "$DEST/vendor/htmx.min.js"
cp "$SRC/node_modules/echarts/dist/echarts.min.js" "$DEST/vendor/echarts.min.js"
# Phones on clinic Wi-Fi: send the big files gzipped (the server picks *.gz when the browser accepts it).
find "$DEST" -type f \( -name '*.js' -o -name '*.wasm' -o -name '*.css' -o -name '*.html' \) -size +1k \
    -exec gzip -kf -9 {} \;
mkdir -p "$STAMP_DIR"
echo "$WANT" >"$STAMP"
echo "build-light-viewer: done ($(du -sh "$DEST" | cut -f1))"
