#!/usr/bin/env bash
# Fetches the pinned prebuilt OHIF viewer (@ohif/app on npm) into build/ohif, rebased to /viewer/.
#
# Why @ohif/app: the package publishes the production build in dist/ (index.html, app.bundle.*.js,
# chunks, wasm codecs, zh locale built in), so nothing is compiled here and the only download is one
# tarball from the npm registry, checked against the pinned sha512 integrity below.
#
# The build is made for the site root (index.html links "/app.bundle...", webpack's public path is
# "/"); vetpacs serves it same-origin under /viewer/, so the few absolute paths are rewritten once
# here. Each rewrite must match, so a new OHIF version that moves them fails loudly instead of
# serving a blank page. Idempotent: a stamp file records what is installed; nothing runs if it matches.
set -euo pipefail

OHIF_VERSION="3.13.2"
OHIF_INTEGRITY="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
BASE="/viewer/"
FIXUP_REVISION="1"  # bump when the rewrites below change

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${VETPACS_OHIF_DIR:-$ROOT/build/ohif}"
STAMP="$DEST/.vetpacs-ohif-stamp"
WANT="@ohif/app@$OHIF_VERSION base=$BASE fixup=$FIXUP_REVISION"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    exit 0
fi

command -v npm >/dev/null || { echo "fetch-ohif: npm is needed (apt-get install npm)" >&2; exit 1; }
PYTHON="${PYTHON:-python3}"
mkdir -p "$(dirname "$DEST")"
WORK="$(mktemp -d "$(dirname "$DEST")/.ohif-fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "fetch-ohif: downloading @ohif/app@$OHIF_VERSION from the npm registry"
(cd "$WORK" && npm pack --silent --json "@ohif/app@$OHIF_VERSION" >pack.json)
integrity="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$WORK/pack.json")"
if [[ "$integrity" != "$OHIF_INTEGRITY" ]]; then
    echo "fetch-ohif: integrity $integrity does not match the pinned $OHIF_INTEGRITY" >&2
    exit 1
fi
tar -xzf "$WORK"/ohif-app-"$OHIF_VERSION".tgz -C "$WORK"
NEW="$WORK/package/dist"
[[ -f "$NEW/index.html" ]] || { echo "fetch-ohif: the package has no dist/index.html" >&2; exit 1; }

"$PYTHON" - "$NEW" "$BASE" <<'PY'
import pathlib
import re
import sys

dist, base = pathlib.Path(sys.argv[1]), sys.argv[2]


def rewrite(path, pairs, *, each_must_match=True):
    text = path.read_text(encoding="utf-8")
    for old, new in pairs:
        count = len(re.findall(old, text))
        if each_must_match and count == 0:
            sys.exit(f"fetch-ohif: {old!r} not found in {path.name}; this OHIF build is laid out differently")
        text = re.sub(old, new, text)
    path.write_text(text, encoding="utf-8")


# index.html: the public URL, every root-absolute href/src, Chinese first (zh-CN), our title.
rewrite(
    dist / "index.html",
    [
        (r'window\.PUBLIC_URL="/"', f'window.PUBLIC_URL="{base}"'),
        (r'(href|src)="/(?!/)', rf'\1="{base}'),
        (r'<html lang="en">', '<html lang="zh-CN">'),
        (r"<title>OHIF Viewer</title>", "<title>vetpacs 影像浏览 OHIF</title>"),
    ],
)
# webpack's runtime public path: chunks, workers, wasm and css are loaded relative to it.
patched = 0
for js in dist.glob("*.js"):
    text = js.read_text(encoding="utf-8", errors="surrogateescape")
    if '__webpack_require__.p = "/";' in text:
        js.write_text(
            text.replace('__webpack_require__.p = "/";', f'__webpack_require__.p = "{base}";'),
            encoding="utf-8",
            errors="surrogateescape",
        )
        patched += 1
if not any(dist.glob("app.bundle.*.js")) or patched == 0:
    sys.exit("fetch-ohif: webpack public path not found in the bundle")
# Fonts referenced from CSS, and the web app manifest's icons.
for css in dist.glob("*.css"):
    rewrite(css, [(r"url\(/(?!/)", f"url({base}")], each_must_match=False)
rewrite(dist / "manifest.json", [(r'"/assets/', f'"{base}assets/')])
print(f"fetch-ohif: rebased to {base} ({patched} bundles)")
PY

# Pre-compressed copies: the app bundle alone is ~17 MB of JavaScript, ~4 MB gzipped.
find "$NEW" -maxdepth 1 -type f \( -name '*.js' -o -name '*.css' -o -name '*.wasm' -o -name '*.json' \
    -o -name '*.html' -o -name '*.svg' \) -size +1k -print0 | xargs -0 -P2 -n8 gzip -k -6

echo "$WANT" >"$NEW/.vetpacs-ohif-stamp"
# Swap in whole: a server reading the old build never sees a half-written one.
if [[ -e "$DEST" ]]; then
    mv "$DEST" "$WORK/old"
fi
mv "$NEW" "$DEST"
echo "fetch-ohif: @ohif/app@$OHIF_VERSION ready in $DEST"
