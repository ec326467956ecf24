"""sushy-tools' static Redfish emulator (``sushy-static``, PyPI ``sushy-tools``) as a third-party
peer: it serves a mockup directory (``<dir>/Chassis/1/index.json`` for
``/redfish/v1/Chassis/1``) over HTTPS, the way DMTF's and vendors' mockups are published.

What it does and does not do (sushy-tools 2.2.0, ``sushy_tools/static/main.py``): GET answers
the ``index.json`` of the path, or 404; a query string is part of the path, so
``?$expand=...`` is a 404 (the collector then reads the members one by one); no
authentication at all (basic credentials are sent and ignored; no SessionService); POST and
PATCH answer 204 and store nothing, printing the headers and the body to stdout. So a PATCH
is checked here as sent and accepted and its body as received; what a BMC then holds is
checked against the project's own server (tests/integration/test_fan_redfish_dell.py).
Its stdout holds the Authorization header: it goes to a file under the test's tmp_path only.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.fakes.redfish_trees import V1, Tree, write_mockup
from tests.integration.peers.redfish_server import make_certificate
from tests.procs import free_port, stop, wait_until

INSTALL = ("sushy-static not found: install sushy-tools (pip install sushy-tools, or the dev "
           "extra: pip install -e '.[dev]')")


def sushy_static() -> str:
    """The ``sushy-static`` script beside this interpreter, or on PATH; fails (never skips)
    saying what to install."""
    beside = Path(sys.executable).parent / "sushy-static"
    found = str(beside) if beside.exists() else shutil.which("sushy-static")
    if found is None:
        raise AssertionError(INSTALL)
    return found


class SushyStatic:
    """``sushy-static --mockup-files DIR`` on 127.0.0.1 over HTTPS, for one test."""

    def __init__(self, tree: Tree, directory: Path) -> None:
        self.mockup = write_mockup(tree, directory / "mockup")
        self.certificate = make_certificate(directory)
        self.port = free_port()
        self.log = directory / "sushy-static.out"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SushyStatic:
        cert, key = self.certificate
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [sushy_static(), "--interface", "127.0.0.1", "--port", str(self.port),
                 "--mockup-files", str(self.mockup), "--ssl-certificate", str(cert),
                 "--ssl-key", str(key)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_until(lambda: self.get(V1) is not None, 15.0, "sushy-static to serve the root")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            stop(self._proc)

    def get(self, path: str) -> dict[str, Any] | None:
        """A resource as the peer serves it (None while it does not answer yet)."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"sushy-static exited {self._proc.returncode}: "
                                 f"{self.log.read_text()[-2000:]}")
        ctx = ssl.create_default_context(cafile=str(self.certificate[0]))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}",
                                    context=ctx, timeout=2) as resp:
            return dict(json.loads(resp.read()))

    def bodies(self) -> list[dict[str, Any]]:
        """The request bodies it printed (POST and PATCH), in order."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("Data: b'") and line.endswith("'"):
                out.append(json.loads(line[len("Data: b'"):-1]))
        return out
