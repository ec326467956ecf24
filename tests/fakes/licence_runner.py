"""A fake command runner: canned answers per command, every call recorded.

Answers are keyed by the command's first two words (``("systemctl", "show")``,
``("nvidia-smi", "-q")``, ``("timedatectl", "show")``, ``("systemctl", "restart")``); a value
is a CommandResult, an exception instance to raise, or a callable returning either.
An unknown command raises NotInstalled, like a binary that is not there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gpuwatchd.errors import NotInstalled
from gpuwatchd.licence.commands import CommandResult

DATA = Path(__file__).resolve().parent.parent / "data" / "nvidia-smi"
Answer = CommandResult | Exception | Callable[[], "CommandResult | Exception"]


def show(active: str = "active", load: str = "loaded", since_us: int = 5_000_000) -> str:
    """``systemctl show nvidia-gridd.service`` output for a unit in this state."""
    sub = {"active": "running", "failed": "failed", "inactive": "dead"}.get(active, active)
    return (f"LoadState={load}\nActiveState={active}\nSubState={sub}\n"
            f"ActiveEnterTimestampMonotonic={since_us if active == 'active' else 0}\n")


def smi_sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


class FakeRunner:
    """Callable like :func:`gpuwatchd.licence.commands.run_command`."""

    def __init__(self, **answers: Answer) -> None:
        self.answers: dict[tuple[str, str], Answer] = {}
        self.calls: list[tuple[str, ...]] = []
        self.timeouts: list[float] = []
        self.set_unit()
        self.answers[("timedatectl", "show")] = CommandResult((), 0, "yes\n")

    def set(self, first: str, second: str, answer: Answer) -> None:
        self.answers[(first, second)] = answer

    def set_unit(self, active: str = "active", load: str = "loaded",
                 since_us: int = 5_000_000) -> None:
        self.set("systemctl", "show", CommandResult((), 0, show(active, load, since_us)))

    def set_smi(self, sample: str) -> None:
        self.set("nvidia-smi", "-q", CommandResult((), 0, smi_sample(sample)))

    def set_restart(self, answer: Answer) -> None:
        self.set("systemctl", "restart", answer)

    def count(self, *prefix: str) -> int:
        return sum(1 for call in self.calls if call[:len(prefix)] == prefix)

    def __call__(self, argv: Sequence[str], timeout_seconds: float) -> CommandResult:
        call = tuple(argv)
        self.calls.append(call)
        self.timeouts.append(timeout_seconds)
        answer = self.answers.get((call[0], call[1]) if len(call) > 1 else (call[0], ""))
        if answer is None:
            if call[:2] == ("systemctl", "restart"):
                return CommandResult(call, 0, "")
            raise NotInstalled(f"{call[0]}: not installed")
        if callable(answer) and not isinstance(answer, Exception):
            answer = answer()
        if isinstance(answer, Exception):
            raise answer
        return CommandResult(call, answer.returncode, answer.stdout, answer.stderr)
