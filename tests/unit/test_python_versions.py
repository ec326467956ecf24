"""gpuwatchd runs on Python 3.10 (Ubuntu 22.04) to 3.13.

The suite itself runs on each interpreter (scripts/test.sh: the unit tests once more under the
oldest pyenv interpreter); this test catches, on any interpreter, the 3.11-only names that
would only fail there: ``enum.StrEnum`` (use gpuwatchd.compat), ``datetime.UTC``, ``tomllib``,
``typing.Self``, ``ExceptionGroup``, ``except*``, ``asyncio.TaskGroup``/``asyncio.timeout``.
"""

from __future__ import annotations

import ast
import sys
from enum import Enum
from pathlib import Path

import pytest

from gpuwatchd.compat import StrEnum

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "gpuwatchd").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                  *(ROOT / "bench").rglob("*.py")])
# (module, name): imported or used as module.name, new in 3.11
NEW_IN_311 = frozenset({
    ("enum", "StrEnum"), ("enum", "ReprEnum"), ("enum", "verify"), ("enum", "EnumCheck"),
    ("datetime", "UTC"), ("typing", "Self"), ("typing", "LiteralString"), ("typing", "Never"),
    ("typing", "assert_never"), ("typing", "reveal_type"), ("typing", "NotRequired"),
    ("typing", "Required"), ("typing", "TypeVarTuple"), ("typing", "Unpack"),
    ("asyncio", "TaskGroup"), ("asyncio", "timeout"), ("hashlib", "file_digest"),
    ("contextlib", "chdir"), ("typing", "override"),
})
NEW_MODULES = frozenset({"tomllib", "wsgiref.types"})
NEW_BUILTINS = frozenset({"ExceptionGroup", "BaseExceptionGroup"})
ALIASES = {"dt": "datetime"}  # import datetime as dt


def _offences(tree: ast.AST) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [f"from {node.module} import {a.name}" for a in node.names
                    if (node.module, a.name) in NEW_IN_311]
            if node.module in NEW_MODULES:
                out.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            out += [f"import {a.name}" for a in node.names if a.name in NEW_MODULES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = ALIASES.get(node.value.id, node.value.id)
            if (module, node.attr) in NEW_IN_311:
                out.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS:
            out.append(node.id)
        elif type(node).__name__ == "TryStar":
            out.append("except*")
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_name_new_in_python_311(path: Path) -> None:
    if path.name in {"compat.py", "test_python_versions.py"}:
        return  # the shim imports enum.StrEnum where it exists; this file names them all
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _offences(tree) == [], f"{path}: Python 3.11+ only (gpuwatchd supports 3.10)"


def test_the_offence_finder_finds_them() -> None:
    source = ("from enum import StrEnum\nimport tomllib\nimport datetime as dt\n"
              "x = dt.UTC\ny = ExceptionGroup\n")
    assert _offences(ast.parse(source)) == [
        "from enum import StrEnum", "import tomllib", "dt.UTC", "ExceptionGroup"]


def test_project_metadata_and_tools_target_310() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'requires-python = ">=3.10"' in text
    assert 'target-version = "py310"' in text
    assert 'python_version = "3.10"' in text


class _Mode(StrEnum):
    CONTROL = "control"
    FAILSAFE = "failsafe"


def test_strenum_prints_its_value_on_every_version() -> None:
    assert str(_Mode.CONTROL) == "control"
    assert f"{_Mode.FAILSAFE}" == "failsafe"
    assert f"{_Mode.CONTROL:>9}" == "  control"
    assert "%s" % _Mode.CONTROL == "control"  # noqa: UP031
    assert _Mode.CONTROL == "control" and isinstance(_Mode.CONTROL, str)
    assert _Mode("failsafe") is _Mode.FAILSAFE
    assert issubclass(_Mode, Enum)
    assert sorted(_Mode) == [_Mode.CONTROL, _Mode.FAILSAFE]
    assert sys.version_info >= (3, 10)
