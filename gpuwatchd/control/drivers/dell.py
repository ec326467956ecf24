"""Dell PowerEdge 11G-13G (iDRAC6/7/8, iDRAC9 up to 3.30.30.30): raw IPMI fan control.

Commands (reference/fan-control.md (b)):

- manual on / back to automatic: ``ipmitool raw 0x30 0x30 0x01 0x00`` / ``... 0x01 0x01``;
- every fan to NN %: ``ipmitool raw 0x30 0x30 0x02 0xff 0xNN`` (0x00-0x64: 0x3c is 60 %,
  gpuwatchd never writes the decimal digits as hex). R510/iDRAC6 answers ``0xcc`` to the
  selector 0xff (tigerblue77#378): the fans are then addressed one by one, 0x00-0x0N;
- third-party PCIe card default cooling response (13G; Dell KB 000135682): query
  ``0x30 0xce 0x01 0x16 0x05 0x00 0x00 0x00`` (answer ``16 05 00 00 00 05 00 01 00 00`` =
  disabled, ``... 05 00 00 00 00`` = enabled); disable ``0x30 0xce 0x00 0x16 0x05 0x00 0x00
  0x00 0x05 0x00 0x01 0x00 0x00``, enable the same with ``0x00`` for ``0x01``. 12G and
  R640/R740 answer ``0xc1`` (tigerblue77#52, #263): the setting is then left alone.

iDRAC9 from 3.34.34.34 answers ``0xd4`` to manual mode (and so does a non-administrator
account): :meth:`DellDriver.take_control` raises Refused and the controller stays in monitor
mode with :data:`REFUSED_HINT`. Dell has no raw command to read the fan mode back, so a
revert to automatic is found from the fan speeds (gpuwatchd.control.revert) and covered by
re-asserting manual mode every ``reassert_seconds``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from gpuwatchd.config import Config, DellConfig
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control import statefile
from gpuwatchd.control.drivers import RawIpmi, percent
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import GpuwatchdError, Refused, Unsupported

log = logging.getLogger(__name__)

NETFN_OEM = 0x30
CMD_FAN = 0x30
CMD_PCIE = 0xce
MANUAL, AUTO = b"\x01\x00", b"\x01\x01"
ALL_FANS = 0xff
PCIE_QUERY = b"\x01\x16\x05\x00\x00\x00"
PCIE_SET = b"\x00\x16\x05\x00\x00\x00\x05\x00"  # + 0x01 (disable) / 0x00 (enable) + 00 00
CC_BAD_ARGUMENT = 0xcc
REFUSED_HINT = (
    "the iDRAC refused manual fan control ({code}): iDRAC9 firmware 3.34.34.34 and later "
    "removed it (and cannot be downgraded), and an account without the administrator "
    "privilege gets the same answer. Check bmcs[].privilege and the account's role; "
    "otherwise gpuwatchd only monitors here (driver: redfish-dell can set a minimum fan speed)")


class DellDriver:
    """Manual fan control on one iDRAC."""

    name = "dell"

    def __init__(self, ipmi: RawIpmi, cfg: DellConfig, target: str,
                 marker: str | None = None, recovering: bool = False) -> None:
        self._ipmi = ipmi
        self._cfg = cfg
        self.target = target
        self.per_fan = False  # the iDRAC refused selector 0xff
        self.pcie_found: bool | None = None  # third-party response enabled when we came
        # A file that exists while gpuwatchd holds the third-party response disabled, so
        # `gpuwatchctl failsafe` (a fresh process, after a crash) knows to turn it back on.
        # It is written and synced before the response is disabled, never after.
        self._marker = marker
        # gpuwatchctl failsafe: a marker may have been lost (deleted, another state
        # directory), so where the config disables the response it is restored anyway, and
        # the iDRAC's answer to the query afterwards is the confirmation.
        self._recovering = recovering
        self.pcie_disabled_by_us = bool(marker and os.path.exists(marker)) or (
            recovering and cfg.third_party_pcie_response == "disable")

    def channels(self) -> tuple[Channel, ...]:
        return tuple(Channel(ChannelKind.FAN, index=n) for n in range(1, self._cfg.fan_count + 1))

    def take_control(self) -> None:
        """``ipmitool raw 0x30 0x30 0x01 0x00``; then the third-party response, if asked."""
        try:
            self._ipmi.raw(NETFN_OEM, CMD_FAN, MANUAL)
        except (Refused, Unsupported) as exc:
            code = f"completion code 0x{exc.code:02x}" if isinstance(exc, Refused) and \
                exc.code is not None else "command absent"
            raise type(exc)(REFUSED_HINT.format(code=code)) from None
        if self._cfg.third_party_pcie_response == "disable" and not self.pcie_disabled_by_us:
            self._disable_pcie_response()
        elif self.pcie_disabled_by_us and self.pcie_found is None:
            self.pcie_found = True  # disabled by an earlier gpuwatchd that did not restore it

    def _disable_pcie_response(self) -> None:
        enabled = self.pcie_response_enabled()
        if self.pcie_found is None:
            self.pcie_found = enabled
        if not enabled:
            return
        if not self._mark(True):  # no durable marker, no disabling: a crash would hide it
            return
        try:
            self._set_pcie_response(False)
        except GpuwatchdError:
            self._mark(False)  # still enabled: nothing to restore
            raise
        log.info("%s: third-party PCIe card cooling response disabled while gpuwatchd "
                 "regulates", self.target)

    def pcie_response_enabled(self) -> bool | None:
        """Query the third-party PCIe response; None where the iDRAC does not have it."""
        try:
            data = self._ipmi.raw(NETFN_OEM, CMD_PCIE, PCIE_QUERY)
        except Unsupported:
            log.info("%s: no third-party PCIe cooling response setting (12G and 14G+ answer "
                     "0xc1; 14G+ have it per slot over Redfish)", self.target)
            return None
        return not (len(data) > 7 and data[7] == 0x01)

    def _set_pcie_response(self, enabled: bool) -> None:
        flag = b"\x00" if enabled else b"\x01"
        self._ipmi.raw(NETFN_OEM, CMD_PCIE, PCIE_SET + flag + b"\x00\x00")

    def write(self, duties: Mapping[Channel, float]) -> None:
        """``ipmitool raw 0x30 0x30 0x02 0xff NN`` when every fan gets the same duty; fan N
        (channel fanN) is IPMI fan number N - 1."""
        wanted = {ch.index - 1: percent(d) for ch, d in duties.items()}
        values = set(wanted.values())
        if len(values) == 1 and len(wanted) == self._cfg.fan_count and not self.per_fan:
            try:
                self._ipmi.raw(NETFN_OEM, CMD_FAN, bytes([0x02, ALL_FANS, values.pop()]))
                return
            except Refused as exc:
                if exc.code != CC_BAD_ARGUMENT:
                    raise
                self.per_fan = True
                log.warning("%s: the iDRAC refuses 'all fans' (0xcc, as an R510 does): "
                            "setting the %d fans one by one", self.target, self._cfg.fan_count)
        for fan, pct in sorted(wanted.items()):
            self._ipmi.raw(NETFN_OEM, CMD_FAN, bytes([0x02, fan, pct]))

    def in_control(self) -> bool | None:
        return None  # no raw command reads the mode back: see gpuwatchd.control.revert

    def failsafe(self) -> None:
        """The third-party response back on if we turned it off (whatever
        ``third_party_pcie_on_exit`` says: a failsafe is not an exit), then automatic control:
        the iDRAC must see the GPUs again to cool them (an 80 % floor for an unknown card)."""
        self._hand_back(self.pcie_disabled_by_us)

    def release(self) -> None:
        """``ipmitool raw 0x30 0x30 0x01 0x01``, and the third-party response as configured
        (``leave``: the user's choice, kept as it is)."""
        on_exit = self._cfg.third_party_pcie_on_exit
        self._hand_back((on_exit == "enable" and self.pcie_found is not None) or (
            on_exit == "restore" and self.pcie_disabled_by_us))

    def _hand_back(self, restore_pcie: bool) -> None:
        """The response first, then automatic: the iDRAC is never in automatic mode with the
        GPU's cooling response still off because of gpuwatchd. Where the response cannot be
        turned back on, every fan goes to 100 % in manual mode instead (the iDRAC answers,
        but will not cool for the card); only if that fails too, automatic after all (its
        own curve still follows the inlet and exhaust). The first failure is raised, so the
        controller retries every tick."""
        if restore_pcie:
            try:
                self._pcie_on()
            except GpuwatchdError as exc:
                try:
                    self._ipmi.raw(NETFN_OEM, CMD_FAN, bytes([0x02, ALL_FANS, 100]))
                    instead = "every fan at 100 % in manual mode instead of automatic"
                except GpuwatchdError:
                    self._all(self._auto)
                    instead = "nor could the fans be set to 100 %: automatic control asked"
                log.error("%s: the third-party PCIe cooling response could not be turned back "
                          "on (%s); %s", self.target, exc, instead)
                raise exc from None
        self._auto()

    def _auto(self) -> None:
        self._ipmi.raw(NETFN_OEM, CMD_FAN, AUTO)

    def _pcie_on(self) -> None:
        try:
            self._set_pcie_response(True)
        except Unsupported:  # 12G/14G+ (0xc1): there is no such setting to restore
            self._mark(False)
            return
        if self._recovering and self.pcie_response_enabled() is False:
            raise Refused(f"{self.target}: the third-party PCIe cooling response still reads "
                          "disabled after enabling it")
        self._mark(False)

    def _mark(self, disabled: bool) -> bool:
        """Record (durably: gpuwatchd.control.statefile.write_durably) or clear the marker;
        False when it could not be written (then the response is not disabled)."""
        if disabled and self._marker is None:
            log.warning("%s: no state directory for the third-party PCIe response marker: "
                        "the response is left enabled", self.target)
            return False
        try:
            if self._marker is not None and disabled:
                statefile.write_durably(self._marker, "third-party PCIe cooling response "
                                                     "disabled by gpuwatchd\n")
            elif self._marker is not None:
                statefile.remove_durably(self._marker)
        except OSError as exc:
            if disabled:
                log.warning("%s: cannot record the third-party PCIe response state in %s (%s): "
                            "the response is left enabled (after a crash nothing would know "
                            "to turn it back on)", self.target, self._marker, exc.strerror)
                return False
            log.warning("%s: cannot remove the third-party PCIe response marker %s (%s)",
                        self.target, self._marker, exc.strerror)
        self.pcie_disabled_by_us = disabled
        return True

    def _all(self, *steps: Callable[[], None] | None) -> None:
        """Run every step even if one fails; raise the first failure at the end."""
        first: GpuwatchdError | None = None
        for step in steps:
            if step is None:
                continue
            try:
                step()
            except GpuwatchdError as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        """The link belongs to the controller, which closes it."""


def pcie_marker(config: Config, target: str) -> str | None:
    """The file recording that gpuwatchd disabled a Dell's third-party PCIe response (None
    when the config never disables it); in ``fan_control.state_directory``."""
    fc = config.fan_control
    if fc.dell.third_party_pcie_response != "disable":
        return None
    return os.path.join(fc.state_directory, f"dell-pcie-disabled-{statefile.safe_name(target)}")


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``dell``: a DellDriver on its own IPMI session."""
    target = ctx.bmc().name
    link = ctx.ipmi()
    driver = DellDriver(link, ctx.config.fan_control.dell, target,
                        marker=pcie_marker(ctx.config, target), recovering=ctx.recovering)
    return Built(driver, [link.close])
