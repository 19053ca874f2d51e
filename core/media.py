"""Files from untrusted hands (customers' media, staff uploads): clean names, what may show inline, and the
headers every served file carries, so a document named `fatura.html` can never run in the tenant's origin."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from pathlib import PurePosixPath

# Shown inline (previews in the inbox); everything else, SVG and HTML above all, is a download.
INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "video/mp4",
        "video/3gpp",
    }
)
# A sandbox with nothing allowed: even if a browser rendered the file as a page, no script, form or
# request could run in the tenant's origin.
MEDIA_CSP = "sandbox; default-src 'none'"
MAX_FILENAME = 120

# Types staff may attach to a reply: what WhatsApp and MMS carry (PROVIDERS.md §1.1), by extension.
UPLOAD_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".3gp": "video/3gpp",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".amr": "audio/amr",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

_SPACES = re.compile(r"\s+")


def filename_clean(name: str, *, limit: int = MAX_FILENAME) -> str:
    """A customer-supplied file name made safe to store and show: no directories, no control or
    bidirectional-format characters (so "fatura\u202efdp.exe" cannot pose as a PDF), no leading dots,
    at most `limit` characters with the extension kept. "" when nothing is left."""
    text = unicodedata.normalize("NFC", str(name))
    text = text.replace("\\", "/").split("/")[-1]
    text = _SPACES.sub(" ", text)  # tabs and line breaks are spaces, then other control characters go
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _SPACES.sub(" ", text).strip().lstrip(".").strip()
    if len(text) > limit:
        suffix = PurePosixPath(text).suffix
        suffix = suffix if 1 < len(suffix) <= 10 else ""
        text = text[: limit - len(suffix)].rstrip() + suffix
    return text


# Our own table (not the system's mime.types, which differs between machines).
INLINE_BY_EXTENSION = {ext: mime for ext, mime in UPLOAD_TYPES.items() if mime in INLINE_TYPES}
EXTENSION_OF = {
    **{mime: ext for ext, mime in UPLOAD_TYPES.items()},
    "image/jpeg": ".jpg",
    "audio/ogg": ".ogg",
}


def served_type(name: str) -> tuple[str, bool]:
    """(Content-Type, inline?) for a stored file, from its name. Only INLINE_TYPES show inline; every
    other file is served as an application/octet-stream attachment."""
    found = INLINE_BY_EXTENSION.get(PurePosixPath(name.lower()).suffix)
    if found is not None:
        return found, True
    return "application/octet-stream", False


def extension_for(mime: str) -> str:
    """A file extension for content of this media type (".bin" when unknown)."""
    base = mime.split(";")[0].strip().lower()
    return EXTENSION_OF.get(base) or mimetypes.guess_extension(base) or ".bin"


def upload_type(name: str) -> str | None:
    """The media type of a staff upload, by extension; None when that kind of file is not accepted."""
    return UPLOAD_TYPES.get(PurePosixPath(name.lower()).suffix)
