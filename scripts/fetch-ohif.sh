#!/usr/bin/env bash
# Fetches the pinned OHIF viewer build into build/ohif (filled in by the viewer work).
exit 0
