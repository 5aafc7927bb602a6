"""The vector store's on-disk format and its crash-safe save.

Layout (little-endian)::

    b"CLVSTORE"  u32 version  u64 header_len  header (UTF-8 JSON)  vectors (float32)  sha256 (32 bytes)

The JSON header lists each collection (name, dim, metric, ids, payloads, row count); the vectors of
all collections follow as one float32 block. The SHA-256 of everything before it closes the file, so
a truncated or corrupted file is refused whole — never loaded half.

Saving is atomic (the write-to-temp-then-rename pattern of SQLite's journal and of every careful
editor): write a temp file in the same folder, ``flush`` + ``fsync`` it, ``os.replace`` it over the
old file (atomic on POSIX), then ``fsync`` the folder so the rename itself is durable. A process
killed at any instant leaves either the old file or the new one.

A save killed mid-write also leaves its temp file ``.<name>.tmp-<pid>``; no ``except`` clause runs
under SIGKILL. :func:`remove_stale_temps` (called when a store is loaded) deletes such files once
their writer is gone: process ``pid`` no longer exists and nobody holds the ``flock`` that every
save keeps on its temp file (the lock also protects a writer in another PID namespace).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import struct
from pathlib import Path

import numpy as np

MAGIC = b"CLVSTORE"
VERSION = 1
_PREFIX = struct.Struct("<8sIQ")   # magic, version, header length


class StoreFileError(ValueError):
    """The file is not a vector store of a version we read, or it is truncated or corrupted."""


def encode(header: dict, vectors: np.ndarray) -> bytes:
    """The bytes of a store file: magic, version, JSON header, float32 vectors, then their SHA-256."""
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, VERSION, len(head)) + head + np.ascontiguousarray(vectors, "<f4").tobytes()
    return body + hashlib.sha256(body).digest()


def decode(blob: bytes, path: str = "<bytes>") -> tuple[dict, np.ndarray]:
    """Header and vectors of a store file's bytes; :class:`StoreFileError` if ``blob`` is foreign, truncated or corrupt."""
    if len(blob) < _PREFIX.size or blob[:8] != MAGIC:
        raise StoreFileError(f"{path} is not a course vector store file (no {MAGIC!r} magic at the start)")
    _, version, head_len = _PREFIX.unpack_from(blob)
    if version != VERSION:
        raise StoreFileError(f"{path} has format version {version}; this code reads version {VERSION}")
    if len(blob) < _PREFIX.size + head_len + 32:
        raise StoreFileError(f"{path} is truncated ({len(blob)} bytes, header alone needs {_PREFIX.size + head_len + 32})")
    body, digest = blob[:-32], blob[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise StoreFileError(f"{path} is truncated or corrupted (SHA-256 checksum mismatch)")
    header = json.loads(body[_PREFIX.size:_PREFIX.size + head_len].decode())
    vectors = np.frombuffer(body[_PREFIX.size + head_len:], "<f4").astype(np.float32)
    rows = sum(c["count"] * c["dim"] for c in header["collections"])
    if vectors.size != rows:
        raise StoreFileError(f"{path}: header describes {rows} floats, the file holds {vectors.size}")
    return header, vectors


def atomic_write(path: str | os.PathLike, data: bytes, chunk: int = 1 << 20) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)   # held until closed, or until this process dies
            for start in range(0, len(data), chunk):
                f.write(data[start:start + chunk])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)                     # make the rename itself survive a power cut
    finally:
        os.close(fd)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)                  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:              # it exists, under another user
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files that killed saves of ``path`` left behind; returns them.

    A temp file stays while process ``pid`` lives or while any process holds its lock (a save
    still running); other files in the folder are never touched. Cleaning is best effort: a
    folder or file this process may not read or change is left as it is.
    """
    path = Path(path)
    prefix, removed = f".{path.name}.tmp-", []
    try:
        with os.scandir(path.parent) as entries:
            stale = [Path(e.path) for e in entries if e.name.startswith(prefix) and e.is_file(follow_symlinks=False)
                     and re.fullmatch(r"[0-9]+", pid := e.name[len(prefix):]) and not _process_exists(int(pid))]
    except OSError:
        return removed
    for tmp in stale:
        try:
            with open(tmp, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer holds it
                tmp.unlink()
        except OSError:
            continue
        removed.append(tmp)
    return removed


def read(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    """Header and vectors of the store file at ``path`` (see :func:`decode`)."""
    return decode(Path(path).read_bytes(), str(path))
