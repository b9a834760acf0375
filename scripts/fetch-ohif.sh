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
FIXUP_REVISION="5"  # bump when the rewrites below change

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
# Modes a veterinary clinic's reading does not use are left out of the start-up: OHIF loads every
# registered mode, and the extensions each one names, before it shows the first image (segmentation
# editing, PET/CT TMTV, whole-slide microscopy, preclinical 4D, lung-ultrasound B-lines). The viewer
# route (longitudinal) and basic stay, with the SR, PDF, video, SEG, RT and PMAP display extensions.
UNUSED_MODES = ("segmentation", "tmtv", "microscopy", "preclinical-4d", "ultrasound-pleura-bline")
UNUSED_EXTENSIONS = ("ultrasound-pleura-bline",)
app = next(dist.glob("app.bundle.*.js"))
text = app.read_text(encoding="utf-8", errors="surrogateescape")
for kind, names in (("modes", UNUSED_MODES), ("extensions", UNUSED_EXTENSIONS)):
    prefix = "mode" if kind == "modes" else "extension"
    for name in names:
        line = f'pluginImports_{kind}.push("@ohif/{prefix}-{name}");\n'
        if text.count(line) != 1:
            sys.exit(f"fetch-ohif: {line.strip()!r} not found once in {app.name}; this OHIF build differs")
        text = text.replace(line, "")
app.write_text(text, encoding="utf-8", errors="surrogateescape")

# The chunks the viewer route needs before its first image, preloaded from index.html: otherwise the
# browser finds them one wave at a time, each wave only after the previous chunk has run. The set is
# read from the bundle's own loader (loadModule: the webpack chunk ids of each mode and extension).
NEEDED = (
    "@ohif/mode-longitudinal", "@ohif/mode-basic", "@ohif/extension-default", "@ohif/extension-cornerstone",
    "@ohif/extension-measurement-tracking", "@ohif/extension-cornerstone-dicom-sr",
    "@ohif/extension-cornerstone-dicom-seg", "@ohif/extension-cornerstone-dicom-rt",
    "@ohif/extension-cornerstone-dicom-pmap", "@ohif/extension-dicom-pdf", "@ohif/extension-dicom-video",
)
loader = text[text.index("async function loadModule(module)") :]
chunk_ids = []
for name in NEEDED:
    branch = re.search(rf'if \(module === "{re.escape(name)}"\) \{{(.*?)return imported', loader, re.S)
    if branch is None:
        sys.exit(f"fetch-ohif: no loader for {name} in {app.name}; this OHIF build differs")
    for chunk in re.findall(r"__webpack_require__\.e\((?:/\* import\(\) \*/ )?(\d+)\)", branch.group(1)):
        if chunk not in chunk_ids:
            chunk_ids.append(chunk)
links = []
for chunk in chunk_ids:
    # A chunk is a script, a stylesheet or both (mini-css-extract).
    links += [f'<link rel="preload" as="script" href="{base}{js.name}">' for js in dist.glob(f"{chunk}.bundle.*.js")]
    if (dist / f"{chunk}.css").is_file():
        links.append(f'<link rel="preload" as="style" href="{base}{chunk}.css">')
if len(links) < 10:
    sys.exit(f"fetch-ohif: only {len(links)} chunks to preload; this OHIF build differs")
# The app bundle first: a preload outranks a deferred script, and HTTP/1.1 has six connections.
bundle_tag = r'<script defer (src="[^"]*app\.bundle\.[^"]*")></script>'
first = r'<script defer fetchpriority="high" \1></script>'
rewrite(dist / "index.html", [(bundle_tag, first + "".join(links))])
print(f"fetch-ohif: {len(UNUSED_MODES)} modes left out, {len(links)} chunks preloaded")
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
