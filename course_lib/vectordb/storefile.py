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
"""

from __future__ import annotations

import hashlib
import json
import os
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


def read(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    """Header and vectors of the store file at ``path`` (see :func:`decode`)."""
    return decode(Path(path).read_bytes(), str(path))
