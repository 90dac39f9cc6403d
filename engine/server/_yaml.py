"""The YAML front matter of a README.md, parsed without a YAML library (see `_card.py` for its use).

PyYAML is not a runtime dependency, so this parses the YAML subset model cards use: block
mappings and sequences (nested up to 32 levels), plain, quoted and block (`|`, `>`) scalars, flow
lists and mappings (`[a, b]`, `{k: v}`), multi-line values, and comments. What it cannot parse
(anchors and aliases, `!tags`, complex keys, tab indentation, escaped line breaks) drops that
key only, never the request. Scalars follow YAML 1.2 core rules (what JSON can hold):
`yes`/`no` and dates stay strings. The parse runs on the server's event loop, so it is one pass
over the lines, and a header over `MAX_FRONT_MATTER_CHARS` (64 KiB) is ignored.
"""

from __future__ import annotations

import re

_MAX_DEPTH = 32
MAX_FRONT_MATTER_CHARS = 64 * 1024  # a longer header is ignored, like a README without one
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/", " ": " ", "b": "\b"}


class _Unparsable(Exception):
    """Raised inside the parser; the key being read is dropped."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _strip_comment(text: str) -> str:
    """Cut a ` #` comment that is not inside quotes."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and (i == 0 or text[i - 1] in " \t[{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _quoted(text: str, start: int = 0) -> tuple[str, int]:
    """Parse the quoted scalar at `text[start]`; return (value, index after the closing quote).

    Positions rather than slices: a flow list of many quoted items is then read in one pass.
    """
    q, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if q == "'" and ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if q == '"' and ch == '"':
            return "".join(out), i + 1
        if q == '"' and ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise _Unparsable(text)
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise _Unparsable(text)  # not closed on this line


def _plain(text: str) -> object:
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text[0] in "&*!|>%@`":
        raise _Unparsable(text)  # anchors, aliases, tags, directives: not in our subset
    return text


def _scalar(text: str) -> object:
    text = text.strip()
    if text[:1] in ("'", '"'):
        value, end = _quoted(text)
        if _strip_comment(text[end:]).strip():
            raise _Unparsable(text)
        return value
    return _plain(_strip_comment(text))


class _Flow:
    """`[a, "b", {k: v}]` and `{k: [v]}` on one logical line."""

    def __init__(self, text: str) -> None:
        self.text, self.i, self.depth = text, 0, 0

    def parse(self) -> object:
        value = self._value()
        if _strip_comment(self.text[self.i :]).strip():
            raise _Unparsable(self.text)
        return value

    def _skip_ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t\n":
            self.i += 1

    def _value(self) -> object:
        self._skip_ws()
        ch = self.text[self.i : self.i + 1]
        if ch == "[":
            return self._seq()
        if ch == "{":
            return self._map()
        if ch in ("'", '"'):
            value, self.i = _quoted(self.text, self.i)
            return value
        start = self.i
        while (
            self.i < len(self.text)
            and self.text[self.i] not in ",]}"
            and self.text[self.i : self.i + 2] != ": "
        ):
            self.i += 1
        return _plain(self.text[start : self.i].strip())

    def _enter(self) -> None:
        # Bounded like block nesting: a `[[[[...` header must not exhaust the stack of the handler.
        self.i += 1
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Unparsable("too deep")

    def _leave(self, closing: str) -> bool:
        """Consume `closing` (ending the innermost collection) if it comes next."""
        self._skip_ws()
        if self.text[self.i : self.i + 1] != closing:
            return False
        self.i += 1
        self.depth -= 1
        return True

    def _seq(self) -> list[object]:
        self._enter()
        out: list[object] = []
        while True:
            if self._leave("]"):
                return out
            out.append(self._value())
            self._expect_separator("]")

    def _map(self) -> dict[str, object]:
        self._enter()
        out: dict[str, object] = {}
        while True:
            if self._leave("}"):
                return out
            key = self._value()
            self._skip_ws()
            if self.text[self.i : self.i + 1] != ":":
                raise _Unparsable(self.text)
            self.i += 1
            out[str(key)] = self._value()
            self._expect_separator("}")

    def _expect_separator(self, closing: str) -> None:
        """After an item: a comma (consumed) or the closing bracket (left for the caller)."""
        self._skip_ws()
        sep = self.text[self.i : self.i + 1]
        if sep == ",":
            self.i += 1
        elif sep != closing:
            raise _Unparsable(self.text)


def _split_key(text: str) -> tuple[str, str] | None:
    """`key: rest` -> (key, rest); None when the line is not a mapping entry."""
    if text[:1] in ("'", '"'):
        try:
            key, end = _quoted(text)
        except _Unparsable:
            return None
        rest = text[end:]
        return (key, rest[1:]) if rest == ":" or rest.startswith((": ", ":\t")) else None
    if text[:1] in "[{?-#&*!|>" and not text.startswith("-"):
        return None
    m = re.match(r"^([^#].*?):(?:[ \t]+|$)", text)
    return (m.group(1).strip(), text[m.end() :]) if m and not _is_item(text) else None


class _Block:
    """Indentation-driven parser over the front-matter lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.i = lines, 0

    def _peek(self) -> tuple[int, str] | None:
        """(indent, text) of the next content line, skipping blanks and comment lines."""
        while self.i < len(self.lines):
            line = self.lines[self.i].rstrip()
            text = line.lstrip(" ")
            if text and not text.startswith("#"):
                if text.startswith("\t"):
                    raise _Unparsable(line)  # YAML forbids tabs for indentation
                return _indent(line), text
            self.i += 1
        return None

    def _skip_deeper(self, indent: int) -> None:
        while (nxt := self._safe_peek()) is not None and nxt[0] > indent:
            self.i += 1

    def _safe_peek(self) -> tuple[int, str] | None:
        """Like _peek, stepping over lines it cannot read."""
        while True:
            try:
                return self._peek()
            except _Unparsable:
                self.i += 1

    def first(self) -> tuple[int, str] | None:
        return self._safe_peek()

    def mapping(self, indent: int, depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        while (nxt := self._safe_peek()) is not None:
            ind, text = nxt
            if ind < indent or (ind == indent and _is_item(text)):
                break
            self.i += 1
            entry = _split_key(text) if ind == indent else None
            if entry is None:
                self._skip_deeper(indent)  # not an entry of this mapping: skip it and what hangs below
                continue
            key, rest = entry
            try:
                out[key] = self.value(rest, indent, depth)
            except (_Unparsable, IndexError, ValueError, RecursionError):
                self._skip_deeper(indent)
        return out

    def sequence(self, indent: int, depth: int) -> list[object]:
        out: list[object] = []
        while (nxt := self._safe_peek()) is not None:
            ind, text = nxt
            if ind != indent or not _is_item(text):
                if ind > indent:
                    raise _Unparsable(text)
                break
            item = text[1:].lstrip(" ")
            item_indent = ind + len(text) - len(item)
            if item and (_is_item(item) or _split_key(item) is not None):
                # `- key: v` or `- - x`: a block opens on the dash's line; its next lines line up
                # with `key` (or the inner dash), so re-read this line as if it started there.
                self.lines[self.i] = " " * item_indent + item
                nested = self.sequence if _is_item(item) else self.mapping
                out.append(nested(item_indent, depth + 1))
            else:
                self.i += 1
                out.append(self.value(item, indent, depth, item=True))
        return out

    def value(self, rest: str, indent: int, depth: int, *, item: bool = False) -> object:
        """The value after `key:` (or `-` when `item`) on a line at `indent`, with the lines that belong to it."""
        if depth > _MAX_DEPTH:
            raise _Unparsable("too deep")
        rest = rest.strip()
        head = _strip_comment(rest)
        if head[:1] in ("|", ">") and re.fullmatch(r"[|>][-+]?[0-9]?", head):
            return self._block_scalar(head, indent)
        if not head:
            nxt = self._peek()  # a tab-indented line right below: the whole value is unreadable
            if nxt is None:
                return None
            if nxt[0] > indent and _is_item(nxt[1]):
                return self.sequence(nxt[0], depth + 1)
            if nxt[0] > indent and _split_key(nxt[1]) is not None:
                return self.mapping(nxt[0], depth + 1)
            if nxt[0] > indent:
                return self._folded_plain("", indent)
            # A key's list may sit at the key's own indentation (`key:\n- a`); after an empty
            # `-` item, a dash at that indentation is the next item, and a shallower one is not ours.
            if nxt[0] == indent and _is_item(nxt[1]) and not item:
                return self.sequence(indent, depth + 1)
            return None
        if head[0] in "[{":
            return _Flow(self._continued(rest, indent)).parse()
        if head[0] not in "'\"":
            return self._folded_plain(head, indent)
        return _scalar(self._continued(rest, indent))

    def _continued(self, rest: str, indent: int) -> str:
        """Join the lines of the flow collection or quoted scalar opening `rest` up to its end,
        folded as YAML does: a line break is a space, each blank line a newline.

        Lines more indented than `indent` continue the value; so does a line that closes a flow
        collection at any indentation (`tags: [` ... `]`), as PyYAML reads it.
        """
        scan = _Scan(rest[0])
        parts = [scan.feed(rest)]
        blanks = 0
        while not scan.done and self.i < len(self.lines):
            line = self.lines[self.i]
            text = line.strip()
            if text and _indent(line) <= indent and not (scan.flow and text[0] in "]}"):
                break
            self.i += 1
            if not text:
                blanks += 1
                continue
            parts.append("\n" * blanks if blanks else " ")
            parts.append(scan.feed(text))
            blanks = 0
        return "".join(parts)

    def _folded_plain(self, head: str, indent: int) -> object:
        """A plain scalar may continue on more-indented lines, folded with spaces."""
        parts = [head] if head else []
        while (nxt := self._safe_peek()) is not None and nxt[0] > indent:
            parts.append(_strip_comment(nxt[1]))
            self.i += 1
        return _plain(" ".join(parts))

    def _block_scalar(self, header: str, indent: int) -> str:
        lines: list[str] = []
        block_indent = None
        while self.i < len(self.lines):
            line = self.lines[self.i].rstrip()
            if line.strip():
                if _indent(line) <= indent:
                    break
                block_indent = _indent(line) if block_indent is None else block_indent
                if _indent(line) < block_indent:
                    break
            lines.append(line[block_indent or 0 :] if line.strip() else "")
            self.i += 1
        while lines and not lines[-1]:
            lines.pop()
        if header[0] == ">":
            text = re.sub(r"(?<!\n)\n(?!\n)", " ", "\n".join(lines)).replace("\n\n", "\n")
        else:
            text = "\n".join(lines)
        chomp = header[1:2]
        return text if chomp == "-" or not text else text + "\n"


class _Scan:
    """Finds where a flow collection or quoted scalar spanning several lines ends, in one pass.

    Each line is fed once and the state (bracket depth, the open quote, a pending escape) carries
    over to the next: re-checking the joined text for every added line made long values quadratic
    (seconds for a 60 KB `tags: [` list, on the event loop).
    """

    def __init__(self, opener: str) -> None:
        self.flow = opener in "[{"
        self.depth = 0
        self.quote = ""  # the quote we are inside, if any
        self.pending = ""  # a backslash in "...", or a ' in '...' that may be the first of ''
        self.done = False

    def feed(self, piece: str) -> str:
        """Scan the next line of the value; return it, cut before a comment outside quotes."""
        if self.pending == "\\":
            self.pending = ""  # the space joining the lines was the escaped character
        prev = " "  # lines are joined by whitespace
        for i, ch in enumerate(piece):
            if self.quote and self._inside(ch):
                prev = ch
                continue
            if self.done:
                break
            if self.flow and ch == "#" and prev in " \t":
                return piece[:i].rstrip()
            if ch in "\"'" and prev in " \t[{,:":
                self.quote = ch
            elif self.flow and ch in "[{":
                self.depth += 1
            elif self.flow and ch in "]}":
                self.depth -= 1
                self.done = self.depth <= 0
            prev = ch
        if self.pending == "'":
            self._close()  # a ' at the end of a line is followed by whitespace: it closes the quote
        return piece

    def _inside(self, ch: str) -> bool:
        """Step over `ch` inside quotes; False when it is the first character after them."""
        if self.pending:
            was, self.pending = self.pending, ""
            if was == "\\" or ch == "'":
                return True  # an escaped character, or the second ' of ''
            self._close()  # the ' before was the closing quote
            return False
        if ch == "\\" and self.quote == '"':
            self.pending = ch
        elif ch == "'" and self.quote == "'":
            self.pending = ch
        elif ch == self.quote:
            self._close()
        return True

    def _close(self) -> None:
        self.quote, self.pending = "", ""
        self.done = self.done or not self.flow


def front_matter_text(text: str) -> str | None:
    """The YAML between a leading `---` line and the next `---` (or `...`) line, if any.

    None as well when that header is longer than `MAX_FRONT_MATTER_CHARS`: it is parsed on the
    event loop for every info and listing request, so its size is bounded whatever the README.
    """
    text = text.lstrip("\ufeff")
    head = text[: MAX_FRONT_MATTER_CHARS + 64]  # room for the `---` lines around a header at the cap
    lines = head.splitlines()
    if len(head) < len(text):
        lines.pop()  # cut short: a closing line here could be the start of a longer line
    if not lines or lines[0].rstrip() != "---":
        return None
    for n, line in enumerate(lines[1:], 1):
        if line.rstrip() in ("---", "..."):
            yaml = "\n".join(lines[1:n])
            return yaml if len(yaml) <= MAX_FRONT_MATTER_CHARS else None
    return None


def parse_front_matter(text: str) -> dict[str, object]:
    """The front matter of a README as a dict; `{}` when there is none or it is not a mapping."""
    yaml = front_matter_text(text)
    if yaml is None:
        return {}
    block = _Block(yaml.splitlines())
    try:
        nxt = block.first()
        return block.mapping(nxt[0], 0) if nxt is not None and not _is_item(nxt[1]) else {}
    except (_Unparsable, IndexError, ValueError, RecursionError):
        return {}  # a card we cannot read must never fail the request that shows it
