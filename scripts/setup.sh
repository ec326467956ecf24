#!/usr/bin/env bash
# Set up ./.venv with gpuwatchd installed (editable) from this checkout.
#   scripts/setup.sh          runtime only (enough for `gpuwatchd --demo`)
#   scripts/setup.sh --dev    plus the test, lint and journal extras
# On a fresh Debian 12 as root it installs python3-venv first if the venv module is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev,journal]"

if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing python3-venv (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-venv python3-pip >/dev/null
  else
    echo "setup: the Python venv module is missing: run 'apt-get install python3-venv' as root" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
echo "setup: ready: .venv/bin/gpuwatchd, .venv/bin/gpuwatchctl" >&2
