"""Schema validation with the published gateway's exact error texts (§3.2 row 6, §7.3 step 12).

msgspec does the validating (fast path). When a value fails, :func:`schema_errors` walks the same
msgspec type (via ``msgspec.inspect``) the way the published gateway's validator walks its
schemas, so the text matches byte for byte, for example::

    at /client: must have required property 'version'; at /client/id: must be equal to one of the allowed values
    at root: unexpected property 'extra'
    must have required property 'id'
    at /mode: must be equal to constant; at /mode: must match a schema in anyOf

Rules (observed against the published gateway, see conformance/README.md):

* Per object: a type error stops the walk at that node; else the *first* missing required property
  (declaration order), then the *first* unknown property (in the order received), then each
  declared property that is present, depth first, in declaration order.
* A tagged Struct is an object whose first property is its tag field with a constant value.
* ``Literal`` is an enum ("must be equal to one of the allowed values"); a union, or a ``Literal``
  marked ``Meta(extra={"anyOf": True})``, reports every branch's errors then "must match a schema
  in anyOf".
* Each unknown property first yields a hidden "schema is false" error at its own path; the summary
  "unexpected property" error hides them. At most 8 raw errors are kept, so with 8 or more unknown
  properties the summary is cut off and the hidden errors show (a quirk kept for fidelity).
* Texts are de-duplicated and joined with "; ". Only "unexpected property" on the root is prefixed
  "at root: "; other root errors have no prefix; deeper errors are prefixed "at <json-pointer>: ".
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import msgspec
import msgspec.inspect as mi

T = TypeVar("T")

MAX_ERRORS: Final = 8

_TYPE_WORDS: Final = {
    mi.StrType: "string",
    mi.IntType: "integer",
    mi.FloatType: "number",
    mi.BoolType: "boolean",
    mi.NoneType: "null",
    mi.ListType: "array",
    mi.DictType: "object",
    mi.StructType: "object",
}


class _Err:
    """One raw validator error."""

    __slots__ = ("owner", "path", "text", "kind")

    def __init__(self, path: str, text: str, kind: str = "", owner: str | None = None) -> None:
        self.path = path
        self.text = text
        self.kind = kind  # "" | "additional" | "hidden" | "summary-owner"
        self.owner = owner


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _js_len(text: str) -> int:
    """String length as JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Walker:
    def __init__(self, every_unknown: bool = False) -> None:
        self.errors: list[_Err] = []
        self.every_unknown = every_unknown

    def walk(self, value: Any, t: mi.Type, path: str, any_of: bool = False) -> None:
        if isinstance(t, mi.Metadata):
            extra = t.extra or {}
            self.walk(value, t.type, path, any_of=bool(extra.get("anyOf")))
            return
        if isinstance(t, mi.AnyType):
            return
        if isinstance(t, mi.UnionType):
            self._union(value, list(t.types), path)
            return
        if isinstance(t, mi.LiteralType):
            if value in t.values and type(value) in {type(v) for v in t.values}:
                return
            if len(t.values) == 1:
                self.errors.append(_Err(path, "must be equal to constant"))
            elif any_of:
                self._union(value, [mi.LiteralType(values=(v,)) for v in t.values], path)
            else:
                self.errors.append(_Err(path, "must be equal to one of the allowed values"))
            return
        if isinstance(t, mi.StructType):
            self._object(value, t, path)
            return
        if isinstance(t, mi.StrType):
            if not isinstance(value, str):
                self.errors.append(_Err(path, "must be string"))
                return
            n = _js_len(value) if (t.min_length is not None or t.max_length is not None) else 0
            if t.min_length is not None and n < t.min_length:
                self.errors.append(_Err(path, f"must not have fewer than {t.min_length} characters"))
            if t.max_length is not None and n > t.max_length:
                self.errors.append(_Err(path, f"must not have more than {t.max_length} characters"))
            if t.pattern is not None and re.search(t.pattern, value) is None:
                self.errors.append(_Err(path, f'must match pattern "{t.pattern}"'))
            return
        if isinstance(t, (mi.IntType, mi.FloatType)):
            ok = _is_int(value) if isinstance(t, mi.IntType) else _is_number(value)
            if not ok:
                self.errors.append(_Err(path, f"must be {_TYPE_WORDS[type(t)]}"))
                return
            for bound, op in ((t.ge, ">="), (t.le, "<="), (t.gt, ">"), (t.lt, "<")):
                if bound is None:
                    continue
                fails = {
                    ">=": value < bound,
                    "<=": value > bound,
                    ">": value <= bound,
                    "<": value >= bound,
                }[op]
                if fails:
                    self.errors.append(_Err(path, f"must be {op} {bound}"))
            return
        if isinstance(t, mi.BoolType):
            if not isinstance(value, bool):
                self.errors.append(_Err(path, "must be boolean"))
            return
        if isinstance(t, mi.NoneType):
            if value is not None:
                self.errors.append(_Err(path, "must be null"))
            return
        if isinstance(t, mi.ListType):
            if not isinstance(value, list):
                self.errors.append(_Err(path, "must be array"))
                return
            if t.min_length is not None and len(value) < t.min_length:
                self.errors.append(_Err(path, f"must not have fewer than {t.min_length} items"))
            if t.max_length is not None and len(value) > t.max_length:
                self.errors.append(_Err(path, f"must not have more than {t.max_length} items"))
            for i, item in enumerate(value):
                self.walk(item, t.item_type, f"{path}/{i}")
            return
        if isinstance(t, mi.DictType):
            if not isinstance(value, dict):
                self.errors.append(_Err(path, "must be object"))
                return
            for key, item in value.items():
                self.walk(item, t.value_type, f"{path}/{_escape(str(key))}")
            return
        # Types this project's schemas do not use: accept rather than invent a message.

    def _union(self, value: Any, types: list[mi.Type], path: str) -> None:
        collected: list[_Err] = []
        for branch in types:
            sub = _Walker(self.every_unknown)
            sub.walk(value, branch, path)
            if not sub.errors:
                return
            collected.extend(sub.errors)
        self.errors.extend(collected)
        self.errors.append(_Err(path, "must match a schema in anyOf"))

    def _object(self, value: Any, t: mi.StructType, path: str) -> None:
        if not isinstance(value, dict):
            self.errors.append(_Err(path, "must be object"))
            return
        declared: list[tuple[str, mi.Type | None, bool]] = []
        if t.tag_field is not None:
            declared.append((t.tag_field, None, True))
        declared.extend((f.encode_name, f.type, f.required) for f in t.fields)
        for name, _type, required in declared:
            if required and name not in value:
                self.errors.append(_Err(path, f"must have required property '{name}'"))
                break
        if t.forbid_unknown_fields:
            known = {name for name, _, _ in declared}
            extras = [k for k in value if k not in known]
            if self.every_unknown:
                for k in extras:
                    self.errors.append(_Err(f"{path}/{_escape(str(k))}", "unknown key", "unknown", owner=path))
            else:
                for k in extras:
                    self.errors.append(_Err(f"{path}/{_escape(str(k))}", "schema is false", "hidden", owner=path))
                if extras:
                    self.errors.append(_Err(path, f"unexpected property '{extras[0]}'", "additional", owner=path))
        for name, ftype, _required in declared:
            if name not in value:
                continue
            child = f"{path}/{_escape(name)}"
            if ftype is None:
                if value[name] != t.tag:
                    self.errors.append(_Err(child, "must be equal to constant"))
                continue
            self.walk(value[name], ftype, child)


def _render(errors: list[_Err]) -> str:
    kept = errors[:MAX_ERRORS]
    summarised = {e.owner for e in kept if e.kind == "additional"}
    parts: list[str] = []
    for e in kept:
        if e.kind == "hidden" and e.owner in summarised:
            continue
        if e.path:
            text = f"at {e.path}: {e.text}"
        elif e.kind == "additional":
            text = f"at root: {e.text}"
        else:
            text = e.text
        if text not in parts:
            parts.append(text)
    return "; ".join(parts) if parts else "unknown validation error"


_TYPE_INFO: dict[Any, mi.Type] = {}


def schema_errors(value: Any, schema: Any) -> str | None:
    """The published gateway's error text for ``value`` against ``schema``, or ``None`` if valid."""
    t = _TYPE_INFO.get(schema)
    if t is None:
        t = _TYPE_INFO[schema] = mi.type_info(schema)
    walker = _Walker()
    walker.walk(value, t, "")
    return _render(walker.errors) if walker.errors else None


def all_errors(value: Any, schema: Any) -> list[tuple[str, str]]:
    """Every problem, uncapped, as ``(dotted.path, message)``; each unknown key reported on its own.

    For configuration files, where an operator wants the whole list at once.
    """
    t = _TYPE_INFO.get(schema)
    if t is None:
        t = _TYPE_INFO[schema] = mi.type_info(schema)
    walker = _Walker(every_unknown=True)
    walker.walk(value, t, "")
    out: list[tuple[str, str]] = []
    for e in walker.errors:
        dotted = ".".join(part.replace("~1", "/").replace("~0", "~") for part in e.path.split("/")[1:])
        item = (dotted, e.text)
        if item not in out:
            out.append(item)
    return out


class SchemaError(ValueError):
    """A value failed a schema; ``text`` is the wire wording (without any "invalid X:" lead)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def convert(obj: Any, schema: type[T]) -> T:
    """Validate decoded JSON against ``schema``; raise :class:`SchemaError` with the wire text."""
    try:
        return msgspec.convert(obj, schema)
    except msgspec.ValidationError as err:
        raise SchemaError(schema_errors(obj, schema) or _fallback(err)) from None


def _fallback(err: msgspec.ValidationError) -> str:
    """Should the walker find nothing where msgspec failed, still give a useful text."""
    message = str(err)
    if " - at `$" in message:
        message, _, where = message.partition(" - at `$")
        return f"at {where.rstrip('`').replace('.', '/')}: {message}"
    return message


__all__ = ["MAX_ERRORS", "SchemaError", "all_errors", "convert", "schema_errors"]
