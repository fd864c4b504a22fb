"""IDX files (the MNIST format): read into numpy without a per-image copy, write, validate.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions,
then one uint32 per dimension) followed by the payload. MNIST uses type 0x08 (unsigned byte):
magic 0x00000801 for labels (1 dimension) and 0x00000803 for images (3 dimensions).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["DatasetError", "read_idx", "parse_idx", "write_idx", "idx_bytes", "IMAGES_MAGIC", "LABELS_MAGIC"]

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
_UBYTE = 0x08
#: The largest payload we agree to read (1 GiB, 1.3 million 28x28 images; MNIST is 47 MB):
#: a header claiming more is corrupt or hostile, not data.
MAX_PAYLOAD = 1 << 30
#: gzip payloads are inflated this much at a time, so a stream that ends early costs only what it holds.
_CHUNK = 1 << 22


class DatasetError(Exception):
    """A dataset file or folder is missing, malformed or inconsistent; the message names it."""


def _header(read, name: str) -> tuple[int, tuple[int, ...]]:
    head = read(4)
    if len(head) < 4:
        raise DatasetError(f"{name}: truncated IDX header ({len(head)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", head)
    magic = struct.unpack(">I", head)[0]
    if zero != 0 or dtype != _UBYTE or ndim not in (1, 3):
        raise DatasetError(
            f"{name}: bad IDX magic 0x{magic:08x} (expected 0x{LABELS_MAGIC:08x} or 0x{IMAGES_MAGIC:08x})"
        )
    dims_raw = read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DatasetError(f"{name}: truncated IDX header (dimensions missing)")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    size = int(np.prod(dims, dtype=np.uint64)) if dims else 0
    if size > MAX_PAYLOAD:
        raise DatasetError(
            f"{name}: IDX header claims {_shape(dims)} = {size:,} bytes, more than the "
            f"{MAX_PAYLOAD >> 30} GiB accepted (corrupt header?)"
        )
    return magic, dims


def _shape(dims: tuple[int, ...]) -> str:
    return "x".join(map(str, dims))


def _length_error(name: str, dims: tuple[int, ...], actual: int) -> DatasetError:
    """The one-line error for a payload of `actual` bytes where the header announced another size."""
    expected = int(np.prod(dims, dtype=np.int64))
    problem = "truncated" if actual < expected else "has trailing bytes"
    return DatasetError(f"{name}: payload {problem}: header says {_shape(dims)} = {expected} bytes, file has {actual}")


def parse_idx(data: bytes | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX buffer; the array is a read-only view of `data` (no copy)."""
    buf = memoryview(data)
    stream = io.BytesIO(buf)  # only the header is read through it
    _magic, dims = _header(stream.read, name)
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=np.int64))
    if len(buf) - offset != expected:
        raise _length_error(name, dims, len(buf) - offset)
    return np.frombuffer(buf, dtype=np.uint8, count=expected, offset=offset).reshape(dims)


def _read_plain(fh: BinaryIO, name: str) -> np.ndarray:
    """Header first, then the payload only if the file's size (fstat) matches it: nothing is read on a mismatch."""
    _magic, dims = _header(fh.read, name)
    expected = int(np.prod(dims, dtype=np.int64))
    available = os.fstat(fh.fileno()).st_size - fh.tell()
    if available != expected:
        raise _length_error(name, dims, available)
    payload = fh.read(expected)
    if len(payload) != expected:  # the file shrank while we read it
        raise _length_error(name, dims, len(payload))
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _read_gzip(gz: BinaryIO, name: str) -> np.ndarray:
    """Header first, then the payload it announces in chunks, stopping where the stream ends."""
    _magic, dims = _header(gz.read, name)
    expected = int(np.prod(dims, dtype=np.int64))
    payload = bytearray()
    while len(payload) < expected:
        chunk = gz.read(min(_CHUNK, expected - len(payload)))
        if not chunk:
            raise _length_error(name, dims, len(payload))
        payload += chunk
    if gz.read(1):
        raise DatasetError(f"{name}: payload has trailing bytes after {expected} bytes")
    return np.frombuffer(memoryview(payload).toreadonly(), dtype=np.uint8).reshape(dims)  # read-only, as plain


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a plain or gzip-compressed IDX file (detected by its bytes, not its name).

    The header is checked first (at most MAX_PAYLOAD) and only the payload it announces is
    read, so a corrupt or hostile header can make us read neither a huge file nor a gzip bomb.
    """
    path = Path(path)
    name = path.name
    try:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
            if not gzipped:
                fh.seek(0)
                return _read_plain(fh, name)
        with gzip.open(path, "rb") as gz:
            return _read_gzip(gz, name)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{name}: file not found ({path})") from None
    except IsADirectoryError:
        raise DatasetError(f"{name}: is a folder, not an IDX file") from None
    except PermissionError:
        raise DatasetError(f"{name}: permission denied ({path})") from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{name}: corrupt gzip stream ({exc})") from None


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array of 1 (labels) or 3 (images) dimensions as an uncompressed IDX file's bytes."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"IDX writer takes uint8 arrays of 1 or 3 dimensions, got {array.dtype} {array.shape}")
    return struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array of 1 (labels) or 3 (images) dimensions as IDX; gzip if the name ends in .gz."""
    path = Path(path)
    data = idx_bytes(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
