"""The systemd unit's restart policy and fail-safe hooks, read from the one source unit."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "gpuwatchd.service"


def _service_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_an_invalid_config_stops_the_restart_loop() -> None:
    """Exit 6 (invalid config) is not restarted; any other failure is."""
    svc = _service_settings()
    assert svc["Restart"] == ["on-failure"]
    assert "6" in " ".join(svc["RestartPreventExitStatus"]).split()


def test_the_fans_are_handed_back_after_every_stop() -> None:
    svc = _service_settings()
    assert any(v.endswith("gpuwatchctl failsafe") and "+" in v.split("/")[0]
               for v in svc["ExecStopPost"])
