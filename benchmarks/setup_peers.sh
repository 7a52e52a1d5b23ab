#!/usr/bin/env bash
# Create benchmarks/.venv-peers: the project's Python plus the peers joulemeter is compared
# with, so the project's own environment is not polluted. CodeCarbon is already a project
# dependency (seen through --system-site-packages); Zeus is installed here only.
# Zeus is published on PyPI as `zeus` (0.16.x); `zeus-ml` is its old name (stopped at 0.11).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet "zeus>=0.16,<0.17"
"$venv/bin/python" -c "import zeus, codecarbon, joulemeter.meter; print('peers ready:', 'zeus', zeus.__version__, '/ codecarbon', codecarbon.__version__)"
