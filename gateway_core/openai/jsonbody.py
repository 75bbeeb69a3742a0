"""Request bodies as the published gateway reads them: trimmed, empty is ``{}``, else ``JSON.parse``.

A body that is not JSON is a 400 whose message is V8's ``JSON.parse`` text (b19: ``Expected
double-quoted property name in JSON at position 20 (line 1 column 21)``). Python's parser finds the
same documents invalid but words it differently, so on failure :func:`v8_json_error` re-scans the
text the way V8's JSON parser does and names the first problem in V8's words. The scan only runs
for bodies that already failed. Positions count UTF-16 code units, as JavaScript strings do.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

#: What ``String.prototype.trim`` removes: ECMAScript WhiteSpace and LineTerminator.
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JSON_WS: Final = " \t\n\r"
#: V8 gives context (``…"<10 chars either side>"…``) only for sources at least this long.
_CONTEXT_CHARS: Final = 10
_SPECIAL: Final = frozenset({"undefined", "NaN", "Infinity", "[object Object]"})
_ESCAPES: Final = frozenset('"\\/bfnrtu')
_HEX: Final = frozenset("0123456789abcdefABCDEF")

#: V8's messages (messages.h, kJsonParse*), by the name used below.
MESSAGES: Final[dict[str, str]] = {
    "eos": "Unexpected end of JSON input",
    "number": "Unexpected number in JSON at position {at}",
    "prop_or_brace": "Expected property name or '}}' in JSON at position {at}",
    "comma_or_bracket": "Expected ',' or ']' after array element in JSON at position {at}",
    "comma_or_brace": "Expected ',' or '}}' after property value in JSON at position {at}",
    "colon": "Expected ':' after property name in JSON at position {at}",
    "quoted_name": "Expected double-quoted property name in JSON at position {at}",
    "unterminated_string": "Unterminated string in JSON at position {at}",
    "control": "Bad control character in string literal in JSON at position {at}",
    "unicode_escape": "Bad Unicode escape in JSON at position {at}",
    "escape": "Bad escaped character in JSON at position {at}",
    "minus": "No number after minus sign in JSON at position {at}",
    "fraction": "Unterminated fractional number in JSON at position {at}",
    "exponent": "Exponent part is missing a number in JSON at position {at}",
    "trailing": "Unexpected non-whitespace character after JSON at position {at}",
}


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


class BadJson(ValueError):
    """The body is not JSON; ``message`` is V8's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_body(body: bytes) -> Any:
    """The body's JSON value (``{}`` when it is empty or blank); raises :class:`BadJson`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")  # Node's Buffer.toString("utf8") replaces too
    text = js_trim(text)
    if not text:
        return {}
    try:
        return msgspec.json.decode(text.encode("utf-8", "surrogatepass"))
    except (msgspec.DecodeError, UnicodeError):
        pass
    try:
        _Scanner(text).document()
    except _Stop as stop:
        raise BadJson(_render(text, stop.kind, stop.at)) from None
    return json.loads(text)  # valid JSON msgspec refuses (lone surrogate escapes): the stdlib takes it


class _Stop(Exception):
    def __init__(self, kind: str, at: int) -> None:
        self.kind = kind
        self.at = at


def v8_json_error(text: str) -> str:
    """V8's ``JSON.parse`` message for ``text`` (which must be invalid JSON)."""
    try:
        _Scanner(text).document()
    except _Stop as stop:
        return _render(text, stop.kind, stop.at)
    return MESSAGES["eos"]  # valid to this scanner (e.g. a lone surrogate): V8 would have parsed it


def _utf16(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le", "surrogatepass")) // 2


def _render(text: str, kind: str, at: int) -> str:
    if kind == "eos":
        return MESSAGES["eos"]
    if kind == "token":
        return _unexpected_token(text, at)
    pos = _utf16(text, at)
    line, start = 1, 0
    i = 0
    while i < at:  # \r\n, \r and \n each end a line
        ch = text[i]
        if ch == "\r" and i + 1 < at and text[i + 1] == "\n":
            i += 1
        if ch in "\r\n":
            line, start = line + 1, i + 1
        i += 1
    column = pos - _utf16(text, start) + 1
    return MESSAGES[kind].format(at=pos) + f" (line {line} column {column})"


def _unexpected_token(text: str, at: int) -> str:
    if text in _SPECIAL:
        return f'"{text}" is not valid JSON'
    token = text[at]
    units = text.encode("utf-16-le", "surrogatepass")
    length = len(units) // 2
    pos = _utf16(text, at)

    def cut(a: int, b: int) -> str:
        return units[2 * a : 2 * b].decode("utf-16-le", "replace")

    if length < 2 * _CONTEXT_CHARS + 1:
        return f"Unexpected token '{token}', \"{text}\" is not valid JSON"
    if pos < _CONTEXT_CHARS:
        return f"Unexpected token '{token}', \"{cut(0, pos + _CONTEXT_CHARS)}\"... is not valid JSON"
    if pos < length - _CONTEXT_CHARS:
        return f"Unexpected token '{token}', ...\"{cut(pos - _CONTEXT_CHARS, pos + _CONTEXT_CHARS)}\"... is not valid JSON"
    return f"Unexpected token '{token}', ...\"{cut(pos - _CONTEXT_CHARS, length)}\" is not valid JSON"


class _Scanner:
    """A JSON recognizer that stops where, and with the complaint, V8's parser would."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else ""

    def ws(self) -> None:
        while self.i < self.n and self.s[self.i] in _JSON_WS:
            self.i += 1

    def fail(self, kind: str) -> _Stop:
        return _Stop(kind, self.i)

    def document(self) -> None:
        self.value()
        self.ws()
        if self.i < self.n:
            raise self.fail("trailing")

    def value(self) -> None:
        self.ws()
        c = self.peek()
        if not c:
            raise self.fail("eos")
        if c == '"':
            self.string()
        elif c == "{":
            self.obj()
        elif c == "[":
            self.array()
        elif c == "-" or c.isdigit() and c.isascii():
            self.number()
        elif c in "tfn":
            self.literal({"t": "true", "f": "false", "n": "null"}[c])
        else:
            raise self.fail("token")

    def literal(self, word: str) -> None:
        for expected in word:
            c = self.peek()
            if not c:
                raise self.fail("eos")
            if c != expected:
                raise self.fail("token")
            self.i += 1

    def obj(self) -> None:
        self.i += 1
        self.ws()
        if self.peek() == "}":
            self.i += 1
            return
        if self.peek() != '"':
            raise self.fail("prop_or_brace")
        while True:
            self.string()
            self.ws()
            if self.peek() != ":":
                raise self.fail("colon")
            self.i += 1
            self.value()
            self.ws()
            c = self.peek()
            if c == ",":
                self.i += 1
                self.ws()
                if self.peek() != '"':
                    raise self.fail("quoted_name")
                continue
            if c == "}":
                self.i += 1
                return
            raise self.fail("comma_or_brace")

    def array(self) -> None:
        self.i += 1
        self.ws()
        if self.peek() == "]":
            self.i += 1
            return
        while True:
            self.value()
            self.ws()
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if c == "]":
                self.i += 1
                return
            raise self.fail("comma_or_bracket")

    def string(self) -> None:
        self.i += 1
        while True:
            c = self.peek()
            if not c:
                raise self.fail("unterminated_string")
            if c == '"':
                self.i += 1
                return
            if ord(c) < 0x20:
                raise self.fail("control")
            if c == "\\":
                self.i += 1
                e = self.peek()
                if not e:
                    raise self.fail("eos")
                if e not in _ESCAPES:
                    raise self.fail("escape")
                self.i += 1
                if e == "u":
                    for _ in range(4):
                        if self.peek() not in _HEX or not self.peek():
                            raise self.fail("unicode_escape")
                        self.i += 1
                continue
            self.i += 1

    def digits(self) -> bool:
        start = self.i
        while self.i < self.n and "0" <= self.s[self.i] <= "9":
            self.i += 1
        return self.i > start

    def number(self) -> None:
        if self.peek() == "-":
            self.i += 1
            if not ("0" <= self.peek() <= "9") or not self.peek():
                raise self.fail("minus")
        if self.peek() == "0":
            self.i += 1
            if self.peek() and "0" <= self.peek() <= "9":
                raise self.fail("number")
        else:
            self.digits()
        if self.peek() == ".":
            self.i += 1
            if not self.digits():
                raise self.fail("fraction")
        if self.peek() in ("e", "E") and self.peek():
            self.i += 1
            if self.peek() in ("+", "-") and self.peek():
                self.i += 1
            if not self.digits():
                raise self.fail("exponent")


__all__ = ["JS_WHITESPACE", "MESSAGES", "BadJson", "js_trim", "parse_body", "v8_json_error"]
