"""A whole model as one POSIX tar stream, laid out ahead so its exact length is known before sending.

Only the 512-byte headers are built in memory; file bodies are streamed from the object store.
The output is byte-for-byte what `tarfile` (PAX format) writes for the same members.
"""
from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import Iterable

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE


@dataclass(frozen=True)
class Member:
    path: str
    size: int
    object_key: str


@dataclass(frozen=True)
class ArchiveEntry:
    member: Member
    header: bytes
    padding: int


def _header(member: Member, mtime: float) -> bytes:
    info = tarfile.TarInfo(member.path)
    info.size = member.size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def layout(members: Iterable[Member], mtime: float) -> tuple[list[ArchiveEntry], bytes]:
    """The entries (header, then body, then zero padding to a block) and the trailer that ends the tar."""
    entries, total = [], 0
    for member in members:
        header = _header(member, mtime)
        padding = -member.size % BLOCK
        entries.append(ArchiveEntry(member, header, padding))
        total += len(header) + member.size + padding
    total += 2 * BLOCK  # two zero blocks end the archive; tarfile pads to a whole record
    trailer = b"\0" * (2 * BLOCK + (-total % RECORD))
    return entries, trailer


def archive_size(entries: list[ArchiveEntry], trailer: bytes) -> int:
    return sum(len(e.header) + e.member.size + e.padding for e in entries) + len(trailer)
