"""The Debian package, built, linted, installed, run and purged the way users do it.

scripts/build-deb.sh builds the .deb (lintian --pedantic must report no error or warning);
``apt-get install`` installs it system-wide; the installed /usr/bin/gpuwatchd then runs as
the package's gpuwatchd user twice: ``--demo``, and on a fake libnvidia-ml.so.1 behind TLS and
basic auth (the shipped web config format). A real Prometheus scrapes both with the shipped
alert rules; driving the fake GPU to within 5 C of its slowdown threshold makes
GpuwatchdGpuNearSlowdown fire. ``apt-get purge`` must then leave nothing behind but the system
user, which Debian keeps.

The tests install packages system-wide, so they need root; they purge a previous install
first and purge again at the end, so a run can be repeated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from tests.fakes.fakenvml import FakeNvmlBuildError, FakeNvmlState, build_fake_nvml
from tests.pki import make_pki
from tests.procs import ROOT, free_port, require, stop, wait_until

PACKAGE = "gpuwatchd"
UNIT = Path("/lib/systemd/system/gpuwatchd.service")
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
SCRAPE_PASSWORD = "scrape-s3cret"  # noqa: S105 - a throwaway test credential


@dataclass(frozen=True)
class Built:
    deb: Path
    changes: Path
    lintian: str


def _run(argv: list[str], timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)


def _installed() -> bool:
    out = _run(["dpkg-query", "-W", "-f=${Status}", PACKAGE]).stdout
    return "installed" in out or "config-files" in out


def _purge() -> None:
    if _installed():
        done = _run(["apt-get", "purge", "-y", "-q", PACKAGE], env=APT_ENV)
        assert done.returncode == 0, f"apt-get purge failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """scripts/build-deb.sh --lint into a temporary dist directory."""
    if os.geteuid() != 0:
        pytest.fail("the package test installs gpuwatchd system-wide: run it as root")
    for binary, package in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"),
                            ("pybuild", "dh-python pybuild-plugin-pyproject"),
                            ("lintian", "lintian"), ("apt-get", "apt"),
                            ("systemd-analyze", "systemd")):
        require(binary, package)
    dist = tmp_path_factory.mktemp("dist")
    done = _run(["bash", str(ROOT / "scripts" / "build-deb.sh"), "--lint"],
                env={**os.environ, "DIST_DIR": str(dist)})
    assert done.returncode == 0, f"build-deb.sh failed:\n{done.stdout}\n{done.stderr}"
    debs = sorted(dist.glob("gpuwatchd_*_all.deb"))
    changes = sorted(dist.glob("gpuwatchd_*.changes"))
    assert len(debs) == 1 and len(changes) == 1, sorted(p.name for p in dist.iterdir())
    return Built(debs[0], changes[0], done.stdout + done.stderr)


@pytest.fixture(scope="module")
def installed(built: Built) -> Iterator[Built]:
    """The package installed with apt-get (a previous install purged first); purged after."""
    _purge()
    done = _run(["apt-get", "install", "-y", "-q", str(built.deb)], env=APT_ENV)
    assert done.returncode == 0, f"apt-get install failed:\n{done.stdout}\n{done.stderr}"
    yield built
    _purge()


def test_lintian_reports_no_errors_or_warnings(built: Built) -> None:
    """lintian --pedantic on the .changes: no E: or W: line (overrides carry their reasons)."""
    bad = [line for line in built.lintian.splitlines() if re.match(r"[EW]: ", line)]
    assert not bad, "\n".join(bad)
    overrides = (ROOT / "packaging" / "debian" / "gpuwatchd.lintian-overrides").read_text()
    for line in overrides.splitlines():
        if line.startswith("gpuwatchd:"):
            before = overrides[: overrides.index(line)].rstrip().splitlines()
            assert before and before[-1].startswith("#"), f"override without a reason: {line}"


def test_installed_layout_user_and_unit(installed: Built) -> None:
    """Files where Debian wants them, the system user, conffiles, the unit verified."""
    user = _run(["getent", "passwd", PACKAGE]).stdout.split(":")
    assert user[0] == PACKAGE and user[6].strip() == "/usr/sbin/nologin"
    assert _run(["getent", "group", PACKAGE]).returncode == 0
    conffiles = _run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
    for path in ("/etc/gpuwatchd/gpuwatchd.yaml", "/etc/gpuwatchd/web-config.yml",
                 "/etc/default/gpuwatchd"):
        assert path in conffiles
    for page in ("man8/gpuwatchd.8.gz", "man8/gpuwatchctl.8.gz", "man5/gpuwatchd.yaml.5.gz"):
        assert Path("/usr/share/man", page).exists(), page
    # the journal events' catalog (docs/events.md): `journalctl -x` explains each MESSAGE_ID
    catalog = Path("/usr/lib/systemd/catalog/gpuwatchd.catalog")
    assert catalog.read_text() == (ROOT / "packaging" / "systemd" / "gpuwatchd.catalog").read_text()
    check = _run(["/usr/bin/gpuwatchd", "--check-config", "/etc/gpuwatchd/gpuwatchd.yaml"])
    assert check.returncode == 0, check.stderr
    # The vendored python-ipmi 0.6.1 wins over anything on the system path (0.4.2 in Debian).
    # Run the wrapper's own sys.path set-up (everything before its gpuwatchd import).
    prologue = Path("/usr/bin/gpuwatchctl").read_text().split("from gpuwatchd")[0]
    probe = _run(["/usr/bin/python3", "-c", prologue + "\nimport pyipmi, pynvml, redfish, "
                  "gpuwatchd\nprint(pyipmi.__file__, pynvml.__file__, redfish.__file__, "
                  "gpuwatchd.__file__)"])
    assert probe.returncode == 0, probe.stderr
    assert all(p.startswith("/usr/lib/gpuwatchd/") for p in probe.stdout.split()), probe.stdout
    # ... while prometheus-client, PyYAML etc. are Debian's (bookworm: prometheus-client 0.16).
    debian = _run(["/usr/bin/python3", "-c", prologue + "\nimport prometheus_client, yaml\n"
                   "print(prometheus_client.__file__, yaml.__file__)"])
    assert all(p.startswith("/usr/lib/python3/dist-packages/")
               for p in debian.stdout.split()), debian.stdout + debian.stderr
    verify = _run(["systemd-analyze", "verify", str(UNIT)])
    assert verify.returncode == 0 and not verify.stdout + verify.stderr, verify.stderr
    security = _run(["systemd-analyze", "security", "--offline=true", str(UNIT)])
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert level and float(level.group(1)) <= 3.0, security.stdout[-500:]


class _Node:
    """A gpuwatchd started from /usr/bin as the gpuwatchd user."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         user=PACKAGE, group=PACKAGE, extra_groups=[],
                                         cwd="/")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def _prom(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.load(resp)


def _query(port: int, promql: str) -> list[Any]:
    return list(_prom(port, "/api/v1/query", query=promql)["data"]["result"])


def _firing(port: int, alertname: str, job: str) -> list[Any]:
    alerts = _prom(port, "/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname
            and a["labels"].get("job") == job and a["state"] == "firing"]


def _write_state(state: FakeNvmlState) -> None:
    """Like state.write(), but readable by the gpuwatchd user (mkstemp makes 0600 files)."""
    new = state.path.with_name(state.path.name + ".new")
    new.write_text(state.render() + "\n")
    new.chmod(0o644)
    os.replace(new, state.path)


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory the gpuwatchd user can read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="gpuwatchd-pkg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_installed_daemon_scraped_by_prometheus_fires_an_alert(
        installed: Built, work: Path, tmp_path: Path) -> None:
    """Demo + fake-NVML node from /usr/bin, gpuwatchctl status, Prometheus, an alert fires."""
    prometheus = require("prometheus", "prometheus")
    try:  # built (or cached) somewhere root-only: copy it where the gpuwatchd user can read it
        built_library = build_fake_nvml(tmp_path / "nvml")
    except FakeNvmlBuildError as exc:
        pytest.fail(str(exc))
    library = work / "nvml" / "libnvidia-ml.so.1"
    library.parent.mkdir(mode=0o755)
    shutil.copyfile(built_library, library)
    library.chmod(0o644)
    sockets = work / "run"
    sockets.mkdir(mode=0o750)
    shutil.chown(sockets, PACKAGE, PACKAGE)
    pki = make_pki(work / "pki")
    shutil.chown(pki / "server.key", PACKAGE, PACKAGE)
    state = FakeNvmlState(work / "nvml.state")
    _write_state(state)
    digest = bcrypt.hashpw(SCRAPE_PASSWORD.encode(), bcrypt.gensalt(6)).decode()
    (work / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n"
        f"basic_auth_users:\n  prometheus: '{digest}'\n")
    demo_port, fake_port, prom_port = free_port(), free_port(), free_port()
    (work / "fake.yaml").write_text(
        f"interval_seconds: 1\nstatus_socket: {sockets}/fake.sock\n"
        f"gpus: {{enabled: true, library_path: {library}}}\n"
        f"exporter:\n  listen: ['127.0.0.1:{fake_port}']\n"
        f"  web_config_file: {work}/web.yml\n")
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **state.env()}
    nodes = [
        _Node(["/usr/bin/gpuwatchd", "--demo", "--web.listen-address", f"127.0.0.1:{demo_port}",
               "--status-socket", f"{sockets}/demo.sock"], env, work / "demo.log"),
        _Node(["/usr/bin/gpuwatchd", "--config", f"{work}/fake.yaml"], env, work / "fake.log"),
    ]
    prom: subprocess.Popen[bytes] | None = None
    try:
        def healthy() -> subprocess.CompletedProcess[str] | None:
            done = _run(["/usr/bin/gpuwatchctl", "status", "--socket", f"{sockets}/demo.sock"],
                        timeout=10)
            # the daemon is healthy; the demo server's PS2 has failed, so the hardware
            # verdict makes it exit 1 (issue 13)
            ok = done.returncode == 1 and "health  healthy" in done.stdout
            return done if ok and "BMC idrac PSU PS2: failed" in done.stdout else None

        status = wait_until(healthy, 20, "gpuwatchctl status: daemon healthy, PS2 failed",
                            interval=0.2)
        gpu_rows = re.findall(r"(?m)^\s*[01]\s+Tesla P40\s+\d+C", status.stdout)
        assert len(gpu_rows) == 2, status.stdout

        # The shipped rules, with every `for:` shortened so the test need not wait minutes.
        rules = re.sub(r"(?m)^(\s+)for: .*$", r"\1for: 0s",
                       (ROOT / "monitoring" / "alerts.yaml").read_text())
        (tmp_path / "alerts.yaml").write_text(rules)
        (tmp_path / "password").write_text(SCRAPE_PASSWORD)
        (tmp_path / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "alerts.yaml")],
            "scrape_configs": [
                {"job_name": "gpuwatchd",
                 "static_configs": [{"targets": [f"127.0.0.1:{demo_port}"]}]},
                {"job_name": "gpuwatchd-secure", "scheme": "https",
                 "tls_config": {"ca_file": str(pki / "ca.crt")},
                 "basic_auth": {"username": "prometheus",
                                "password_file": str(tmp_path / "password")},
                 "static_configs": [{"targets": [f"127.0.0.1:{fake_port}"]}]},
            ]}))
        with (tmp_path / "prometheus.log").open("wb") as log:
            prom = subprocess.Popen(
                [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=log, stderr=subprocess.STDOUT)

        def both_gpus(job: str) -> bool:
            got = _query(prom_port, f'gpuwatchd_gpu_temperature_celsius{{job="{job}",'
                                    'sensor="gpu"}')
            return len(got) == 2

        wait_until(lambda: both_gpus("gpuwatchd"), 30,
                   f"Prometheus to scrape the demo node's 2 GPUs (log: {nodes[0].tail()})",
                   interval=0.5)
        wait_until(lambda: both_gpus("gpuwatchd-secure"), 30,
                   "Prometheus to scrape the fake node over TLS + basic auth "
                   f"(log: {nodes[1].tail()})", interval=0.5)
        assert not _firing(prom_port, "GpuwatchdGpuNearSlowdown", "gpuwatchd-secure")

        # Drive the fake GPU 0 (slowdown threshold 92 C) to 90 C.
        state.gpus[0]["temperature.0"] = 90
        _write_state(state)
        alerts = wait_until(lambda: _firing(prom_port, "GpuwatchdGpuNearSlowdown",
                                            "gpuwatchd-secure"), 30,
                            "GpuwatchdGpuNearSlowdown to fire for the fake node", interval=0.5)
        assert [a["labels"]["gpu"] for a in alerts] == ["0"]
        assert not _firing(prom_port, "GpuwatchdDown", "gpuwatchd")
    finally:
        if prom is not None:
            stop(prom)
        for node in nodes:
            stop(node.proc)
    assert all(node.proc.returncode == 0 for node in nodes), [n.tail() for n in nodes]


def test_kubernetes_example_runs_as_uid_65534_without_a_warning(
        installed: Built, work: Path, tmp_path: Path) -> None:
    """The DaemonSet's ConfigMap and args, as the pod runs them: uid/gid 65534, emptyDirs at
    /run/gpuwatchd and /var/lib/gpuwatchd (tmpfs in a private mount namespace, so the host's
    directories are untouched), NVML found through the loader path as the NVIDIA container
    toolkit provides it. It must start, serve metrics and status, and log no warning."""
    docs = list(yaml.safe_load_all((ROOT / "monitoring" / "kubernetes" / "daemonset.yaml")
                                   .read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    pod = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    uid = pod["securityContext"]["runAsUser"]
    (work / "gpuwatchd.yaml").write_text(config_map["data"]["gpuwatchd.yaml"])
    (work / "gpuwatchd.yaml").chmod(0o644)
    try:
        built_library = build_fake_nvml(tmp_path / "nvml")
    except FakeNvmlBuildError as exc:
        pytest.fail(str(exc))
    (work / "lib").mkdir(mode=0o755)
    shutil.copyfile(built_library, work / "lib" / "libnvidia-ml.so.1")
    (work / "lib" / "libnvidia-ml.so.1").chmod(0o644)
    state = FakeNvmlState(work / "nvml.state")
    _write_state(state)
    port = free_port()
    argv = [a if a != "/etc/gpuwatchd/gpuwatchd.yaml" else str(work / "gpuwatchd.yaml")
            for a in args]
    script = ("mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0777 /run/gpuwatchd && "
              "mount -t tmpfs -o mode=0755 tmpfs /var/lib && mkdir -m 0777 /var/lib/gpuwatchd "
              f"&& exec setpriv --reuid={uid} --regid={uid} --clear-groups "
              f"/usr/bin/gpuwatchd {' '.join(argv)} --web.listen-address 127.0.0.1:{port}")
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LD_LIBRARY_PATH": str(work / "lib"),
           **state.env()}
    log = work / "k8s.log"
    with log.open("wb") as out:  # unshare and setpriv exec: proc.pid is the daemon's
        proc = subprocess.Popen([require("unshare", "util-linux"), "--mount", "sh", "-c",
                                 script], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())

        body = wait_until(metrics, 20, f"the pod's /metrics (log: {log.read_text()[-800:]})")
        assert "gpuwatchd_gpu_up" in body
        socket_path = args[args.index("--status-socket") + 1]
        status = _run(["nsenter", "-t", str(proc.pid), "-m", "/usr/bin/gpuwatchctl", "status",
                       "--socket", socket_path], timeout=10)
        assert "Tesla" in status.stdout, status.stdout + status.stderr
    finally:
        stop(proc)
    # hardware events (they carry a MESSAGE_ID: the fake GPU's state) are data, not setup
    setup = [line for line in log.read_text().splitlines() if "MESSAGE_ID=" not in line]
    assert not [line for line in setup if re.search(r"level=(warn|error)", line)], setup


def test_purge_leaves_nothing_behind(installed: Built) -> None:
    """apt-get purge removes every file, conffile, state and enablement; the user stays."""
    files = [Path(p) for p in _run(["dpkg-query", "-L", PACKAGE]).stdout.split()]
    owned = [p for p in files if p.is_file()]
    assert Path("/usr/bin/gpuwatchd") in owned
    # What systemd's StateDirectory= would have created for the service.
    state = Path("/var/lib/gpuwatchd")
    state.mkdir(exist_ok=True)
    (state / "marker").write_text("x")
    shutil.chown(state, PACKAGE, PACKAGE)
    _purge()
    assert not _installed()
    left = [p for p in owned if p.exists()]
    assert not left, left
    for path in ("/etc/gpuwatchd", "/etc/default/gpuwatchd", "/usr/lib/gpuwatchd",
                 "/var/lib/gpuwatchd", "/usr/lib/sysusers.d/gpuwatchd.conf",
                 "/etc/systemd/system/multi-user.target.wants/gpuwatchd.service",
                 "/var/lib/systemd/deb-systemd-helper-enabled/gpuwatchd.service.dsh-also"):
        assert not os.path.lexists(path), f"left behind: {path}"
    # Debian never removes a system user on purge (files elsewhere may still carry its UID).
    assert _run(["getent", "passwd", PACKAGE]).returncode == 0


def test_wheel_pins_match_the_build(built: Built) -> None:
    """Every vendored wheel is pinned by version and SHA-256 (pip --require-hashes)."""
    reqs = (ROOT / "packaging" / "vendor-requirements.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([\w.]+) \\\n\s+--hash=sha256:([0-9a-f]{64})$",
                      reqs, re.MULTILINE)
    assert {name for name, _, _ in pins} == {"nvidia-ml-py", "python-ipmi", "redfish",
                                             "jsonpath-ng"}
    listing = _run(["dpkg-deb", "-c", str(built.deb)]).stdout
    for name, version, _ in pins:
        dist_info = f"{name.replace('-', '_')}-{version}.dist-info/METADATA"
        assert dist_info in listing, dist_info

