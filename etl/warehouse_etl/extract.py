"""Finding a batch's files and streaming them, never whole, towards COPY.

Big plain files are cut into byte ranges on line boundaries so several
connections can COPY them at once; the pre-pass that finds the cuts also
computes the checksum and line numbers, so every staged row keeps the exact
source line it came from.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import contract
from .errors import InputError

BLOCK = 1 << 20
# Plain files above this size are split so that parallel COPYs balance.
PART_BYTES = 96 << 20
MAX_PARTS = 32

Progress = Callable[[int], None]


@dataclass
class SourceFile:
    table: contract.Table
    path: Path
    compressed: bool
    fmt: str  # "tbl" or "csv"
    size: int
    sha256: str = ""
    trailing_delimiter: bool = False
    parts: list[FilePart] = field(default_factory=list)

    @property
    def delimiter(self) -> str:
        return "|" if self.fmt == "tbl" else ","

    @property
    def header(self) -> bool:
        return self.fmt == "csv"


@dataclass(frozen=True)
class FilePart:
    index: int
    start: int
    end: int | None  # None: to the end (always the case for compressed files)
    first_line: int  # physical line number of the part's first line, 1-based

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start


def discover(batch_dir: Path) -> list[SourceFile]:
    """One file per contract table, in load order; any missing file is an input error."""
    if not batch_dir.is_dir():
        raise InputError(f"{batch_dir}: batch directory does not exist")
    files = []
    missing = []
    for table in contract.TABLES:
        found = [batch_dir / f"{table.name}{s}" for s in contract.SUFFIXES]
        found = [p for p in found if p.exists()]
        if not found:
            missing.append(f"{table.name}{{{','.join(contract.SUFFIXES)}}}")
            continue
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InputError(f"{batch_dir}: several files for table {table.name}: {names}")
        path = found[0]
        compressed = path.name.endswith(".gz")
        fmt = "csv" if ".csv" in path.name else "tbl"
        files.append(SourceFile(table, path, compressed, fmt, path.stat().st_size))
    if missing:
        raise InputError(f"{batch_dir}: missing input file(s): {', '.join(missing)}")
    return files


def _open(src: SourceFile) -> Iterator[bytes]:
    """Raw (decompressed) blocks of the whole file."""
    try:
        if src.compressed:
            with gzip.open(src.path, "rb") as fh:
                while block := fh.read(BLOCK):
                    yield block
        else:
            with src.path.open("rb") as fh:
                while block := fh.read(BLOCK):
                    yield block
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{src.path}: cannot read: {exc}") from exc


def _first_line(src: SourceFile) -> bytes:
    buf = b""
    for block in _open(src):
        buf += block
        if b"\n" in buf or len(buf) > 1 << 24:
            break
    return buf.split(b"\n", 1)[0].rstrip(b"\r")


def inspect(src: SourceFile) -> None:
    """Check the first line's shape and note whether lines end in a delimiter.

    dbgen writes a trailing ``|`` on every line and many hand-made exports do
    not; accepting both (decided from line 1) keeps the contract forgiving
    while COPY still rejects any later line whose field count differs.
    """
    first = _first_line(src)
    ncols = len(src.table.columns)
    if not first:
        src.trailing_delimiter = src.fmt == "tbl"
        return
    if src.fmt == "csv":
        return  # COPY ... HEADER MATCH checks the header names and count
    fields = first.split(b"|")
    if len(fields) == ncols + 1 and fields[-1] == b"":
        src.trailing_delimiter = True
    elif len(fields) == ncols:
        src.trailing_delimiter = False
    else:
        raise InputError(
            f"{src.path}:1: expected {ncols} '|'-separated fields for table "
            f"{src.table.name}, found {len(fields)}"
        )


def prepass(src: SourceFile, progress: Progress | None = None) -> None:
    """Checksum the file and cut plain ``.tbl`` files into line-aligned parts."""
    digest = hashlib.sha256()
    splittable = not src.compressed and src.fmt == "tbl" and src.size > PART_BYTES
    nparts = min(MAX_PARTS, -(-src.size // PART_BYTES)) if splittable else 1
    targets = [src.size * k // nparts for k in range(1, nparts)]
    cuts: list[tuple[int, int]] = [(0, 1)]  # (byte offset, line number at that offset)
    offset = 0
    lines = 0
    pending = 0  # index into targets of the next cut we are looking for
    try:
        with src.path.open("rb") as fh:
            while block := fh.read(BLOCK):
                digest.update(block)
                if splittable:
                    while pending < len(targets) and targets[pending] < offset + len(block):
                        rel = max(0, targets[pending] - offset)
                        nl = block.find(b"\n", rel)
                        if nl < 0:
                            break  # the cut falls in the next block
                        cut = offset + nl + 1
                        if cut > cuts[-1][0] and cut < src.size:
                            cuts.append((cut, lines + block.count(b"\n", 0, nl + 1) + 1))
                        pending += 1
                    lines += block.count(b"\n")
                offset += len(block)
                if progress:
                    progress(len(block))
    except OSError as exc:
        raise InputError(f"{src.path}: cannot read: {exc}") from exc
    src.sha256 = digest.hexdigest()
    bounds = [c[0] for c in cuts[1:]]
    src.parts = [
        FilePart(i, start, bounds[i] if i < len(bounds) else None, line)
        for i, (start, line) in enumerate(cuts)
    ]


def stream(src: SourceFile, part: FilePart, progress: Progress | None = None) -> Iterator[bytes]:
    """Blocks of one part, decompressed, as COPY wants them."""
    if src.compressed:
        for block in _open(src):
            yield block
            if progress:
                progress(len(block))
        return
    try:
        with src.path.open("rb") as fh:
            fh.seek(part.start)
            left = part.length
            while left is None or left > 0:
                block = fh.read(BLOCK if left is None else min(BLOCK, left))
                if not block:
                    break
                if left is not None:
                    left -= len(block)
                yield block
                if progress:
                    progress(len(block))
    except OSError as exc:
        raise InputError(f"{src.path}: cannot read: {exc}") from exc
