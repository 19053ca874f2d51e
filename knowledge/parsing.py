"""Text out of what a tenant uploads or points at, and that text cut into overlapping chunks.

Every input is hostile: sizes are capped before parsing, parsers run on bytes only (no paths, no
network), a DOCX is read as a size-checked zip with DOCTYPEs refused (no entity expansion), a PDF's
page count is capped, and any parser failure becomes `ParseFailed` with a message for the user.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from xml.etree import ElementTree

from django.conf import settings
from django.utils.translation import gettext as _

CHUNK_CHARS = 900
CHUNK_OVERLAP = 150
MAX_PDF_PAGES = 500
MAX_QA_ROWS = 5000
MAX_ZIP_MEMBER_BYTES = 30 * 1024 * 1024

QUESTION_HEADERS = {"question", "pergunta", "q", "perguntas", "questions"}
ANSWER_HEADERS = {"answer", "resposta", "a", "respostas", "answers"}


class ParseFailed(Exception):
    """The document cannot be read; the message is for the user (no internals)."""


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


def text_fold(text: str) -> str:
    """Accents folded and case lowered (what PostgreSQL's unaccent does for Latin scripts): `não` and
    `nao` meet in the full-text index. Done here, not in SQL, so it works on a server without the
    unaccent extension (the embedded PostgreSQL has none)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _clean(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = text.strip()
    if len(text) > settings.KNOWLEDGE_MAX_TEXT_CHARS:
        raise ParseFailed(
            _("The document has more than %(n)s characters of text; split it into smaller documents.")
            % {"n": f"{settings.KNOWLEDGE_MAX_TEXT_CHARS:,}"}
        )
    return text


def decode_text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ParseFailed(_("The PDF is password-protected; upload an unprotected copy."))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise ParseFailed(_("The PDF has more than %(n)s pages.") % {"n": MAX_PDF_PAGES})
        pages = [page.extract_text() or "" for page in reader.pages]
    except ParseFailed:
        raise
    except (
        PdfReadError,
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
        OverflowError,
        ZeroDivisionError,
        AssertionError,
    ) as exc:
        raise ParseFailed(_("The file is not a readable PDF.")) from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise ParseFailed(_("The PDF has no text to read (a scan? text in images is not read)."))
    return text


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_text(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > MAX_ZIP_MEMBER_BYTES:
                raise ParseFailed(_("The Word document is too large once unpacked."))
            xml = archive.read(info)
    except ParseFailed:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ParseFailed(_("The file is not a readable Word (.docx) document.")) from exc
    if b"<!DOCTYPE" in xml[:4096].upper() or b"<!ENTITY" in xml.upper():
        raise ParseFailed(_("The file is not a readable Word (.docx) document."))
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 (no DOCTYPE, so no entities to expand)
    except ElementTree.ParseError as exc:
        raise ParseFailed(_("The file is not a readable Word (.docx) document.")) from exc
    paragraphs = []
    for paragraph in root.iter(f"{_W}p"):
        parts = []
        for node in paragraph.iter():
            if node.tag == f"{_W}t" and node.text:
                parts.append(node.text)
            elif node.tag == f"{_W}tab":
                parts.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
        paragraphs.append("".join(parts))
    return "\n\n".join(p for p in paragraphs if p.strip())


class _HtmlText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head", "nav", "footer"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self._skip:
            self.parts.append(data)


def html_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a web page."""
    parser = _HtmlText()
    try:
        parser.feed(decode_text(data))
        parser.close()
    except (AssertionError, ValueError) as exc:
        raise ParseFailed(_("The page could not be read.")) from exc
    return parser.title.strip(), "".join(parser.parts)


def qa_csv(data: bytes) -> list[QA]:
    """Question/answer pairs of a CSV: a header naming the columns (question/answer, pergunta/resposta)
    or, without one, the first two columns. Comma or semicolon separated (Brazilian spreadsheets)."""
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ParseFailed(_("The CSV file could not be read: %(error)s") % {"error": exc}) from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ParseFailed(_("The CSV file has no rows."))
    header = [cell.strip().lower() for cell in rows[0]]
    q_col, a_col = 0, 1
    if set(header) & QUESTION_HEADERS and set(header) & ANSWER_HEADERS:
        q_col = next(i for i, h in enumerate(header) if h in QUESTION_HEADERS)
        a_col = next(i for i, h in enumerate(header) if h in ANSWER_HEADERS)
        rows = rows[1:]
    if len(rows) > MAX_QA_ROWS:
        raise ParseFailed(_("The CSV file has more than %(n)s rows.") % {"n": MAX_QA_ROWS})
    pairs = []
    for row in rows:
        if len(row) <= max(q_col, a_col):
            continue
        question, answer = row[q_col].strip(), row[a_col].strip()
        if question and answer:
            pairs.append(QA(question[:4000], answer[:20000]))
    if not pairs:
        raise ParseFailed(_("The CSV file has no question/answer pairs (two columns: question, answer)."))
    return pairs


def file_text(kind: str, data: bytes) -> str:
    """The text of an uploaded file of this kind (`txt`, `markdown`, `pdf`, `docx`)."""
    if kind == "pdf":
        return _clean(pdf_text(data))
    if kind == "docx":
        return _clean(docx_text(data))
    if b"\x00" in data[:8192]:
        raise ParseFailed(_("The file is not a text file."))
    return _clean(decode_text(data))


# --- chunking ---------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def _sections(text: str, *, markdown: bool) -> list[tuple[str, str]]:
    """(heading, body) pairs: Markdown headings start a section (the heading goes with each of its chunks,
    so a passage keeps what it is about)."""
    if not markdown:
        return [("", text)]
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []  # the headings above this line: (level, title)
    heading, lines = "", list[str]()
    for line in text.split("\n"):
        match = _HEADING.match(line)
        if match:
            if "".join(lines).strip():
                sections.append((heading, "\n".join(lines)))
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2).strip())]
            heading, lines = " > ".join(title for _lvl, title in path), []
        else:
            lines.append(line)
    if "".join(lines).strip() or not sections:
        sections.append((heading, "\n".join(lines)))
    return sections


def _pieces(body: str, size: int) -> list[str]:
    """Paragraphs, then sentences, then hard cuts: no piece longer than `size`."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= size:
            out.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                out.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                out.append(sentence)
    return out


def chunk_text(
    text: str, *, markdown: bool = False, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP
) -> list[str]:
    """Chunks of about `size` characters; each begins with the last ~`overlap` characters of the one
    before it (whole pieces where possible), so a fact cut at a boundary is whole in one of them."""
    chunks: list[str] = []
    for heading, body in _sections(text, markdown=markdown):
        prefix = f"{heading}\n" if heading else ""
        budget = max(size - len(prefix), size // 2)
        current: list[str] = []
        length = 0
        for piece in _pieces(body, budget):
            if current and length + len(piece) + 1 > budget:
                chunks.append(prefix + "\n".join(current))
                tail: list[str] = []
                tail_len = 0
                for previous in reversed(current):
                    if tail_len + len(previous) > overlap:
                        break
                    tail.insert(0, previous)
                    tail_len += len(previous) + 1
                if not tail and overlap:
                    last = current[-1]
                    cut = last.find(" ", max(0, len(last) - overlap))
                    tail = [last[cut + 1 :]] if cut >= 0 else []
                    tail_len = len(tail[0]) if tail else 0
                current, length = tail, tail_len
            current.append(piece)
            length += len(piece) + 1
        if current:
            chunks.append(prefix + "\n".join(current))
    return [c.strip() for c in chunks if c.strip()]


def qa_chunk(pair: QA) -> str:
    return f"{pair.question}\n{pair.answer}"
