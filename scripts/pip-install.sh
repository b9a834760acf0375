#!/usr/bin/env bash
# pip-installs the project (editable) into the venv unless pyproject.toml is unchanged since last time.
set -euo pipefail
bin="$1"; target="$2"
stamp="$bin/../.installed-$(echo "$target" | tr -c 'a-z' '_')"
sum=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then exit 0; fi
"$bin/pip" install --quiet --disable-pip-version-check -e "$target"
echo "$sum" > "$stamp"
