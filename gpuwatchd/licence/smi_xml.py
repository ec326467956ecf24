"""Restricted vs Unrestricted from ``nvidia-smi -q -x``, the only place a guest can see it.

The guest's NVML gives a boolean (``featureState``); the six-value licence state is host-only.
nvidia-smi prints the split in its "vGPU Software Licensed Product" section, e.g.
``<license_status>Unlicensed (Restricted)</license_status>``. Known generations (sources in
``shared/reference/gridd-licence.md`` (b)):

- GRID era (old AWS gaming): section "GRID Licensed Product", status ``Licensed``; the XML tag
  ``grid_licensed_product`` is inferred from the text header (no XML sample was found);
- legacy server / early NLS: ``vgpu_software_licensed_product``, ``Licensed`` or ``Unlicensed``
  with no expiry;
- NLS: ``Licensed (Expiry: 2023-1-31 11:32:22 GMT)`` (not zero-padded, GMT);
- R535+: ``Unlicensed (Unrestricted)`` during the grace period, ``Unlicensed (Restricted)`` after;
- cloud-bundled: ``Licensed (Expiry: N/A)`` or ``Licensed (Expiry: Permanent)``; ``ERR!`` when
  the driver cannot read the expiry.

The XML is parsed (never grepped) and each GPU is matched by UUID, else by PCI bus id. The
command runs with a timeout and at most once per ``interval_seconds`` (or, when a GPU has just
become unlicensed, once per :data:`FORCED_MIN_GAP_SECONDS`): on a node with 8 GPUs a full
``-q -x`` takes about a second of driver time, so it is not run every probe.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from gpuwatchd.clock import Clock
from gpuwatchd.errors import DeadlineExceeded, GpuwatchdError, NotInstalled
from gpuwatchd.licence.commands import Runner
from gpuwatchd.licence.kinds import ExpiryStatus

log = logging.getLogger(__name__)

ARGV = ("nvidia-smi", "-q", "-x")
FORCED_MIN_GAP_SECONDS = 30.0  # a state change asks at once, but never more than twice a minute
_STATUS = re.compile(r"^\s*(licensed|unlicensed)\s*(?:\(\s*(restricted|unrestricted)\s*\))?\s*"
                     r"(?:\(\s*expiry\s*:\s*([^)]*?)\s*\))?\s*$", re.IGNORECASE)
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T]+(\d{1,2}):(\d{1,2}):(\d{1,2})"
                   r"\s*(?:GMT|UTC|Z)?$", re.IGNORECASE)
_BUS = re.compile(r"([0-9a-f]+):([0-9a-f]+):([0-9a-f]+)\.([0-7])", re.IGNORECASE)


@dataclass(frozen=True)
class SmiLicence:
    """One GPU's licence section.

    ``licensed``/``restricted`` are None when the text does not say (an unknown wording, or an
    older driver that prints a bare ``Unlicensed``).
    """

    product: str
    status_text: str
    licensed: bool | None
    restricted: bool | None = None
    expiry_status: ExpiryStatus | None = None
    expiry_timestamp_seconds: float | None = None


@dataclass(frozen=True)
class SmiReport:
    """One parsed ``nvidia-smi -q -x``: the licence section of each GPU that has one."""

    taken_wall: float
    by_uuid: dict[str, SmiLicence] = field(default_factory=dict)
    by_bus_id: dict[str, SmiLicence] = field(default_factory=dict)

    def lookup(self, uuid: str, bus_id: str = "") -> SmiLicence | None:
        """The section of the GPU with this UUID (or PCI bus id); None if it has none."""
        found = self.by_uuid.get(uuid)
        if found is None and bus_id:
            found = self.by_bus_id.get(normalize_bus_id(bus_id))
        return found


def parse_status(text: str) -> tuple[bool | None, bool | None, ExpiryStatus | None, float | None]:
    """``'Licensed (Expiry: 2023-1-31 11:32:22 GMT)'`` -> (licensed, restricted, status, epoch)."""
    match = _STATUS.match(text)
    if match is None:
        return None, None, None, None
    licensed = match.group(1).lower() == "licensed"
    qualifier = match.group(2)
    restricted = None if qualifier is None else qualifier.lower() == "restricted"
    if match.group(3) is None:
        return licensed, restricted, None, None
    status, stamp = parse_expiry(match.group(3))
    return licensed, restricted, status, stamp


def parse_expiry(text: str) -> tuple[ExpiryStatus, float | None]:
    """An expiry as nvidia-smi prints it: a GMT date (not zero-padded), N/A, Permanent, ERR!."""
    word = text.strip().lower()
    if word in ("n/a", "na", "not applicable"):
        return ExpiryStatus.NOT_APPLICABLE, None
    if word == "permanent":
        return ExpiryStatus.PERMANENT, None
    match = _DATE.match(text.strip())
    if match is None:
        return ExpiryStatus.INVALID, None  # "ERR!" and anything unrecognised
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        when = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    except ValueError:
        return ExpiryStatus.INVALID, None
    return ExpiryStatus.VALID, when.timestamp()


def normalize_bus_id(text: str) -> str:
    """``0000:00:07.0`` and ``00000000:00:07.0`` -> ``00000000:00:07.0``."""
    match = _BUS.search(text)
    if match is None:
        return text.strip().lower()
    dom, bus, dev, fn = match.groups()
    return f"{int(dom, 16):08x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{fn}"


def parse(xml_text: str, taken_wall: float = 0.0) -> SmiReport:
    """Parse ``nvidia-smi -q -x``; raise ValueError if it is not an nvidia_smi_log document."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - trusted local output; expat >= 2.4.1 here
    except ET.ParseError as exc:
        raise ValueError(f"nvidia-smi -q -x: not XML: {exc}") from None
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"nvidia-smi -q -x: unexpected root element <{root.tag}>")
    by_uuid: dict[str, SmiLicence] = {}
    by_bus: dict[str, SmiLicence] = {}
    for gpu in root.iter("gpu"):
        section = _licence_section(gpu)
        if section is None:
            continue
        uuid = (gpu.findtext("uuid") or "").strip()
        if uuid:
            by_uuid[uuid] = section
        bus = gpu.get("id") or gpu.findtext("pci/pci_bus_id") or ""
        if bus:
            by_bus[normalize_bus_id(bus)] = section
    return SmiReport(taken_wall, by_uuid, by_bus)


def _licence_section(gpu: ET.Element) -> SmiLicence | None:
    """The ``*_licensed_product`` child (vgpu_software_ or grid_); None where there is none."""
    for child in gpu:
        if child.tag.endswith("licensed_product"):
            product = (child.findtext("licensed_product_name")
                       or child.findtext("product_name") or "").strip()
            text = (child.findtext("license_status") or "").strip()
            licensed, restricted, status, stamp = parse_status(text)
            return SmiLicence(product, text, licensed, restricted, status, stamp)
    return None


class SmiReader:
    """Runs ``nvidia-smi -q -x`` through an injected runner, rate-limited, with a timeout."""

    def __init__(self, runner: Runner, clock: Clock, timeout_seconds: float = 5.0,
                 interval_seconds: float = 300.0) -> None:
        self._runner = runner
        self._clock = clock
        self._timeout = timeout_seconds
        self._interval = interval_seconds
        self._last_run: float | None = None
        self.report: SmiReport | None = None
        self.error = ""
        self.runs: Counter[str] = Counter()  # by result: ok, timeout, not_installed, failed, ...

    def read(self, force: bool = False) -> SmiReport | None:
        """The latest report, running nvidia-smi first if it is due (``force``: sooner)."""
        now = self._clock.monotonic()
        gap = FORCED_MIN_GAP_SECONDS if force else self._interval
        if self._last_run is not None and now - self._last_run < gap:
            return self.report
        self._last_run = now
        self._run()
        return self.report

    def _run(self) -> None:
        try:
            result = self._runner(ARGV, self._timeout)
        except DeadlineExceeded as exc:
            self._failed("timeout", str(exc))
            return
        except NotInstalled as exc:
            self._failed("not_installed", str(exc))
            return
        except GpuwatchdError as exc:
            self._failed("failed", str(exc))
            return
        if result.returncode != 0:
            first = (result.stderr or result.stdout).strip().splitlines()[:1]
            self._failed("failed", f"nvidia-smi exited {result.returncode}: "
                                   f"{first[0] if first else 'no output'}")
            return
        try:
            self.report = parse(result.stdout, self._clock.time())
        except ValueError as exc:
            self._failed("unparsable", str(exc))
            return
        self.runs["ok"] += 1
        self.error = ""

    def _failed(self, kind: str, message: str) -> None:
        self.runs[kind] += 1
        if message != self.error:
            log.warning("licence: %s", message)
        self.error = message
