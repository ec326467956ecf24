"""Test certificates made with the ``openssl`` command line (Debian ``openssl``).

``make_pki(dir)`` writes a CA (``ca.crt``/``ca.key``), a server certificate for 127.0.0.1
(``server.crt``/``server.key``) and a client certificate (``client.crt``/``client.key``),
both signed by the CA. EC P-256 keys: the whole set takes about 50 ms.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

OPENSSL_MISSING = "openssl not found: apt-get install openssl"


def make_pki(directory: Path) -> Path:
    """Create the CA, server and client certificates in ``directory``; return it."""
    if shutil.which("openssl") is None:
        raise RuntimeError(OPENSSL_MISSING)
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True,
                       timeout=30)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=gpuwatchd-test-ca",
        # Python 3.13 verifies with VERIFY_X509_STRICT: a CA needs its key usage
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name in ("server", "client"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (directory / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return directory
