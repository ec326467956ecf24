"""The licence watch on the shapes real guests produce (issue 11): gridd.conf as NVIDIA ships it,
gridd's journal lines as journalctl prints them, and FeatureType on C-series / NVAIE guests.

Each fixture in tests/data/gridd/ opens with a NOTE(fixture) saying which driver branch and
product its shape comes from and where the evidence is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gpuwatchd.ctl.common import EXIT_DEGRADED, EXIT_HEALTHY
from gpuwatchd.ctl.status import HEALTH_EXIT
from gpuwatchd.licence import featuretype, griddconf
from gpuwatchd.licence.gridd import EventCounter, classify, message
from gpuwatchd.licence.kinds import FeatureCode, Severity, VirtualizationMode
from gpuwatchd.licence.probe import LicenceProbe
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import Collected, LicenceNodeReading
from gpuwatchd.status.document import build_status
from tests.fakes.licence_nvml import FakeLicenceGpu, FakeLicenceNvml
from tests.unit.test_licence_collector import Node, reading, samples
from tests.unit.test_status import NOW, make_info, make_result, make_snapshot

DATA = Path(__file__).resolve().parent.parent / "data" / "gridd"
VGPU, PASS, BARE = (VirtualizationMode.VGPU, VirtualizationMode.PASSTHROUGH,
                    VirtualizationMode.NONE)


def fixture_lines(name: str) -> list[str]:
    """A .journal fixture's lines, without its "# " notes."""
    text = (DATA / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("# ")]


def kinds(problems: list[griddconf.Problem]) -> list[str]:
    return [p.kind for p in problems]


# --- FeatureType per mode and vGPU series -------------------------------------------------

@pytest.mark.parametrize(("name", "series"), [
    ("GRID A100-4C", "C"), ("NVIDIA A100-4C", "C"), ("NVIDIA A100-3-20C", "C"),
    ("NVIDIA H100L-1-12C", "C"), ("GRID P40-24Q", "Q"), ("NVIDIA RTXA6000-24Q", "Q"),
    ("NVIDIA A16-2B", "B"), ("NVIDIA A40-2A", "A"), ("Tesla P40", ""), ("", ""),
    ("NVIDIA H100 80GB HBM3", ""),
])
def test_vgpu_series_from_the_type_name(name: str, series: str) -> None:
    assert featuretype.vgpu_series(name) == series


# FeatureType, mode, vGPU type (the guest GPU's name), expected lint kinds
FEATURE_TYPE_CASES = [
    # NOTE(issue 11): NVAIE / vCS guests on C-series vGPUs set 4 and are licensed with it
    # (R580 "NVIDIA H100L-1-12C"; R510 KVM guest; see gpuwatchd/licence/featuretype.py).
    (4, VGPU, "GRID A100-4C", []),
    (4, VGPU, "NVIDIA H100L-1-12C", []),
    (4, VGPU, "NVIDIA A100-3-20C", []),
    (1, VGPU, "GRID A100-4C", []),
    (2, VGPU, "GRID A100-4C", []),  # vWS runs on C-series vGPUs too
    (2, VGPU, "NVIDIA RTXA6000-24Q", []),
    (2, VGPU, "NVIDIA A16-2B", []),
    (4, VGPU, "", []),  # type unknown: 1, 2 and 4 are all documented for a vGPU
    (2, VGPU, "", []),
    (4, VGPU, "NVIDIA A40-8Q", ["feature_type_mismatch"]),  # vCS does not run on Q-series
    (4, VGPU, "NVIDIA A16-2B", ["feature_type_mismatch"]),
    (2, VGPU, "NVIDIA A40-2A", ["feature_type_mismatch"]),  # A-series: vApps only
    (0, VGPU, "GRID A100-4C", ["feature_type_mismatch"]),  # a vGPU needs a licence
    (0, PASS, "", []),  # vApps
    (2, PASS, "", []),
    (4, PASS, "", []),
    (1, PASS, "", ["feature_type_mismatch"]),
    (2, BARE, "", []),
    (0, BARE, "", []),
    (4, BARE, "", ["feature_type_mismatch"]),  # vCS is not offered on bare metal
    (4, None, "", []),  # mode unknown: no judgement
]


@pytest.mark.parametrize("case", FEATURE_TYPE_CASES)
def test_feature_type_by_mode_and_series(
        case: tuple[int, VirtualizationMode | None, str, list[str]]) -> None:
    value, mode, vgpu_type, want = case
    conf = griddconf.parse(f"FeatureType={value}\n", "/etc/nvidia/gridd.conf")
    problems = griddconf.lint(conf, mode, set(), None, 1, vgpu_type=vgpu_type)
    assert kinds(problems) == want
    assert all(p.severity is Severity.WARNING for p in problems)  # cannot work: a warning


def test_mismatch_says_what_to_use() -> None:
    conf = griddconf.parse("FeatureType=4\n", "/etc/nvidia/gridd.conf")
    (problem,) = griddconf.lint(conf, VGPU, set(), None, 1, vgpu_type="NVIDIA A40-8Q")
    assert "Q-series" in problem.message and "use 1" in problem.message
    (passthrough,) = griddconf.lint(griddconf.parse("FeatureType=1\n"), PASS, set(), None, 1)
    assert "use 0 (unlicensed) or 2" in passthrough.message


def test_passthrough_holding_another_licence_is_informational() -> None:
    conf = griddconf.parse("FeatureType=2\n", "/etc/nvidia/gridd.conf")
    (problem,) = griddconf.lint(conf, PASS, {FeatureCode.NVIDIA_RTX, FeatureCode.COMPUTE},
                                FeatureCode.COMPUTE, 1)
    assert (problem.kind, problem.severity) == ("feature_type_mismatch", Severity.OK)


# --- gridd.conf as shipped ----------------------------------------------------------------

def test_shipped_template_with_feature_type_4_is_clean() -> None:
    conf = griddconf.read(str(DATA / "r535-template-nvaie.conf"))
    assert conf.feature_type == 4 and conf.get("ServerPort") == "7070"
    assert conf.get("ServerAddress") == "" and conf.unknown == () and conf.comments == {}
    assert griddconf.lint(conf, VGPU, {FeatureCode.VGPU}, FeatureCode.VGPU, 1,
                          vgpu_type="GRID A100-4C") == []


def test_windows_copy_crlf_bom_and_inline_comments() -> None:
    path = DATA / "windows-crlf-inline-comment.conf"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # the fixture keeps its shape
    conf = griddconf.parse(raw.decode("utf-8"), str(path))
    assert conf.feature_type == 4
    assert conf.get("EnableUI") == "TRUE" and conf.get("ServerPort") == "7070"
    assert conf.get("ClientConfigTokenPath") == "/etc/nvidia/ClientConfigToken/"
    assert conf.unknown == ()
    problems = griddconf.lint(conf, VGPU, {FeatureCode.VGPU}, None, 1,
                              vgpu_type="NVIDIA A100-4C")
    assert kinds(problems) == ["inline_comment", "inline_comment"]  # no bad_value
    assert problems[0].message.startswith(f"{path}:11: FeatureType='4' is followed by a '#'")
    read = griddconf.read(str(path))  # the same through the file reader
    assert (read.feature_type, read.comments) == (4, {"FeatureType": 11, "EnableUI": 14})


@pytest.mark.parametrize(("text", "value"), [
    ("ServerAddress=licence.example.org # DLS\n", "licence.example.org"),
    ('ServerAddress="host#1"\n', "host#1"),  # a "#" inside a value is not a comment
    ("FeatureType=4\t#NVAIE\n", "4"),
])
def test_inline_comment_is_not_part_of_the_value(text: str, value: str) -> None:
    conf = griddconf.parse(text)
    key = text.split("=", 1)[0]
    assert conf.get(key) == value


# --- gridd's journal lines ----------------------------------------------------------------

JOURNAL_CASES = [
    ("nls-token-corrupt.journal",
     ["other", "other", "started", "config_error", "config_error", "config_error", "other"]),
    ("nls-no-token.journal", ["config_error", "acquiring", "acquired"]),
    ("no-gridd-conf.journal", ["config_error", "config_error"]),
    ("clock-windback.journal", ["acquiring", "clock_windback"]),
    ("nvaie-c-series-acquired.journal",
     ["started", "other", "other", "started", "acquiring", "acquired"]),
]


@pytest.mark.parametrize(("name", "want"), JOURNAL_CASES)
def test_journal_fixture_lines_are_classified(name: str, want: list[str]) -> None:
    assert [classify(line) for line in fixture_lines(name)] == want


def test_windback_is_a_clock_problem_not_an_acquire_failure() -> None:
    line = ("Failed to acquire license from api.cls.licensing.nvidia.com (Info: NVIDIA RTX "
            "Virtual Workstation - Error: Clock windback has been detected)")
    assert classify(line) == "clock_windback"
    assert classify("Failed to acquire license from 192.0.2.7") == "acquire_failed"


def test_journal_prefix_is_stripped_from_counted_events() -> None:
    class Clock:
        def time(self) -> float:
            return 1.0

    counter = EventCounter(Clock())  # type: ignore[arg-type]
    events = counter.feed(fixture_lines("nls-token-corrupt.journal"))
    assert events[3].text == "Failed to decode signature from token received"
    assert message("  NLS initialized ") == "NLS initialized"
    assert counter.counts["config_error"] == 3 and counter.counts["other"] == 3


# --- the node: a licensed C-series guest with FeatureType 4 is healthy ----------------------

def nvaie_guest(tmp_path: Path, conf: str) -> Node:
    node = Node(tmp_path)
    node.gpus[0].name = "GRID A100-4C"  # NOTE(issue 11): the C-series profile of the report
    shutil.copyfile(DATA / conf, node.conf)
    return node


def exit_code(out: Collected) -> int:
    """What `gpuwatchctl status` exits with for this collector output (ctl/main.py mapping)."""
    snap = make_snapshot(extra=(make_result("licence", readings=out.readings),))
    doc = build_status(snap, make_info(), NOW)
    return HEALTH_EXIT[doc["health"]["status"]]


@pytest.mark.parametrize("conf", ["r535-template-nvaie.conf", "windows-crlf-inline-comment.conf"])
def test_licensed_nvaie_guest_with_feature_type_4_exits_0(tmp_path: Path, conf: str) -> None:
    node = nvaie_guest(tmp_path, conf)
    node.lines.push(*fixture_lines("nvaie-c-series-acquired.journal"))
    out = node.collect()
    problems = samples(out, "gpuwatchd_licence_config_problem")
    assert problems[(("problem", "feature_type_mismatch"),)] == 0
    (nr,) = reading(out, LicenceNodeReading)
    assert nr.severity == "ok"
    assert exit_code(out) == EXIT_HEALTHY


def test_lint_on_a_fully_licensed_node_is_informational(tmp_path: Path) -> None:
    node = nvaie_guest(tmp_path, "windows-crlf-inline-comment.conf")
    node.gpus[0].name = "NVIDIA A40-8Q"  # FeatureType=4 cannot work here, yet it is licensed
    out = node.collect()
    problems = samples(out, "gpuwatchd_licence_config_problem")
    assert problems[(("problem", "inline_comment"),)] == 1  # visible in the metrics
    assert problems[(("problem", "feature_type_mismatch"),)] == 1
    assert samples(out, "gpuwatchd_licence_node_problem")[(("problem", "config_problem"),)] == 1
    (nr,) = reading(out, LicenceNodeReading)
    assert nr.severity == "ok" and "config_problem" in nr.problems
    text = " ".join(nr.messages)
    assert "Q-series" in text and "followed by a '#' comment" in text
    snap = make_snapshot(extra=(make_result("licence", readings=out.readings),))
    doc = build_status(snap, make_info(), NOW)
    assert doc["licence"]["node"]["messages"]  # visible in the status document
    assert HEALTH_EXIT[doc["health"]["status"]] == EXIT_HEALTHY


def test_a_setting_that_cannot_work_still_warns_when_unlicensed(tmp_path: Path) -> None:
    node = nvaie_guest(tmp_path, "r535-template-nvaie.conf")
    node.gpus[0].name = "NVIDIA A40-8Q"
    node.feature.state = 0
    out = node.collect()
    (nr,) = reading(out, LicenceNodeReading)
    assert nr.severity == "warning" and "config_problem" in nr.problems
    assert exit_code(out) == EXIT_DEGRADED


def test_token_lint_on_a_fully_licensed_node_is_informational(tmp_path: Path) -> None:
    node = nvaie_guest(tmp_path, "r535-template-nvaie.conf")
    node.token.unlink()  # the licence outlives its token until gridd restarts
    out = node.collect()
    (nr,) = reading(out, LicenceNodeReading)
    assert "token_problem" in nr.problems and nr.severity == "ok"
    assert exit_code(out) == EXIT_HEALTHY
    node.feature.state = 0  # the licence is gone: the same finding is a warning again
    (nr,) = reading(node.collect(60), LicenceNodeReading)
    assert "token_problem" in nr.problems and nr.severity == "warning"


def test_vgpu_type_is_read_once_and_only_in_a_guest() -> None:
    guest = FakeLicenceGpu("GPU-a", name="GRID A100-4C")
    passthrough = FakeLicenceGpu("GPU-b", mode=1, name="NVIDIA A100-SXM4-40GB")
    link = NvmlSession(FakeLicenceNvml([guest, passthrough])).lease()
    link.init()
    probe = LicenceProbe(link)
    for _ in range(2):
        assert probe.probe(0, "GPU-a").vgpu_type == "GRID A100-4C"
        assert probe.probe(1, "GPU-b").vgpu_type == ""
    assert link.calls["nvmlDeviceGetName"] == 1
    probe.reset()  # after an NVML re-init the type is read again
    probe.probe(0, "GPU-a")
    assert link.calls["nvmlDeviceGetName"] == 2
