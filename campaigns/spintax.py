"""Spintax: one message written with alternatives, a different wording per contact.

`{Olá|Oi|E aí} {{first_name}}, {tudo bem|como vai}?` picks one alternative of each `{...|...}` group,
groups nest (`{Oi|{Bom dia|Boa tarde}}`), and `{{name}}` placeholders pass through untouched for the
content renderer. `\\{`, `\\}`, `\\|` and `\\\\` write the character itself. The choice is seeded by the
contact (and the text), so a contact's preview is exactly what that contact will get, and a re-send after a
crash sends the same words.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{\{\s*[\w.]+\s*\}\}")
ESCAPABLE = "{}|\\"
MAX_DEPTH = 8


class SpintaxError(ValueError):
    """Unbalanced braces; `position` is the 0-based index in the text where reading failed."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.position = position


@dataclass(frozen=True)
class _Group:
    alternatives: tuple[tuple[str | _Group, ...], ...]


_Sequence = tuple["str | _Group", ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def parse(self) -> _Sequence:
        nodes = self._sequence(depth=0)
        if self.pos < len(self.text):  # only a stray "}" or "|" stops the top level early
            raise SpintaxError("a closing brace without its opening one", self.pos)
        return nodes

    def _sequence(self, depth: int) -> _Sequence:
        text = self.text
        nodes: list[str | _Group] = []
        literal: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in ESCAPABLE:
                literal.append(text[self.pos + 1])
                self.pos += 2
                continue
            placeholder = PLACEHOLDER.match(text, self.pos)
            if placeholder:
                literal.append(placeholder.group(0))
                self.pos = placeholder.end()
                continue
            if char == "{":
                if literal:
                    nodes.append("".join(literal))
                    literal = []
                nodes.append(self._group(depth + 1))
                continue
            if char == "}" or (char == "|" and depth > 0):
                break
            literal.append(char)
            self.pos += 1
        if literal:
            nodes.append("".join(literal))
        return tuple(nodes)

    def _group(self, depth: int) -> _Group:
        start = self.pos
        if depth > MAX_DEPTH:
            raise SpintaxError(f"groups nested more than {MAX_DEPTH} deep", start)
        self.pos += 1  # the "{"
        alternatives = [self._sequence(depth)]
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            alternatives.append(self._sequence(depth))
        if self.pos >= len(self.text) or self.text[self.pos] != "}":
            raise SpintaxError("an opening brace that is never closed", start)
        self.pos += 1
        return _Group(tuple(alternatives))


def spintax_check(text: str) -> str:
    """The reason the text cannot be spun, or "" when it can (for form validation)."""
    try:
        _Parser(text).parse()
    except SpintaxError as exc:
        return str(exc)
    return ""


def _render(nodes: _Sequence, rng: random.Random) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        else:
            out.append(_render(node.alternatives[rng.randrange(len(node.alternatives))], rng))
    return "".join(out)


@functools.lru_cache(maxsize=512)
def _parsed(text: str) -> _Sequence:
    """A campaign's texts are spun once per contact: parsed once (a SpintaxError is not cached)."""
    return _Parser(text).parse()


def spin(text: str, *, seed: str | int) -> str:
    """One variant of the text, the same every time for the same seed (use the contact's id).
    Raises SpintaxError when the braces do not balance."""
    nodes = _parsed(text)
    if not any(isinstance(node, _Group) for node in nodes):  # nothing to choose (most variables)
        return "".join(nodes)  # type: ignore[arg-type]
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    return _render(nodes, random.Random(digest))  # noqa: S311 - wording variety, not a secret


def _count(nodes: _Sequence) -> int:
    return math.prod(sum(_count(alt) for alt in node.alternatives) for node in nodes if isinstance(node, _Group))


def spin_variants(text: str) -> int:
    """How many different wordings the text can produce (1 when it has no groups)."""
    return _count(_Parser(text).parse())


def spin_for_contact(text: str, *, contact_id: int) -> str:
    """The wording this contact gets: the preview and the send call this same function."""
    return spin(text, seed=f"contact:{contact_id}")
