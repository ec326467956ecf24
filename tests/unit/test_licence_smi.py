"""``nvidia-smi -q -x``: every documented variant, and the rate-limited, time-limited reader."""

from __future__ import annotations

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.errors import DeadlineExceeded
from gpuwatchd.licence.commands import CommandResult
from gpuwatchd.licence.kinds import ExpiryStatus
from gpuwatchd.licence.smi_xml import (
    FORCED_MIN_GAP_SECONDS,
    SmiReader,
    normalize_bus_id,
    parse,
    parse_status,
)
from tests.fakes.licence_runner import FakeRunner, smi_sample

U = "GPU-7f1e9c44-1b2d-4a55-8e0c-3d6b9a2f1e77"
VALID, PERMANENT, NA, INVALID = (ExpiryStatus.VALID, ExpiryStatus.PERMANENT,
                                 ExpiryStatus.NOT_APPLICABLE, ExpiryStatus.INVALID)

# sample, uuid, product, licensed, restricted, expiry status, expiry epoch
SAMPLES = [
    ("r580-nls-licensed.xml", "GPU-0b5d2a6e-6e1f-4c0e-9a51-5e8a7f3c2d10",
     "NVIDIA RTX Virtual Workstation", True, None, VALID, 1783440104.0),
    ("nls-vcs-licensed.xml", U, "NVIDIA Virtual Compute Server", True, None, VALID,
     1675164742.0),
    ("r535-unlicensed-unrestricted.xml", U, "NVIDIA Virtual Compute Server", False, False,
     None, None),
    ("r535-unlicensed-restricted.xml", U, "NVIDIA Virtual Compute Server", False, True,
     None, None),
    ("legacy-unlicensed.xml", U, "NVIDIA Virtual Compute Server", False, None, None, None),
    ("r470-licensed-no-expiry.xml", U, "NVIDIA RTX Virtual Workstation", True, None, None,
     None),
    ("cloud-gaming-na.xml", "GPU-5c4b3a29-1807-4f6e-9d8c-7b6a59483726", "NVIDIA Cloud Gaming",
     True, None, NA, None),
    ("gcp-permanent.xml", "GPU-6d5c4b3a-2918-4a7f-8e9d-0c1b2a394857",
     "NVIDIA RTX Virtual Workstation", True, None, PERMANENT, None),
    ("expiry-err.xml", "GPU-0b5d2a6e-6e1f-4c0e-9a51-5e8a7f3c2d10",
     "NVIDIA RTX Virtual Workstation", True, None, INVALID, None),
]


@pytest.mark.parametrize("case", SAMPLES, ids=[case[0] for case in SAMPLES])
def test_each_documented_variant(case: tuple[str, str, str, bool, bool | None,
                                             ExpiryStatus | None, float | None]) -> None:
    sample, uuid, product, licensed, restricted, status, stamp = case
    report = parse(smi_sample(sample), taken_wall=5.0)
    section = report.lookup(uuid)
    assert section is not None
    assert (section.product, section.licensed, section.restricted) == (product, licensed,
                                                                       restricted)
    assert (section.expiry_status, section.expiry_timestamp_seconds) == (status, stamp)
    assert report.taken_wall == 5.0


def test_grid_era_tag_and_bus_id_match_without_uuid() -> None:
    report = parse(smi_sample("grid-era-vgaming.xml"))
    assert report.by_uuid == {}
    section = report.lookup("GPU-whatever", "00000000:00:1E.0")
    assert section is not None
    assert (section.product, section.licensed) == ("GRID vGaming", True)


def test_multi_gpu_document() -> None:
    report = parse(smi_sample("multi-gpu.xml"))
    one = report.lookup("GPU-aaaaaaaa-0000-4000-8000-000000000001")
    two = report.lookup("GPU-aaaaaaaa-0000-4000-8000-000000000002")
    assert one is not None and one.licensed and one.expiry_timestamp_seconds == 1750265340.0
    assert two is not None and two.restricted is True
    assert report.lookup("GPU-aaaaaaaa-0000-4000-8000-000000000003") is None


def test_bare_metal_has_no_section() -> None:
    report = parse(smi_sample("bare-metal.xml"))
    assert report.lookup("GPU-11111111-2222-4333-8444-555555555555", "00000000:3b:00.0") is None


@pytest.mark.parametrize(("text", "want"), [
    ("Licensed", (True, None, None, None)),
    ("licensed (expiry: 2024-2-1 2:36:3 GMT)", (True, None, VALID, 1706754963.0)),
    ("Unlicensed (Restricted)", (False, True, None, None)),
    ("  Unlicensed ( Unrestricted )  ", (False, False, None, None)),
    ("Licensed (Expiry: N/A)", (True, None, NA, None)),
    ("Licensed (Expiry: 2024-2-30 1:1:1 GMT)", (True, None, INVALID, None)),
    ("N/A", (None, None, None, None)),
    ("", (None, None, None, None)),
])
def test_status_texts(text: str, want: tuple[object, ...]) -> None:
    assert parse_status(text) == want


def test_bus_id_forms() -> None:
    assert normalize_bus_id("0000:00:1E.0") == "00000000:00:1e.0"
    assert normalize_bus_id("00000000:3B:00.0") == "00000000:3b:00.0"


@pytest.mark.parametrize("text", ["not xml", "<other/>", "<nvidia_smi_log><gpu>"])
def test_garbage_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="nvidia-smi -q -x"):
        parse(text)


def test_reader_rate_limit_and_forced_reads() -> None:
    clock = ManualClock()
    runner = FakeRunner()
    runner.set_smi("r535-unlicensed-unrestricted.xml")
    reader = SmiReader(runner, clock, timeout_seconds=5.0, interval_seconds=300.0)
    assert reader.read() is not None
    assert runner.count("nvidia-smi") == 1
    assert runner.timeouts[-1] == 5.0
    clock.advance(FORCED_MIN_GAP_SECONDS - 1)
    reader.read(force=True)
    reader.read()
    assert runner.count("nvidia-smi") == 1  # within both limits: the cached report
    clock.advance(2)
    reader.read(force=True)
    assert runner.count("nvidia-smi") == 2  # a state change may ask after 30 s
    clock.advance(299)
    reader.read()
    assert runner.count("nvidia-smi") == 2
    clock.advance(1)
    reader.read()
    assert runner.count("nvidia-smi") == 3
    assert reader.runs["ok"] == 3


@pytest.mark.parametrize(("answer", "kind"), [
    (DeadlineExceeded("nvidia-smi: no answer within 5 s"), "timeout"),
    (CommandResult((), 9, "", "NVIDIA-SMI has failed because it couldn't communicate"),
     "failed"),
    (CommandResult((), 0, "<truncated"), "unparsable"),
])
def test_reader_failures_keep_the_last_report(answer: object, kind: str) -> None:
    clock = ManualClock()
    runner = FakeRunner()
    runner.set_smi("r535-unlicensed-restricted.xml")
    reader = SmiReader(runner, clock)
    first = reader.read()
    runner.set("nvidia-smi", "-q", answer)  # type: ignore[arg-type]
    clock.advance(400)
    assert reader.read() is first
    assert reader.runs[kind] == 1
    assert reader.error


def test_reader_without_nvidia_smi() -> None:
    reader = SmiReader(FakeRunner(), ManualClock())
    assert reader.read() is None
    assert reader.runs["not_installed"] == 1
