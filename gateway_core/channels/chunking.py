"""Splitting replies for a channel's message size, and rendering them for the wire (§5.3 step 7).

Telegram (observed): chunks of at most 4,000 characters, split at line breaks (a line longer than
the limit is split at its last space, else hard); a code fence cut by a chunk boundary is closed
at the end of one chunk and reopened at the start of the next. Each chunk is then rendered from
markdown to Telegram HTML (``parse_mode: "HTML"``), exactly as the published channel renders the
pairing message: paragraphs end with a blank line, fenced code becomes ``<pre><code>…\\n</code></pre>``.

IRC (observed): newlines become spaces and control characters go; chunks are at most 350
characters (and what fits in the 512-byte line after ``PRIVMSG <target> :``), split at word
boundaries when the boundary is in the second half of the chunk, else hard.
"""

from __future__ import annotations

import re
from typing import Final

TELEGRAM_LIMIT: Final = 4000
IRC_LIMIT: Final = 350
IRC_LINE_BYTES: Final = 512
_FENCE = re.compile(r"^\s*(```|~~~)(.*)$")


def _split_long_line(line: str, limit: int) -> list[str]:
    out = []
    while len(line) > limit:
        cut = line.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        out.append(line[:cut].rstrip())
        line = line[cut:].lstrip(" ")
    out.append(line)
    return out


def chunk_lines(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split at line breaks into chunks of at most ``limit`` characters, keeping fences balanced."""
    text = text.strip("\n")
    if not text:
        return []
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None  # the opener line of the fence we are inside
    for raw in text.split("\n"):
        for line in _split_long_line(raw, max(1, limit - 8)) if len(raw) > limit - 8 else [raw]:
            cost = len(line) + (1 if current else 0)
            closing = 4 if fence else 0  # "\n```" to close an open fence
            if current and size + cost + closing > limit:
                body = "\n".join(current)
                if fence:
                    body += "\n```"
                chunks.append(body)
                current = [fence] if fence else []
                size = len(fence) if fence else 0
                cost = len(line) + (1 if current else 0)
            current.append(line)
            size += cost
            m = _FENCE.match(line)
            if m:
                fence = None if fence else line.strip()
    if current and any(s.strip() for s in current):
        chunks.append("\n".join(current))
    return [c.strip("\n") for c in chunks if c.strip()]


# --------------------------------------------------------------------------- Telegram HTML


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_INLINE = re.compile(r"(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\[[^\]\n]+\]\((?:https?|tg|mailto):[^)\s]+\))")


def _inline(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(html_escape(text[pos : m.start()]))
        token = m.group(0)
        if m.group(1):
            out.append(f"<code>{html_escape(token[1:-1])}</code>")
        elif m.group(2):
            out.append(f"<b>{html_escape(token[2:-2])}</b>")
        else:
            label, _, url = token[1:-1].partition("](")
            out.append(f'<a href="{html_escape(url).replace(chr(34), "&quot;")}">{html_escape(label)}</a>')
        pos = m.end()
    out.append(html_escape(text[pos:]))
    return "".join(out)


def telegram_html(markdown: str) -> str:
    """Markdown (as agents write it) → Telegram HTML: paragraphs, fenced code, inline code, bold, links."""
    parts: list[str] = []
    paragraph: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            parts.append(_inline("\n".join(paragraph)) + "\n\n")
            paragraph.clear()

    for line in markdown.split("\n"):
        if code is not None:
            if _FENCE.match(line):
                body = "\n".join(code)
                parts.append(f"<pre><code>{html_escape(body)}\n</code></pre>\n")
                code = None
            else:
                code.append(line)
            continue
        if _FENCE.match(line):
            flush()
            code = []
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
    if code is not None:  # an unclosed fence: render what there is
        parts.append(f"<pre><code>{html_escape(chr(10).join(code))}\n</code></pre>\n")
    flush()
    return "".join(parts).rstrip()


# --------------------------------------------------------------------------- IRC

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def irc_clean(text: str) -> str:
    """One line: newlines become spaces, control characters go."""
    return _CONTROL.sub("", text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")).strip()


def chunk_irc(text: str, target: str, limit: int = IRC_LIMIT) -> list[str]:
    """Split for ``PRIVMSG <target> :<chunk>`` lines (≤ ``limit`` characters and ≤ 512 bytes each)."""
    remaining = irc_clean(text)
    max_bytes = IRC_LINE_BYTES - len(f"PRIVMSG {target} :\r\n".encode())
    chunks = []
    while remaining:
        end = 0
        used = 0
        for ch in remaining:
            size = len(ch.encode())
            if (end > 0 and end + 1 > limit) or used + size > max_bytes:
                break
            end += 1
            used += size
        if end == 0:
            raise ValueError("the IRC target leaves no room for text within the 512-byte line")
        piece = remaining[:end]
        if end < len(remaining) and remaining[end] != " ":
            cut = piece.rfind(" ")
            if cut >= len(piece) // 2:
                piece = piece[:cut]
        piece = piece.strip()
        if piece:
            chunks.append(piece)
        remaining = remaining[len(piece) :].lstrip() if piece else remaining[end:].lstrip()
    return chunks


__all__ = ["IRC_LIMIT", "TELEGRAM_LIMIT", "chunk_irc", "chunk_lines", "html_escape", "irc_clean", "telegram_html"]
