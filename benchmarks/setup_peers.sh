#!/usr/bin/env bash
# Create benchmarks/.venv-peers: the project's environment plus the peers joulemeter is
# compared with, so the project's own environment is not polluted. The peers' venv sees
# the project's venv (.venv, or $PROJECT_PYTHON's) through a .pth file, so CodeCarbon (a
# project dependency) and joulemeter come from there; Zeus is installed here only.
# Zeus is published on PyPI as `zeus` (0.16.x); `zeus-ml` is its old name (stopped at 0.11).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
project_python="${PROJECT_PYTHON:-$here/../.venv/bin/python}"
site_of='import sysconfig; print(sysconfig.get_paths()["purelib"])'
if [ ! -x "$venv/bin/python" ]; then
    "$project_python" -m venv "$venv"
fi
project_site="$("$project_python" -c "$site_of")"
echo "import site; site.addsitedir('$project_site')" > "$("$venv/bin/python" -c "$site_of")/joulemeter-project.pth"
"$venv/bin/python" -m pip install --quiet "zeus>=0.16,<0.17"
"$venv/bin/python" -c "import zeus, codecarbon, joulemeter.meter; print('peers ready:', 'zeus', zeus.__version__, '/ codecarbon', codecarbon.__version__)"
