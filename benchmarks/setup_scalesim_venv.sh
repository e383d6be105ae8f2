#!/usr/bin/env bash
# Create a separate venv with the SCALE-Sim 3.0.0 peer (PyPI only). SCALE-Sim crashes with numpy 2.4
# (int() of a 1-element array), so numpy is pinned below 2.4 here, away from hwsim's own environment.
# Usage: benchmarks/setup_scalesim_venv.sh [VENV_DIR]   (default /opt/scalesim-venv)
# Then:  export HWSIM_SCALESIM_PYTHON=VENV_DIR/bin/python; pytest -m peers tests/test_scalesim_peers.py
set -euo pipefail
VENV="${1:-/opt/scalesim-venv}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "scalesim==3.0.0" "numpy<2.4"
"$VENV/bin/python" -c "import scalesim.scale_sim; print('scalesim 3.0.0 ready:', '$VENV/bin/python')"
