"""YAML -> frozen dataclasses, with the file and line of every key kept for error messages.

The mechanism only; the schema lives in ``gpuwatchd.config.schema`` and every cross-field
check in ``gpuwatchd.config.load``; the bounded YAML reader in ``gpuwatchd.config.yamlparse``.
A field's range is declared in its metadata: ``field(default=2.0, metadata=rng(0.1, 60))``;
a field (or list item) written as text and parsed into a typed value names its parser:
``field(default=..., metadata=parsed(parse_selector))`` (a ValueError is a file:line error).
Every number must be finite (NaN fails every comparison, so it passed any range: issue 10),
every string at most :data:`MAX_STRING` characters without control characters, every list
at most :data:`MAX_ITEMS` items. Values from the file are quoted in messages only below the
top level of a file that looks like a config (see :meth:`Builder.build`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from gpuwatchd.config.yamlparse import MAX_STRING, Invalid, Map, parse, show
from gpuwatchd.errors import ConfigError

__all__ = ["MAX_ITEMS", "MAX_STRING", "Builder", "parse", "rng"]

T = TypeVar("T")
MAX_ITEMS = 1000  # items in one list (zones, inputs, fans, BMCs, listen addresses)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def rng(low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    """Field metadata: the inclusive range a number must fall in."""
    return {"min": low, "max": high}


def parsed(parse: Callable[[str], Any]) -> dict[str, Callable[[str], Any]]:
    """Field metadata: the function that makes the typed value from the text in the file."""
    return {"parse": parse}


class Builder:
    """Builds dataclass instances from parsed YAML, naming file:line: key on every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, line: int, path: str, message: str) -> typing.NoReturn:
        """Raise the ConfigError every check uses: ``file:line: key.path: message``."""
        where = f"{self.source}:{line}" if line else self.source
        raise ConfigError(f"{where}: {path or '(top level)'}: {message}")

    def build(self, cls: type[T], data: Any, path: str = "", line: int = 0) -> T:
        """Build ``cls`` (a dataclass) from a mapping; unknown keys are rejected.

        At the top level the file may not be a config at all (a password file, /etc/shadow
        named by mistake): it is described (text, a list, unknown keys), never quoted.
        """
        if data is None:
            data = Map()
        if not isinstance(data, dict):
            got = _kind(data) if path else _kind(data, quote=False)
            self.fail(line, path, f"expected a mapping, got {got}")
        key_lines = getattr(data, "key_lines", {})
        line = getattr(data, "line", line)
        fields = {f.name: f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if not f.metadata.get("internal")}  # set by the loader, never by the file
        hints = typing.get_type_hints(cls)
        if not path:
            self._looks_like_config(data, list(fields), line)
        for key in data:
            if key not in fields:
                hint = difflib.get_close_matches(str(key), list(fields), n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                known = ", ".join(fields)
                self.fail(key_lines.get(str(key), line), _join(path, key),
                          f"unknown key{extra}; known keys: {known}")
        kwargs: dict[str, Any] = {}
        for name, fld in fields.items():
            sub = _join(path, name)
            if name in data:
                kwargs[name] = self.convert(hints[name], data[name], sub,
                                            key_lines.get(name, line), dict(fld.metadata))
            elif (fld.default is dataclasses.MISSING
                  and fld.default_factory is dataclasses.MISSING):
                self.fail(line, sub, "required key is missing")
        return cls(**kwargs)

    def _looks_like_config(self, data: dict[Any, Any], fields: list[str], line: int) -> None:
        """Refuse, without naming them, top-level keys none of which is (close to) a known one:
        ``user: password`` lines parse as a mapping too."""
        if not data or any(str(key) in fields for key in data):
            return
        if any(difflib.get_close_matches(str(key), fields, n=1) for key in data):
            return
        self.fail(line, "", f"not a config file: none of its {len(data)} top-level key(s) is "
                            f"known; known keys: {', '.join(fields)}")

    def convert(self, hint: Any, value: Any, path: str, line: int,
                meta: dict[str, Any] | None = None) -> Any:
        """Check ``value`` against the type ``hint`` (and range metadata); return it typed."""
        meta = meta or {}
        if isinstance(value, Invalid):
            self.fail(line, path, value.problem)
        origin = get_origin(hint)
        if "parse" in meta and origin is not tuple:
            return self._parsed(meta["parse"], value, path, line)
        if origin in (Union, types.UnionType):
            return self._union(hint, value, path, line, meta)
        if origin is Literal:
            return self._literal(hint, value, path, line)
        if origin is tuple:
            return self._tuple(hint, value, path, line, meta)
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, path, line)  # type: ignore[arg-type]
        if hint is bool:
            if not isinstance(value, bool):
                self.fail(line, path, f"expected true or false, got {_kind(value)}")
            return value
        if hint in (int, float):
            return self._number(hint, value, path, line, meta)
        if hint is str:
            return self.string(value, path, line)
        raise TypeError(f"unsupported config type {hint!r} at {path}")

    def string(self, value: Any, path: str, line: int) -> str:
        """A non-empty string of at most MAX_STRING characters, without control characters."""
        if not isinstance(value, str) or not value:
            self.fail(line, path, f"expected a non-empty string, got {_kind(value)}")
        if len(value) > MAX_STRING:
            self.fail(line, path, f"longer than {MAX_STRING} characters")
        control = _CONTROL.search(value)
        if control:
            self.fail(line, path, f"contains a control character (#x{ord(control.group()):04x})")
        return value

    def _parsed(self, parse: Callable[[str], Any], value: Any, path: str, line: int) -> Any:
        text = self.string(value, path, line)
        try:
            return parse(text)
        except ValueError as exc:
            self.fail(line, path, str(exc))

    def _union(self, hint: Any, value: Any, path: str, line: int, meta: dict[str, Any]) -> Any:
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return self.convert(option, value, path, line, meta)
            except ConfigError:
                continue
        for option in options:  # a value of the right shape but out of range: say that
            if option in (int, float) and isinstance(value, (int, float)):
                self._number(option, value, path, line, meta)
        wanted = " or ".join(_describe(option) for option in options)
        self.fail(line, path, f"expected {wanted}, got {_kind(value)}")

    def _literal(self, hint: Any, value: Any, path: str, line: int) -> Any:
        choices = get_args(hint)
        if (isinstance(value, (str, bool)) and value in choices
                and type(value) is type(choices[choices.index(value)])):
            return value
        names = [str(c) for c in choices]
        close = (difflib.get_close_matches(value, names, n=1)
                 if isinstance(value, str) and len(value) < 100 else [])
        extra = f" (did you mean {close[0]!r}?)" if close else ""
        shown = show(value) if isinstance(value, str) else _kind(value)
        self.fail(line, path, f"{shown} is not one of {', '.join(names)}{extra}")

    def _tuple(self, hint: Any, value: Any, path: str, line: int, meta: dict[str, Any]) -> Any:
        if not isinstance(value, list):
            self.fail(line, path, f"expected a list, got {_kind(value)}")
        if len(value) > MAX_ITEMS:
            self.fail(line, path, f"more than {MAX_ITEMS} items ({len(value)})")
        item_hint = get_args(hint)[0]
        item_lines = getattr(value, "item_lines", [line] * len(value))
        return tuple(self.convert(item_hint, item, f"{path}[{i}]", item_lines[i], meta)
                     for i, item in enumerate(value))

    def _number(self, hint: type, value: Any, path: str, line: int, meta: dict[str, Any]) -> Any:
        ok = isinstance(value, int) if hint is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            self.fail(line, path, f"expected {'an integer' if hint is int else 'a number'}, "
                                  f"got {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(line, path, f"must be a finite number, got {value}")
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(line, path, f"{value} is out of range [{_fmt(low)}, {_fmt(high)}]")
        return hint(value)


def _describe(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return " or ".join(repr(c) for c in get_args(hint))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    if hint in names:
        return names[hint]
    return "a list" if get_origin(hint) is tuple else "a mapping"


def _join(path: str, key: object) -> str:
    if isinstance(key, str):
        name = key if key.isprintable() and len(key) <= 64 else show(key)
    else:
        name = str(key) if key is None or isinstance(key, (int, float)) else show(key)
    return f"{path}.{name}" if path else str(name)


def _fmt(bound: float | None) -> str:
    return "-inf" if bound is None else f"{bound:g}"


def _kind(value: Any, quote: bool = True) -> str:
    """How a message names a value: ``string 'x'`` (``text`` when it must not be quoted)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {value}" if quote else "a boolean"
    if isinstance(value, (int, float)):
        return f"number {value}" if quote else "a number"
    if isinstance(value, str):
        return f"string {show(value)}" if quote else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Invalid):
        return value.problem if quote else "an unreadable value"
    return "a mapping" if isinstance(value, dict) else f"a {type(value).__name__} value"
