"""YAML text -> plain Python values with line numbers, bounded against hostile input.

PyYAML's SafeLoader is safe from code execution but not from exhaustion or surprise
(issue 10): nesting of 1,000 levels is a RecursionError in its recursive composer, a
5,000-digit integer a ValueError (Python's int/str conversion limit), ``? [a, b] : 1`` a
TypeError (an unhashable key), ``2001-13-45`` a ValueError from the timestamp constructor,
and nine levels of ten aliases expand to 10^9 values. Here:

- nesting is limited to :data:`MAX_DEPTH` levels and the document, aliases expanded, to
  :data:`MAX_NODES` values (counted while composing, before anything is built);
- a mapping key must be a scalar (string, number, boolean or null) of at most
  :data:`MAX_STRING` characters, and may appear once (PyYAML silently keeps the last);
- integers longer than :data:`MAX_NUMBER_CHARS` characters or beyond +-2^63, and scalars the
  YAML constructors reject (``!!bool maybe``, ``!!float abc``, a bad date), become
  :class:`Invalid` values that the Builder reports at their key;
- every error is a :class:`gpuwatchd.errors.ConfigError` naming ``file:line[:column]`` and
  the problem, never the offending text: the file may be a password file or /etc/shadow that
  was named by mistake (quoted parts of PyYAML's messages are dropped, see :func:`_redact`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any

import yaml

from gpuwatchd.errors import ConfigError

MAX_DEPTH = 32  # the deepest config key path is 6 levels (fan_control.zones[0].fans[0])
MAX_NODES = 100_000  # values in the document with aliases expanded (the example: ~150)
MAX_STRING = 4096  # PATH_MAX; also the longest mapping key
MAX_NUMBER_CHARS = 64  # a number written with more characters is not a setting
INT_BOUND = 1 << 63


class Invalid:
    """A scalar that could not be read as its YAML type; reported by the Builder at its key."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def __repr__(self) -> str:
        return f"<{self.problem}>"

    __str__ = __repr__


class Map(dict[Any, Any]):
    """A YAML mapping that remembers its line and the line of each key (by ``str(key)``)."""

    line: int = 0
    key_lines: dict[str, int]


class Seq(list[Any]):
    """A YAML sequence that remembers its line and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _Problem(Exception):
    """Raised inside the loader; :func:`parse` turns it into ``file:line: message``."""

    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else 0
        self.message = message


class _LineLoader(yaml.SafeLoader):
    """SafeLoader with line numbers, bounded composition and checked scalars."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                if id(target) not in self._sizes:
                    raise _Problem(event.start_mark, "an alias refers to its own anchor")
                self._count(self._sizes[id(target)], event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[return-value]
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Problem(mark, f"nested deeper than {MAX_DEPTH} levels")
        before = self._nodes
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._nodes - before
        return node  # type: ignore[return-value]

    def _count(self, values: int, mark: yaml.Mark) -> None:
        self._nodes += values
        if self._nodes > MAX_NODES:
            raise _Problem(mark, f"more than {MAX_NODES} values (aliases expanded)")

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise _Problem(node.start_mark, f"expected a mapping, got {_node_kind(node)}")
        out = Map()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Problem(key_node.start_mark, "a mapping key must be a string or number, "
                                                    f"not {_node_kind(key_node)}")
            if len(key_node.value) > MAX_STRING:
                raise _Problem(key_node.start_mark,
                               f"a mapping key longer than {MAX_STRING} characters")
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # a tagged scalar (!!binary is bytes, fine)
                raise _Problem(key_node.start_mark, "a mapping key must be a string or number")
            if key in out:
                first = out.key_lines.get(str(key), 0)
                raise _Problem(key_node.start_mark,
                               f"duplicate key {show(key)} (first on line {first})")
            out[key] = self.construct_object(value_node, deep=True)
            out.key_lines[str(key)] = line
        return out

    def construct_sequence(self, node: yaml.Node, deep: bool = False) -> list[Any]:
        if not isinstance(node, yaml.SequenceNode):
            raise _Problem(node.start_mark, f"expected a list, got {_node_kind(node)}")
        out = Seq(self.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out

    def construct_checked_int(self, node: yaml.Node) -> object:
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_NUMBER_CHARS:
            return Invalid(f"integer too long ({len(node.value)} characters)")
        value = _checked(yaml.SafeLoader.construct_yaml_int, "integer")(self, node)
        if isinstance(value, int) and not -INT_BOUND < value < INT_BOUND:
            return Invalid("integer out of bounds (beyond +-2^63)")
        return value

    def construct_checked_float(self, node: yaml.Node) -> object:
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_NUMBER_CHARS:
            return Invalid(f"number too long ({len(node.value)} characters)")
        return _checked(yaml.SafeLoader.construct_yaml_float, "float")(self, node)


def _checked(constructor: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """A scalar constructor whose error on a bad value becomes an Invalid.

    PyYAML's own raise ValueError (``!!float abc``, ``2001-13-45``), KeyError
    (``!!bool maybe``) and AttributeError (``!!timestamp x``: its regex did not match).
    """

    def construct(loader: _LineLoader, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            article = "an" if kind == "integer" else "a"
            raise _Problem(node.start_mark, f"expected {article} {kind}, got {_node_kind(node)}")
        try:
            return constructor(loader, node)
        except (ValueError, KeyError, OverflowError, AttributeError):
            return Invalid(f"not a valid {kind}")

    return construct


def _merge_key(loader: _LineLoader, node: yaml.Node) -> Any:
    raise _Problem(node.start_mark, "merge keys (<<) are not supported: write the keys out")


_TAG = "tag:yaml.org,2002:"
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                            _LineLoader.construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                            _LineLoader.construct_sequence)
_LineLoader.add_constructor(_TAG + "int", _LineLoader.construct_checked_int)
_LineLoader.add_constructor(_TAG + "float", _LineLoader.construct_checked_float)
_LineLoader.add_constructor(_TAG + "bool", _checked(yaml.SafeLoader.construct_yaml_bool, "bool"))
_LineLoader.add_constructor(_TAG + "merge", _merge_key)
_LineLoader.add_constructor(_TAG + "timestamp",
                            _checked(yaml.SafeLoader.construct_yaml_timestamp, "timestamp"))


def parse(text: str, source: str) -> Any:
    """Parse YAML text; every problem becomes a ConfigError naming ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except _Problem as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        raise ConfigError(f"{where}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_error(exc, source)) from None
    except yaml.reader.ReaderError as exc:  # a control character (or a bad byte) in the text
        raise ConfigError(f"{source}: not valid YAML: {_reader_problem(exc, text)}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not valid YAML") from None
    except RecursionError:  # not expected past the depth bound; never a traceback
        raise ConfigError(f"{source}: nested too deeply") from None


def _syntax_error(exc: yaml.MarkedYAMLError, source: str) -> str:
    """``file:line:column: YAML syntax error: problem (context at line:column)``, redacted."""
    mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    message = f"{where}: YAML syntax error: {_redact(exc.problem or exc.context or '')}"
    if exc.problem and exc.context and context is not None and context is not mark:
        message += (f" ({_redact(exc.context)}, at line {context.line + 1}, "
                    f"column {context.column + 1})")
    return message


def _reader_problem(exc: yaml.reader.ReaderError, text: str) -> str:
    before = text[:exc.position]
    line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
    if isinstance(exc.character, int):
        return (f"unacceptable character #x{exc.character:04x} (a control character) "
                f"at line {line}, column {column}")
    return f"undecodable byte at line {line}, column {column}"


# Quoted parts of PyYAML's messages are the file's text ("found character '@' ...", "... the
# tag '!s'"); only its own token names ('<stream end>') and syntax characters are kept.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_KEEP = re.compile(r"'(?:<[a-z ]+>|[-,:?\[\]{}]|\\t)'")


def _redact(problem: str) -> str:
    return _QUOTED.sub(lambda m: m.group(0) if _KEEP.fullmatch(m.group(0)) else "(...)",
                       problem)


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a scalar"


def show(value: object, limit: int = 40) -> str:
    """``value`` for a message: repr'd, control characters escaped, at most ``limit`` chars."""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[:limit] + "...'"
