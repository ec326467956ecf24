#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root): installs the real protocol
# peers the integration tests start on 127.0.0.1 (OpenIPMI ipmi_sim, ipmitool, FreeIPMI,
# prometheus-ipmi-exporter, Prometheus + promtool, OpenSSH sshd + ssh, gcc for the fake libnvidia-ml.so.1,
# debhelper/lintian/systemd-analyze for the package), sets up .venv, then runs ruff, mypy
# and pytest. Extra arguments go to pytest. Then the unit tests once more under the oldest
# pyenv interpreter from 3.10 on (Ubuntu 22.04's Python), where the machine has pyenv.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS="gcc libc6-dev make pkg-config libsystemd-dev python3-dev python3-venv python3-pip
  openipmi libopenipmi-dev ipmitool freeipmi-tools prometheus-ipmi-exporter prometheus
  openssl systemd procps curl util-linux openssh-server openssh-client
  debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools dpkg-dev
  lintian python3-systemd python3-prometheus-client python3-yaml python3-bcrypt
  python3-requests python3-requests-toolbelt python3-jsonpatch python3-cryptography
  python3-json-pointer python3-requests-unixsocket"

missing=""
for pkg in $PEERS; do
  dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test: missing Debian packages (run as root or install them):$missing" >&2
    exit 1
  fi
  echo "test: installing Debian packages:$missing" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

bash scripts/setup.sh --dev
echo "test: ruff" >&2
.venv/bin/ruff check gpuwatchd tests bench
echo "test: mypy" >&2
.venv/bin/mypy
echo "test: pytest" >&2
.venv/bin/python -m pytest -q "$@"

# Python 3.10 (Ubuntu 22.04): the oldest supported interpreter, from pyenv where present (CI
# machines have it; a machine without pyenv skips this). Its own venv, .venv-py<version>.
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
oldest=$(ls -d "$pyenv_root"/versions/3.* 2>/dev/null | sed 's|.*/versions/||' \
  | grep -E '^3\.(1[0-9]|[2-9][0-9])\.[0-9]+$' | sort -V | head -n 1 || true)
if [ -n "$oldest" ] && [ -x "$pyenv_root/versions/$oldest/bin/python" ]; then
  venv=".venv-py$oldest"
  echo "test: unit tests under Python $oldest (pyenv)" >&2
  [ -x "$venv/bin/python" ] || "$pyenv_root/versions/$oldest/bin/python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,journal]"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit
else
  echo "test: no pyenv interpreter from 3.10 on: skipping the oldest-Python run" >&2
fi
