"""Where neonize keeps a session's device store while it runs, and how we copy it out.

neonize (whatsmeow) keeps the linked device's keys in SQLite, a file whose path is the client's name (a
`postgres://` name would put them in plain rows instead). The file lives only in memory-backed storage
(`WA_WEB_STORE_DIR`, a tmpfs such as /dev/shm), in a private folder per session, and is deleted when the
session stops; the durable copy is the encrypted one in the channel's credentials, written after every
change. A folder left by a process that died is removed when the next one starts.

Copying a live SQLite file safely: the engine's own SQLite (linked into neonize) writes it from the same
process, so ordinary POSIX locks would not exclude us. We take an open-file-description lock (F_OFD_SETLK)
on SQLite's SHARED byte range, which does conflict with the engine's record locks even within one process:
while we hold it, no transaction can commit, and if one is committing we do not get it and try again on
the next tick. Changes are noticed from SQLite's file change counter (header offset 24), which every
committed write transaction bumps in rollback-journal mode (whatsmeow's default).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite's lock bytes (os_unix.c): SHARED_FIRST = PENDING_BYTE + 2, SHARED_SIZE = 510
PENDING_BYTE = 0x40000000
SHARED_FIRST, SHARED_SIZE = PENDING_BYTE + 2, 510
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)  # Linux


def store_root() -> Path:
    return Path(settings.WA_WEB_STORE_DIR)


def _flock(lock_type: int, start: int, length: int) -> bytes:
    # struct flock on Linux x86-64/arm64: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
    return struct.pack("hhqqi4x", lock_type, os.SEEK_SET, start, length, 0)


def _owner_prefix() -> str:
    return f"{socket.gethostname()}-"


class DeviceStore:
    """One session's SQLite device store in memory-backed storage, restored from and copied out to bytes."""

    def __init__(self, key: str, restored: bytes | None, root: Path | None = None) -> None:
        base = root or store_root()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        safe_key = "".join(c if c.isalnum() else "_" for c in key)
        self.folder = base / f"{_owner_prefix()}{os.getpid()}-{safe_key}-{secrets.token_hex(4)}"
        self.folder.mkdir(mode=0o700)
        self.path = self.folder / "device.db"
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        if restored:
            os.write(descriptor, restored)
            os.fsync(descriptor)
        self._fd: int | None = descriptor  # kept open for the session: the OFD lock and the reads use it
        self._saved_counter = self._counter() if restored else None

    def _counter(self) -> int | None:
        assert self._fd is not None
        header = os.pread(self._fd, 28, 0)
        if len(header) < 28 or not header.startswith(SQLITE_MAGIC):
            return None  # not created by the engine yet
        return int.from_bytes(header[24:28], "big")

    def snapshot_if_changed(self) -> bytes | None:
        """A consistent copy of the store when it changed since the last copy; None when it did not, or when
        a write is under way (the next call gets it)."""
        if self._fd is None:
            return None
        counter = self._counter()
        if counter is None or counter == self._saved_counter:
            return None
        with self.shared_lock() as locked:
            if not locked:
                return None  # the engine is committing
            journal = self.path.with_name(self.path.name + "-journal")
            if journal.exists() and journal.stat().st_size > 0:
                return None  # a transaction is open: take the copy once it settles
            content = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        self._saved_counter = int.from_bytes(content[24:28], "big")
        return content

    @contextlib.contextmanager
    def shared_lock(self) -> Iterator[bool]:
        """SQLite's SHARED lock, taken as an open-file-description lock (see the module docstring); yields
        False at once when a writer holds the database."""
        assert self._fd is not None
        try:
            fcntl.fcntl(self._fd, F_OFD_SETLK, _flock(fcntl.F_RDLCK, SHARED_FIRST, SHARED_SIZE))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                yield False
                return
            raise
        try:
            yield True
        finally:
            fcntl.fcntl(self._fd, F_OFD_SETLK, _flock(fcntl.F_UNLCK, SHARED_FIRST, SHARED_SIZE))

    def close(self) -> None:
        """Overwrite and delete the plaintext store (the engine must have stopped using it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.pwrite(self._fd, b"\x00" * os.fstat(self._fd).st_size, 0)
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self.folder, ignore_errors=True)


def stores_sweep(root: Path | None = None) -> int:
    """Remove the folders of this host's dead processes (a crash skips `close`); returns how many."""
    base = root or store_root()
    if not base.is_dir():
        return 0
    removed = 0
    for folder in base.iterdir():
        name = folder.name
        if not name.startswith(_owner_prefix()):
            continue  # another host sharing the folder owns it
        pid_text = name[len(_owner_prefix()) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        except PermissionError:
            continue  # alive, another user's
    return removed


MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (or its nearest existing parent), from /proc/mounts."""
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    resolved, best, kind = str(target.resolve()), "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind


def store_dir_problem(path: Path) -> str:
    """Why this folder must not hold live device stores, or "" when it is memory-backed."""
    kind = filesystem_of(path)
    if kind and kind not in MEMORY_FILESYSTEMS:
        return f"{path} is on {kind}, not memory-backed storage: session keys would touch the disk"
    return ""
