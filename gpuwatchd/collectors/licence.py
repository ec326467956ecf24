"""vGPU licence collector: NVML probe + node checks -> states, metrics and (opt-in) remediation.

Runs on its own slow cadence (``licence.interval_seconds``, default 60 s) with its own lease
on the shared NVML session (gpuwatchd.links.nvml), whose GPU enumeration it reuses. Per
GPU: virtualization mode, licensable features (product, state, expiry), and on a host the
licence of each vGPU instance; per node: nvidia-gridd's unit and journal,
gridd.conf, the token folder, clock sync. ``nvidia-smi -q -x`` runs only while a GPU is
unlicensed (Restricted vs Unrestricted), rate-limited. Operator guide: ``docs/licence.md``.

Command-line equivalent: ``nvidia-smi -q | grep -A2 'Licensed Product'`` plus
``systemctl status nvidia-gridd`` and ``ls -l /etc/nvidia/ClientConfigToken``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpuwatchd.collectors import Scheduled
from gpuwatchd.errors import GpuwatchdError, Lost
from gpuwatchd.licence import griddconf
from gpuwatchd.licence import metrics as m
from gpuwatchd.licence.kinds import LicenceState, Severity
from gpuwatchd.licence.node import NodeChecker, NodePaths, NodeReport
from gpuwatchd.licence.probe import GpuProbe, LicenceProbe
from gpuwatchd.licence.remediation import Remediator, Situation
from gpuwatchd.licence.smi_xml import SmiReader, SmiReport
from gpuwatchd.licence.sources import LicenceSources
from gpuwatchd.licence.state import (
    Assessment,
    Evidence,
    GpuTracker,
    Thresholds,
    is_vapps,
    node_findings,
)
from gpuwatchd.licence.timesync import ClockSync
from gpuwatchd.links import nvml
from gpuwatchd.links.nvml import NvmlDevice, NvmlLink
from gpuwatchd.model import (
    Collected,
    FamilyBuilder,
    LicenceNodeReading,
    LicenceReading,
    VgpuInstanceLicenceReading,
)

if TYPE_CHECKING:
    from gpuwatchd.clock import Clock
    from gpuwatchd.config import Config, LicenceConfig
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

MAX_REINIT_SECONDS = 600.0
HELD = (LicenceState.LICENSED, LicenceState.RENEWING_LATE, LicenceState.EXPIRING)
RESTARTABLE = (LicenceState.UNLICENSED_GRACE, LicenceState.RESTRICTED, LicenceState.EXPIRED)


@dataclass
class _Gpu:
    index: int
    uuid: str
    handle: Any
    bus_id: str = ""


class LicenceCollector:
    """Probes every GPU's licence and the node's licensing setup once per interval."""

    name = "licence"

    def __init__(self, link: NvmlLink, clock: Clock, cfg: LicenceConfig,
                 sources: LicenceSources) -> None:
        self._link, self._clock, self._cfg = link, clock, cfg
        self._probe = LicenceProbe(link)
        self._smi = SmiReader(sources.runner, clock, cfg.smi_timeout_seconds,
                              cfg.smi_interval_seconds)
        self._node = NodeChecker(
            clock, sources.runner, NodePaths(cfg.gridd_conf, cfg.token_dir, sources.root),
            lines=sources.journal(clock) if cfg.journal else None,
            sync=ClockSync(sources.runner, sources.adjtimex),
            token_max_age_seconds=cfg.token_max_age_seconds,
            listdir=sources.listdir, stat_fn=sources.stat_fn)
        self.remediator = Remediator(clock, sources.runner,
                                     enabled=cfg.remediation.restart_gridd,
                                     grace_seconds=cfg.remediation.unlicensed_seconds,
                                     state_file=cfg.remediation.state_file)
        self._th = Thresholds(**{k: getattr(cfg, k) for k in Thresholds.__dataclass_fields__})
        self._gpus: list[_Gpu] = []
        self._trackers: dict[str, GpuTracker] = {}
        self._next_init = float("-inf")
        self._backoff = cfg.interval_seconds

    def collect(self) -> Collected:
        """One probe of every GPU and the node; see the module docstring."""
        self._ensure_init()
        probes = self._probe_all()
        guests = [(g, p) for g, p in probes if self._tracker(g).applies(p)]
        node = self._node.check() if guests or self._cfg.enabled is True else None
        conf = node.conf if node is not None else None
        ftype = conf.feature_type if conf is not None else None
        smi = self._read_smi(guests, ftype)
        b = FamilyBuilder(m.CATALOGUE)
        readings: list[object] = []
        assessed: list[Assessment] = []
        conf_problems: dict[str, griddconf.Problem] = {}
        if node is not None and not guests and _conf_visible(node):  # enabled: true, no guest
            conf_problems.update({p.message: p for p in griddconf.lint(
                node.conf, None, set(), None, len(node.tokens.files))})
        for gpu, probe in probes:
            lint = self._lint(node, probe) if probe.supported else ()
            conf_problems.update({p.message: p for p in lint})
            report = smi.lookup(gpu.uuid, gpu.bus_id) if smi is not None else None
            evidence = Evidence(probe, report, smi.taken_wall if smi else None, lint, ftype)
            a = self._tracker(gpu).assess(evidence, self._clock.time(), self._th)
            m.gpu(b, gpu.index, gpu.uuid, probe, a)
            m.instances(b, gpu.index, gpu.uuid, probe)
            readings.extend(_instance_readings(gpu, probe))
            if a.state is not LicenceState.NOT_APPLICABLE:
                assessed.append(a)
                readings.append(_reading(gpu, a))
        readings.append(self._node_part(b, node, assessed, tuple(conf_problems.values())))
        m.remediation(b, self.remediator)
        m.smi_runs(b, self._smi.runs)
        return Collected(readings=tuple(readings), families=b.build())

    def _tracker(self, gpu: _Gpu) -> GpuTracker:
        return self._trackers.setdefault(gpu.uuid, GpuTracker())

    def _ensure_init(self) -> None:
        now = self._clock.monotonic()
        if self._link.initialized or now < self._next_init:
            return
        try:
            self._link.init()
            self._gpus = [self._open(device) for device in self._link.devices()]
        except GpuwatchdError as exc:
            self._link.shutdown()
            self._gpus = []
            log.info("licence: NVML unavailable (%s); retrying in %.0f s", exc, self._backoff)
            self._next_init = now + self._backoff
            self._backoff = min(self._backoff * 2, MAX_REINIT_SECONDS)
            return
        self._backoff = self._cfg.interval_seconds
        self._probe.reset()

    def _open(self, device: NvmlDevice) -> _Gpu:
        """One GPU of the session's enumeration (shared with the GPU collector)."""
        if device.failure is not None:  # one GPU that cannot be opened fails this init
            raise device.failure
        pci = self._link.optional("nvmlDeviceGetPciInfo", device.handle)
        bus = getattr(pci, "busId", b"")
        bus_id = bus.decode(errors="replace") if isinstance(bus, bytes) else str(bus)
        return _Gpu(device.index, device.uuid, device.handle, bus_id)

    def _probe_all(self) -> list[tuple[_Gpu, GpuProbe]]:
        out = []
        for gpu in self._gpus:
            try:
                out.append((gpu, self._probe.probe(gpu.handle, gpu.uuid)))
            except Lost as exc:
                out.append((gpu, GpuProbe(None, supported=None, error=str(exc))))
                self._link.shutdown()  # re-init (and re-enumerate) on the next probe
        return out

    def _read_smi(self, guests: list[tuple[_Gpu, GpuProbe]],
                  ftype: int | None) -> SmiReport | None:
        """nvidia-smi -q -x, only while some GPU is unlicensed (sooner when it just became so)."""
        unlicensed = [g for g, p in guests if (f := p.chosen(ftype)) is not None
                      and not f.licensed and not is_vapps(p, f, ftype)]
        if not unlicensed:
            return None
        fresh = any(self._tracker(g).unlicensed_since is None for g in unlicensed)
        return self._smi.read(force=fresh)

    def _lint(self, node: NodeReport | None, probe: GpuProbe) -> tuple[griddconf.Problem, ...]:
        if node is None or not _conf_visible(node):
            return ()
        chosen = probe.chosen(node.conf.feature_type)
        licensed = chosen.code if chosen is not None and chosen.licensed else None
        offered = {f.code for f in probe.features}
        tokens = sum(1 for f in node.tokens.files if f.size > 0)
        return tuple(griddconf.lint(node.conf, probe.mode, offered, licensed, tokens,
                                    vgpu_type=probe.vgpu_type))

    def _node_part(self, b: FamilyBuilder, node: NodeReport | None, assessed: list[Assessment],
                   conf_problems: tuple[griddconf.Problem, ...]) -> LicenceNodeReading:
        applicable = bool(assessed)
        if node is None:
            return LicenceNodeReading(applicable=False,
                                      remediation_enabled=self.remediator.enabled)
        now = self._clock.time()
        all_licensed = all(a.state in HELD for a in assessed)  # lint is then informational
        findings = (node_findings(node, conf_problems, now, self._th, all_licensed)
                    if applicable else ())
        m.node(b, node, findings, {p.kind for p in conf_problems})
        self._remediate(node, assessed, now)
        severity = max((f.severity for f in findings), default=Severity.OK)
        return LicenceNodeReading(
            applicable=applicable, gridd_state=node.unit.label,
            token_summary=node.tokens.summary(), problems=tuple(f.problem.value for f in findings),
            severity=severity.label, messages=tuple(f.message for f in findings),
            time_synchronized=node.sync.synchronized,
            last_event=node.last_event.kind if node.last_event else "",
            remediation_enabled=self.remediator.enabled,
            remediation_restarts=sum(self.remediator.restarts.values()))

    def _remediate(self, node: NodeReport, assessed: list[Assessment], now: float) -> None:
        grace = [now - a.unlicensed_since for a in assessed
                 if a.state in RESTARTABLE and a.unlicensed_since is not None]
        changed = [t for t in (node.conf.fingerprint[0] if node.conf.fingerprint else None,
                               node.tokens.newest_mtime) if t is not None]
        self.remediator.consider(Situation(
            applicable=bool(assessed),
            any_licensed=any(_holds(a) for a in assessed),
            any_unknown=any(a.state is LicenceState.UNKNOWN for a in assessed),
            unit=node.unit, gridd_started_wall=node.started_wall,
            changed_wall=max(changed, default=None),
            configured=node.tokens.usable or node.legacy_server,
            longest_grace_seconds=max(grace, default=0.0)))

    def close(self) -> None:
        """Stop the journal follower and shut NVML down."""
        self._node.close()
        self._link.shutdown()


def _holds(a: Assessment) -> bool:
    """The GPU holds a licence (the driver says so, or a held state such as vApps)."""
    return bool(a.driver_licensed) or a.state in HELD


def _reading(gpu: _Gpu, a: Assessment) -> LicenceReading:
    return LicenceReading(
        index=gpu.index, uuid=gpu.uuid, mode=a.mode.label if a.mode is not None else "",
        state=a.state.value, severity=a.severity.label, product=a.product,
        feature=a.feature.label if a.feature is not None else "",
        expiry_status=a.expiry_status.label if a.expiry_status is not None else "",
        expiry_timestamp_seconds=a.expiry_timestamp_seconds,
        unlicensed_since_timestamp_seconds=a.unlicensed_since,
        last_renewal_timestamp_seconds=a.last_renewal, reason=a.reason)


def _conf_visible(node: NodeReport) -> bool:
    """False where gridd.conf cannot be checked: no gridd unit to see from here (a container)
    and no gridd.conf at the configured path or under the GPU operator's driver root."""
    return node.conf.exists or node.unit.visible


def _instance_readings(gpu: _Gpu, probe: GpuProbe) -> list[VgpuInstanceLicenceReading]:
    return [VgpuInstanceLicenceReading(gpu.index, gpu.uuid, i.vgpu_uuid, i.vm_id, i.vgpu_type,
                                       i.state.label, i.expiry_timestamp_seconds)
            for i in probe.instances]


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """The registry factory: one licence collector unless ``licence.enabled`` is false."""
    cfg = config.licence
    if cfg.enabled is False:
        return []
    sources = _sources(hw)
    collector = LicenceCollector(nvml.lease(hw, config.gpus), hw.clock, cfg, sources)
    return [Scheduled(collector, cfg.interval_seconds, cfg.deadline_seconds)]


def _sources(hw: Hardware) -> LicenceSources:
    """The licence roots the simulator or a test injected (``Hardware.licence``), else the
    real node's."""
    if hw.licence is None:
        return LicenceSources()
    if not isinstance(hw.licence, LicenceSources):
        raise TypeError(f"Hardware.licence is a {type(hw.licence).__name__}, "
                        "not a LicenceSources")
    return hw.licence
