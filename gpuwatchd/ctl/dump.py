"""``gpuwatchctl dump``: what gpuwatchd sees on this node, in one redacted archive, so that a
report of a wrong reading becomes a test fixture (docs/support-dump.md).

Read afresh with the daemon's own config and links (the daemon may run or not):

- ``bmc-<name>.redfish.json``: every resource under ``Chassis`` and ``Managers`` as the BMC
  served it, ``{"NOTE": ..., "tree": {path: document}}``, the shape of
  ``tests/data/redfish/*.json`` (``curl -su USER https://BMC/redfish/v1/...`` per path);
- ``bmc-<name>.sdr.json``: Get Device ID, every SDR record and each sensor's Get Sensor
  Reading answer, as hex (``ipmitool sdr dump``, ``ipmitool raw 0x04 0x2d N``);
- ``nvidia-smi.xml`` (``nvidia-smi -q -x``), ``gridd.conf`` and its lint, the last lines of
  ``journalctl -u nvidia-gridd`` and, when the daemon answers, its ``status`` document.

Redacted before anything is written: values of keys that name a secret (password, token,
secret, community, ...) or a serial number (SerialNumber, ServiceTag, AssetTag, SKU, UUID,
MAC addresses), and ``<serial>``-like elements of the nvidia-smi XML. The archive is written
``0600``; nothing of it goes to stdout but its path.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import socket
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from gpuwatchd import __version__
from gpuwatchd.config import BmcConfig, Config, ConfigError, load
from gpuwatchd.config.files import FileRefused, read_regular
from gpuwatchd.control.factory import ipmi_link
from gpuwatchd.ctl.common import EXIT_CONFIG, err
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.hardware import Hardware, real
from gpuwatchd.licence import griddconf, tokens
from gpuwatchd.licence.node import NodePaths
from gpuwatchd.licence.sources import LicenceSources
from gpuwatchd.links import ipmi_sdr as sdr
from gpuwatchd.links.redfish import RedfishLink
from gpuwatchd.status.client import QueryError, query
from gpuwatchd.status.paths import default_socket

DEFAULT_CONFIG = "/etc/gpuwatchd/gpuwatchd.yaml"
REDACTED = "REDACTED"
MAX_RESOURCES = 1500  # a Redfish crawl stops here (an iDRAC9 chassis tree: ~300)
GRIDD_LINES = 200
MAX_FILE_BYTES = 1 << 20
COMMAND_TIMEOUT_SECONDS = 20.0
SECRET_KEY = re.compile(r"password|passphrase|secret|token|community|privatekey|authkey",
                        re.IGNORECASE)
SERIAL_KEY = re.compile(r"serial|servicetag|assettag|^sku$|uuid$|macaddress", re.IGNORECASE)
_XML_SERIAL = re.compile(r"<(\w*serial\w*)>[^<]*</\1>", re.IGNORECASE)
_CRAWLED = ("/redfish/v1/Chassis", "/redfish/v1/Managers")
_SKIPPED = ("/LogServices", "/Sessions", "/Accounts", "/Certificates", "/Jobs", "/VirtualMedia",
            "/SecureBoot", "/JsonSchemas")
Hw = Callable[[], Hardware]


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=DEFAULT_CONFIG,
                   help=f"the daemon's config file (default {DEFAULT_CONFIG})")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="the archive to write (default ./gpuwatchd-dump-HOST-TIME.tar.gz)")
    p.add_argument("--socket", metavar="PATH", help="the daemon's status socket")


def run(args: argparse.Namespace, hardware: Hw = real) -> int:
    """Write the archive; exit 0 when written (parts that failed say so inside it)."""
    try:
        config = load(args.config)
    except ConfigError as exc:
        err(str(exc))
        return EXIT_CONFIG
    hw = hardware()
    files = dict(collect(config, hw, args.socket or default_socket()))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(hw.clock.time()))
    path = args.output or f"gpuwatchd-dump-{socket.gethostname()}-{stamp}.tar.gz"
    write_archive(path, files)
    print(path)
    return 0


def collect(config: Config, hw: Hardware, status_socket: str) -> Iterator[tuple[str, str]]:
    """(file name, redacted text) for each part of the dump."""
    for bmc in config.bmcs:
        if bmc.protocol == "redfish":
            yield f"bmc-{bmc.name}.redfish.json", _json(redfish_tree(bmc, hw))
        else:
            yield f"bmc-{bmc.name}.sdr.json", _json(sdr_records(bmc, hw))
    sources = hw.licence if isinstance(hw.licence, LicenceSources) else LicenceSources()
    yield "nvidia-smi.xml", redact_xml(_command(sources, ["nvidia-smi", "-q", "-x"]))
    paths = NodePaths(config.licence.gridd_conf, config.licence.token_dir, sources.root)
    conf = griddconf.read(paths.conf_path())
    found = tokens.check(paths.token_path(conf), hw.clock.time(), listdir=sources.listdir,
                         stat_fn=sources.stat_fn)
    yield "gridd.conf", _read_text(paths.conf_path())
    yield "gridd-lint.txt", "".join(
        f"{p.severity} {p.kind}: {p.message}\n" for p in [
            *griddconf.lint(conf, None, set(), None, tokens=len(found.files)),
            *found.problems]) or "nothing to fix (without the GPUs' view)\n"
    yield "gridd.log", _command(sources, ["journalctl", "--unit=nvidia-gridd.service",
                                          f"--lines={GRIDD_LINES}", "--no-pager",
                                          "--output=short-iso"])
    try:
        yield "status.json", _json(redact(query(status_socket)))
    except QueryError as exc:
        yield "status.json", _json({"error": str(exc)})
    yield "README.txt", (f"gpuwatchctl dump, gpuwatchd {__version__}: secrets and serial "
                         "numbers are redacted. See docs/support-dump.md.\n")


def redfish_tree(bmc: BmcConfig, hw: Hardware) -> dict[str, Any]:
    """Every resource under Chassis and Managers (breadth first, at most MAX_RESOURCES)."""
    link = RedfishLink(bmc, hw.clock, client_factory=hw.redfish_client_factory(bmc.name))
    tree: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        link.login()
        queue, seen = deque(["/redfish/v1", *_CRAWLED]), set[str]()
        while queue and len(tree) < MAX_RESOURCES:
            path = queue.popleft().rstrip("/") or "/"
            if path in seen:
                continue
            seen.add(path)
            try:
                doc = link.get(path)
            except GpuwatchdError as exc:
                errors[path] = str(exc)
                if not link.connected:
                    break
                continue
            tree[path] = redact(doc)
            queue.extend(p for p in _links(doc) if _crawled(p))
        vendor = str(link.root.get("Vendor") or "")
    except GpuwatchdError as exc:
        errors["login"], vendor = str(exc), ""
    finally:
        link.close()
    return {"NOTE": f"NOTE({vendor or 'unknown vendor'}, Redfish, gpuwatchctl dump "
                    f"{__version__})", "tree": tree, "errors": errors}


def sdr_records(bmc: BmcConfig, hw: Hardware) -> dict[str, Any]:
    """Get Device ID, the SDR records and each sensor's reading, as hex."""
    link = ipmi_link(bmc, hw)
    out: dict[str, Any] = {"records": [], "errors": {}}
    try:
        out["device_id"] = link.raw(0x06, 0x01).hex()
        for data in sdr.read_records(link.raw):
            entry: dict[str, Any] = {"hex": data.hex()}
            record = sdr.parse_sdr(data)
            if record is not None:
                entry.update(name=record.name, number=record.number)
                try:
                    entry["reading"] = link.raw(sdr.NETFN_SENSOR, 0x2d, bytes([record.number]),
                                                lun=record.lun).hex()
                except GpuwatchdError as exc:
                    entry["reading_error"] = str(exc)
            out["records"].append(entry)
    except GpuwatchdError as exc:
        out["errors"]["ipmi"] = str(exc)
    finally:
        link.close()
    device = link.device
    out["NOTE"] = (f"NOTE({device.vendor if device else 'unknown vendor'} firmware "
                   f"{device.firmware if device else '?'}, IPMI, gpuwatchctl dump {__version__})")
    return out


def redact(value: Any) -> Any:
    """``value`` with secret and serial-number values replaced, at every level."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _sensitive(k)
                and value[k] not in (None, "", [], {}) else redact(value[k]) for k in value}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_xml(text: str) -> str:
    """nvidia-smi XML with ``<serial>``, ``<board_serial>`` ... emptied of their values."""
    return _XML_SERIAL.sub(lambda m: f"<{m.group(1)}>{REDACTED}</{m.group(1)}>", text)


def write_archive(path: str, files: dict[str, str]) -> None:
    """A gzipped tar of ``files`` under one folder, readable by its owner only."""
    folder = os.path.basename(path).removesuffix(".tar.gz") or "gpuwatchd-dump"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))


def _sensitive(key: str) -> bool:
    return bool(SECRET_KEY.search(key) or SERIAL_KEY.search(key.replace(".", "")))


def _links(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "@odata.id" and isinstance(value, str):
                yield value
            else:
                yield from _links(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _links(value)


def _crawled(path: str) -> bool:
    return "#" not in path and path.startswith(_CRAWLED) and not any(s in path for s in _SKIPPED)


def _command(sources: LicenceSources, argv: list[str]) -> str:
    try:
        result = sources.runner(argv, COMMAND_TIMEOUT_SECONDS)
    except GpuwatchdError as exc:
        return f"{' '.join(argv)}: {exc}\n"
    return result.stdout if result.returncode == 0 else \
        f"{' '.join(argv)}: exit {result.returncode}\n{result.stderr}"


def _read_text(path: str) -> str:
    try:
        return read_regular(path, MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except FileRefused as exc:
        return f"{exc}\n"


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"
