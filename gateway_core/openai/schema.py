"""A small validator that words its complaints the way zod 4 does, for the request schemas.

The published gateway validates request bodies with zod 4.6 and answers the **first** issue as
``"<path joined by '.'>: <message>"`` (``max_tokens: Too small: expected number to be >0``,
``: Unrecognized key: "service_tier"``, ``input: Invalid input``). Only the schema kinds those
bodies use are here. The rules that decide *which* issue comes first are zod's:

* an object reports its declared keys in declaration order, then unknown keys (strict objects)
  as one issue; checks such as ``positive()``/``min()``/``refine`` and unknown keys do not abort,
  type mismatches do;
* a union that nothing satisfies reports ``Invalid input`` at its own path, unless exactly one
  option failed only with non-aborting issues, whose issues it then reports;
* a discriminated union with an unknown tag reports ``Invalid input`` (the tag's path is not shown
  in the message the gateway prints, because the union sits under ``input``'s own union).

Lengths count UTF-16 code units, numbers follow JavaScript (``1.0`` is an integer; integers must be
safe). ``string().url()`` is approximated by a scheme check (WHATWG parsing is not reproduced).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

MISSING: Final = object()
MAX_SAFE: Final = 9007199254740991
_URL_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S*$")


class Issue(NamedTuple):
    path: tuple[str | int, ...]
    message: str
    aborts: bool = True

    def render(self) -> str:
        return ".".join(str(p) for p in self.path) + ": " + self.message


def received(value: Any) -> str:
    """zod's name for a value's type (``received …``)."""
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _type_issue(path: tuple[str | int, ...], expected: str, value: Any) -> list[Issue]:
    return [Issue(path, f"Invalid input: expected {expected}, received {received(value)}")]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class Schema:
    """A node; :meth:`issues` returns every issue for ``value`` (``MISSING`` when the key is absent)."""

    optional = False
    nullable = False

    def issues(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if value is MISSING and self.optional:
            return []
        if value is None and self.nullable:
            return []
        return self.check(value, path)

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        raise NotImplementedError

    def opt(self) -> Schema:
        """``.optional()``."""
        self.optional = True
        return self

    def nullish(self) -> Schema:
        """``.nullish()``: absent or ``null``."""
        self.optional = self.nullable = True
        return self


class Unknown(Schema):
    def issues(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        return []


class Bool(Schema):
    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        return [] if isinstance(value, bool) else _type_issue(path, "boolean", value)


class Str(Schema):
    def __init__(self, min_len: int | None = None, min_message: str | None = None, url: bool = False) -> None:
        self.min_len, self.min_message, self.url = min_len, min_message, url

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if not isinstance(value, str):
            return _type_issue(path, "string", value)
        out: list[Issue] = []
        if self.min_len is not None and _utf16_len(value) < self.min_len:
            text = self.min_message or f"Too small: expected string to have >={self.min_len} characters"
            out.append(Issue(path, text, False))
        if self.url and not _URL_RE.match(value.strip()):
            out.append(Issue(path, "Invalid URL", False))
        return out


class Num(Schema):
    """``number()`` with ``.int()``, ``.positive()``, ``.min()``, ``.max()`` in that order."""

    def __init__(self, *, integer: bool = False, positive: bool = False, lo: float | None = None, hi: float | None = None) -> None:
        self.integer, self.positive, self.lo, self.hi = integer, positive, lo, hi

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _type_issue(path, "number", value)
        out: list[Issue] = []
        if self.integer:
            if isinstance(value, float) and not value.is_integer():
                return [Issue(path, "Invalid input: expected int, received number")]
            if value > MAX_SAFE:
                out.append(Issue(path, f"Too big: expected int to be <={MAX_SAFE}", False))
            elif value < -MAX_SAFE:
                out.append(Issue(path, f"Too small: expected int to be >=-{MAX_SAFE}", False))
        if self.positive and not value > 0:
            out.append(Issue(path, "Too small: expected number to be >0", False))
        if self.lo is not None and value < self.lo:
            out.append(Issue(path, f"Too small: expected number to be >={_num(self.lo)}", False))
        if self.hi is not None and value > self.hi:
            out.append(Issue(path, f"Too big: expected number to be <={_num(self.hi)}", False))
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Literal(Schema):
    def __init__(self, value: Any) -> None:
        self.value = value

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if value == self.value and type(value) is type(self.value):
            return []
        return [Issue(path, f"Invalid input: expected {_quote(self.value)}")]


class Enum(Schema):
    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if isinstance(value, str) and value in self.values:
            return []
        return [Issue(path, "Invalid option: expected one of " + "|".join(_quote(v) for v in self.values))]


class Arr(Schema):
    def __init__(self, item: Schema) -> None:
        self.item = item

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if not isinstance(value, list):
            return _type_issue(path, "array", value)
        out: list[Issue] = []
        for i, element in enumerate(value):
            out.extend(self.item.issues(element, (*path, i)))
        return out


class Record(Schema):
    """``record(string(), value)``."""

    def __init__(self, value: Schema) -> None:
        self.value = value

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if not isinstance(value, dict):
            return _type_issue(path, "record", value)
        out: list[Issue] = []
        for key, item in value.items():
            out.extend(self.value.issues(item, (*path, key)))
        return out


Refinement = tuple[Callable[[dict[str, Any]], bool], tuple[str, ...], str]


class Obj(Schema):
    """An object: ``mode`` is ``strip`` (unknown keys dropped), ``strict`` or ``passthrough``."""

    def __init__(self, shape: dict[str, Schema], mode: str = "strip", refine: Sequence[Refinement] = ()) -> None:
        self.shape, self.mode, self.refine = shape, mode, tuple(refine)

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if not isinstance(value, dict):
            return _type_issue(path, "object", value)
        out: list[Issue] = []
        for key, schema in self.shape.items():
            out.extend(schema.issues(value.get(key, MISSING), (*path, key)))
        if self.mode == "strict":
            unknown = [k for k in value if k not in self.shape]
            if unknown:
                noun = "keys" if len(unknown) > 1 else "key"
                out.append(Issue(path, f"Unrecognized {noun}: " + ", ".join(f'"{k}"' for k in unknown), False))
        if not any(i.aborts for i in out):
            for predicate, at, message in self.refine:
                if not predicate(value):
                    out.append(Issue((*path, *at), message, False))
        return out


class Union(Schema):
    def __init__(self, *options: Schema) -> None:
        self.options = options

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        results = [o.issues(value, path) for o in self.options]
        if any(not r for r in results):
            return []
        standing = [r for r in results if not any(i.aborts for i in r)]
        if len(standing) == 1:
            return standing[0]
        return [Issue(path, "Invalid input")]


class Tagged(Schema):
    """``discriminatedUnion(key, options)``: the option is picked by ``value[key]``."""

    def __init__(self, key: str, options: dict[str, Schema]) -> None:
        self.key, self.options = key, options

    def check(self, value: Any, path: tuple[str | int, ...]) -> list[Issue]:
        if not isinstance(value, dict):
            return _type_issue(path, "object", value)
        tag = value.get(self.key)
        option = self.options.get(tag) if isinstance(tag, str) else None
        if option is None:
            return [Issue((*path, self.key), "Invalid input")]
        return option.issues(value, path)


def first_issue(schema: Schema, value: Any) -> str | None:
    """``"<path>: <message>"`` of the first issue, or ``None`` when ``value`` is valid."""
    found = schema.issues(value, ())
    return found[0].render() if found else None


__all__ = [
    "MISSING",
    "Arr",
    "Bool",
    "Enum",
    "Issue",
    "Literal",
    "Num",
    "Obj",
    "Record",
    "Schema",
    "Str",
    "Tagged",
    "Union",
    "Unknown",
    "first_issue",
    "received",
]
