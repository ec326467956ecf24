"""YAML -> frozen dataclasses, with the file and line of every key kept for error messages.

The mechanism only; the schema lives in ``gpuwatchd.config.schema`` and every cross-field
check in ``gpuwatchd.config.load``.
A field's range is declared in its metadata: ``field(default=2.0, metadata=rng(0.1, 60))``;
a field (or list item) written as text and parsed into a typed value names its parser:
``field(default=..., metadata=parsed(parse_selector))`` (a ValueError is a file:line error).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from gpuwatchd.errors import ConfigError

T = TypeVar("T")


def rng(low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    """Field metadata: the inclusive range a number must fall in."""
    return {"min": low, "max": high}


def parsed(parse: Callable[[str], Any]) -> dict[str, Callable[[str], Any]]:
    """Field metadata: the function that makes the typed value from the text in the file."""
    return {"parse": parse}


class _Map(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class _Seq(list[Any]):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line (1-based) of every mapping key and list item."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        out = _Map()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in out:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = self.construct_object(value_node, deep=True)
            out.key_lines[str(key)] = key_node.start_mark.line + 1
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        out = _Seq(self.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence
)


def parse(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors become ConfigError naming ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(f"{source}:{line}: YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character in the file
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


class Builder:
    """Builds dataclass instances from parsed YAML, naming file:line: key on every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, line: int, path: str, message: str) -> typing.NoReturn:
        """Raise the ConfigError every check uses: ``file:line: key.path: message``."""
        where = f"{self.source}:{line}" if line else self.source
        raise ConfigError(f"{where}: {path or '(top level)'}: {message}")

    def build(self, cls: type[T], data: Any, path: str = "", line: int = 0) -> T:
        """Build ``cls`` (a dataclass) from a mapping; unknown keys are rejected."""
        if data is None:
            data = _Map()
        if not isinstance(data, dict):
            self.fail(line, path, f"expected a mapping, got {_kind(data)}")
        key_lines = getattr(data, "key_lines", {})
        line = getattr(data, "line", line)
        fields = {f.name: f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if not f.metadata.get("internal")}  # set by the loader, never by the file
        hints = typing.get_type_hints(cls)
        for key in data:
            if key not in fields:
                hint = difflib.get_close_matches(str(key), list(fields), n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                known = ", ".join(fields)
                self.fail(key_lines.get(key, line), _join(path, key),
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

    def convert(self, hint: Any, value: Any, path: str, line: int,
                meta: dict[str, Any] | None = None) -> Any:
        """Check ``value`` against the type ``hint`` (and range metadata); return it typed."""
        meta = meta or {}
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
            if not isinstance(value, str) or not value:
                self.fail(line, path, f"expected a non-empty string, got {_kind(value)}")
            return value
        raise TypeError(f"unsupported config type {hint!r} at {path}")

    def _parsed(self, parse: Callable[[str], Any], value: Any, path: str, line: int) -> Any:
        if not isinstance(value, str) or not value:
            self.fail(line, path, f"expected a non-empty string, got {_kind(value)}")
        try:
            return parse(value)
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
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        names = [str(c) for c in choices]
        close = difflib.get_close_matches(str(value), names, n=1)
        extra = f" (did you mean {close[0]!r}?)" if close else ""
        self.fail(line, path, f"{value!r} is not one of {', '.join(names)}{extra}")

    def _tuple(self, hint: Any, value: Any, path: str, line: int, meta: dict[str, Any]) -> Any:
        if not isinstance(value, list):
            self.fail(line, path, f"expected a list, got {_kind(value)}")
        item_hint = get_args(hint)[0]
        item_lines = getattr(value, "item_lines", [line] * len(value))
        return tuple(self.convert(item_hint, item, f"{path}[{i}]", item_lines[i], meta)
                     for i, item in enumerate(value))

    def _number(self, hint: type, value: Any, path: str, line: int, meta: dict[str, Any]) -> Any:
        ok = isinstance(value, int) if hint is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            self.fail(line, path, f"expected {'an integer' if hint is int else 'a number'}, "
                                  f"got {_kind(value)}")
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
    return f"{path}.{key}" if path else str(key)


def _fmt(bound: float | None) -> str:
    return "-inf" if bound is None else f"{bound:g}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    return "a list" if isinstance(value, list) else "a mapping"
