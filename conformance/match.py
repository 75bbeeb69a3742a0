"""Matching received frames against transcript expectations, and ``${var}`` substitution.

Expectation language (documented in conformance/README.md):

* A JSON object matches an object that has at least those keys with matching values (extra keys
  allowed) unless it carries ``"$exact": true``.
* A JSON array matches an array of the same length, element by element.
* Scalars match by equality (``1`` does not match ``true``).
* Placeholder strings: ``"<any>"``, ``"<absent>"`` (key must be missing), ``"<string>"``,
  ``"<nonempty>"``, ``"<uuid>"``, ``"<int>"``, ``"<number>"``, ``"<bool>"``, ``"<array>"``,
  ``"<object>"``, ``"<null>"``.
* Operator objects (a single ``$`` key, or several combined): ``{"$contains": [...]}``,
  ``{"$not_contains": [...]}``, ``{"$startswith": "..."}``, ``{"$ge": n}``, ``{"$le": n}``,
  ``{"$len": n}``, ``{"$len_le": n}``, ``{"$var": "name"}`` (equals a captured value),
  ``{"$ne_var": "name"}``, ``{"$capture": "name"}`` (matches anything, remembers it),
  ``{"$includes": "text"}`` / ``{"$excludes": "text"}`` (substring of a string),
  ``{"$one_of": [...]}``, ``{"$match": <expectation>}`` (combine with $capture).
"""

from __future__ import annotations

import re
from typing import Any

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_ABSENT = object()


class Mismatch(Exception):
    """A received value does not match; ``path`` is a JSON-path-like location."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '$'}: {message}")
        self.path = path


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace ``${name}`` in strings (a whole-string ``${name}`` keeps the variable's type)."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            if whole.group(1) not in variables:
                raise KeyError(f"undefined transcript variable ${{{whole.group(1)}}}")
            return variables[whole.group(1)]

        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in variables:
                raise KeyError(f"undefined transcript variable ${{{m.group(1)}}}")
            return str(variables[m.group(1)])

        return _VAR.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def _type_name(v: Any) -> str:
    if v is _ABSENT:
        return "absent"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _placeholder(name: str, actual: Any, path: str) -> None:
    checks = {
        "<any>": lambda v: v is not _ABSENT,
        "<absent>": lambda v: v is _ABSENT,
        "<string>": lambda v: isinstance(v, str),
        "<nonempty>": lambda v: isinstance(v, str) and v != "",
        "<uuid>": lambda v: isinstance(v, str) and bool(_UUID.match(v)),
        "<int>": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "<number>": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "<bool>": lambda v: isinstance(v, bool),
        "<array>": lambda v: isinstance(v, list),
        "<object>": lambda v: isinstance(v, dict),
        "<null>": lambda v: v is None,
    }
    if not checks[name](actual):
        raise Mismatch(path, f"expected {name[1:-1]}, got {_short(actual)}")


def _short(v: Any) -> str:
    if v is _ABSENT:
        return "(absent)"
    text = repr(v)
    return text if len(text) <= 160 else text[:157] + "..."


PLACEHOLDERS = frozenset(
    {
        "<any>",
        "<absent>",
        "<string>",
        "<nonempty>",
        "<uuid>",
        "<int>",
        "<number>",
        "<bool>",
        "<array>",
        "<object>",
        "<null>",
    }
)


def match(expected: Any, actual: Any, variables: dict[str, Any], path: str = "") -> None:
    """Raise :class:`Mismatch` unless ``actual`` matches ``expected``; may add captures."""
    if isinstance(expected, str) and expected in PLACEHOLDERS:
        _placeholder(expected, actual, path)
        return
    if isinstance(expected, dict) and expected and all(k.startswith("$") for k in expected):
        _operators(expected, actual, variables, path)
        return
    if actual is _ABSENT:
        raise Mismatch(path, f"missing, expected {_short(expected)}")
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(path, f"expected object, got {_short(actual)}")
        exact = expected.get("$exact") is True
        for key, sub in expected.items():
            if key == "$exact":
                continue
            match(sub, actual.get(key, _ABSENT), variables, f"{path}.{key}")
        if exact:
            extra = [k for k in actual if k not in expected]
            if extra:
                raise Mismatch(path, f"unexpected keys {extra}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            raise Mismatch(path, f"expected array, got {_short(actual)}")
        if len(expected) != len(actual):
            raise Mismatch(path, f"expected {len(expected)} items, got {len(actual)}: {_short(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            match(e, a, variables, f"{path}[{i}]")
        return
    if _type_name(expected) != _type_name(actual) or expected != actual:
        raise Mismatch(path, f"expected {_short(expected)}, got {_short(actual)}")


def _operators(ops: dict[str, Any], actual: Any, variables: dict[str, Any], path: str) -> None:
    for op, arg in ops.items():
        if op == "$capture":
            if actual is _ABSENT:
                raise Mismatch(path, "missing (to capture)")
            variables[arg] = actual
        elif op == "$match":
            match(arg, actual, variables, path)
        elif op == "$contains":
            if not isinstance(actual, list):
                raise Mismatch(path, f"expected array, got {_short(actual)}")
            for item in arg:
                if not any(_matches(item, a, variables) for a in actual):
                    raise Mismatch(path, f"does not contain {_short(item)}")
        elif op == "$not_contains":
            if not isinstance(actual, list):
                raise Mismatch(path, f"expected array, got {_short(actual)}")
            for item in arg:
                if any(_matches(item, a, variables) for a in actual):
                    raise Mismatch(path, f"unexpectedly contains {_short(item)}")
        elif op in ("$includes", "$excludes"):
            needle = substitute(arg, variables)
            if not isinstance(actual, str):
                raise Mismatch(path, f"expected a string, got {_short(actual)}")
            if (needle in actual) != (op == "$includes"):
                verb = "contain" if op == "$includes" else "not contain"
                raise Mismatch(path, f"expected the text to {verb} {needle!r}, got {_short(actual)}")
        elif op == "$startswith":
            if not isinstance(actual, str) or not actual.startswith(arg):
                raise Mismatch(path, f"expected a string starting {arg!r}, got {_short(actual)}")
        elif op in ("$ge", "$le", "$gt", "$lt"):
            bound = substitute(arg, variables)
            if not isinstance(actual, (int, float)) or isinstance(actual, bool):
                raise Mismatch(path, f"expected a number, got {_short(actual)}")
            ok = {"$ge": actual >= bound, "$le": actual <= bound, "$gt": actual > bound, "$lt": actual < bound}[op]
            if not ok:
                raise Mismatch(path, f"expected {op[1:]} {bound}, got {actual}")
        elif op in ("$len", "$len_le", "$len_ge"):
            if not isinstance(actual, (list, str, dict)):
                raise Mismatch(path, f"expected something with a length, got {_short(actual)}")
            n = len(actual)
            ok = {"$len": n == arg, "$len_le": n <= arg, "$len_ge": n >= arg}[op]
            if not ok:
                raise Mismatch(path, f"expected {op[1:]} {arg}, got length {n}")
        elif op == "$var":
            if arg not in variables:
                raise Mismatch(path, f"variable {arg!r} was never captured")
            match(variables[arg], actual, variables, path)
        elif op == "$ne_var":
            if arg in variables and actual == variables[arg]:
                raise Mismatch(path, f"expected a value different from ${{{arg}}} ({_short(actual)})")
        elif op == "$one_of":
            if not any(_matches(option, actual, variables) for option in arg):
                raise Mismatch(path, f"expected one of {_short(arg)}, got {_short(actual)}")
        elif op == "$exact":
            continue
        else:
            raise Mismatch(path, f"unknown matcher operator {op}")


def _matches(expected: Any, actual: Any, variables: dict[str, Any]) -> bool:
    try:
        match(expected, actual, dict(variables))
    except Mismatch:
        return False
    return True


def absent() -> Any:
    """The sentinel for a missing value (for callers matching optional keys)."""
    return _ABSENT


__all__ = ["Mismatch", "absent", "match", "substitute"]
