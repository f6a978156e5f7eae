"""Reading an image file or zip member with a hard cap on the bytes it inflates to, whatever its header says.

zipfile stops each read of a stored or deflated member at the length asked for, so reading in chunks
bounds those. It hands bzip2 and LZMA data to their decompressors without a limit, though: a 241-byte
bzip2 member that claims 1000 bytes inflates 100 MiB in RAM before zipfile notices the lie. Those two
are decompressed here instead, with `max_length` set to the size the member declares.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zipfile
import zlib
from typing import IO

from reslab.errors import DataError

_READ_CHUNK = 1 << 20  # bytes per read: what a deflated member lying about its size inflates at most


def too_big(label: str, cap: int) -> DataError:
    return DataError(f"{label} holds more than {mib(cap)}, the most an image file may take (a zip bomb?); "
                     "remove it from the image folder")


def mib(size: int) -> str:
    """A byte count for a message: '64 MiB', '1,024 MiB', '0.5 MiB'."""
    value = size / (1 << 20)
    return f"{value:,.0f} MiB" if value >= 10 else f"{value:.3g} MiB"


def read_capped(fh: IO[bytes], label: str, cap: int) -> bytes:
    """All of `fh`, read in chunks and refused past `cap` bytes."""
    chunks, total = [], 0
    while chunk := fh.read(min(_READ_CHUNK, cap + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise too_big(label, cap)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, cap: int) -> bytes:
    """A member's bytes, CRC checked, never inflating past min(its declared size, `cap`) + 1 in memory.

    Raises DataError when it holds more than `cap`; zipfile.BadZipFile, OSError, NotImplementedError,
    lzma.LZMAError or EOFError when it is damaged or of a kind this cannot read.
    """
    if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        with zf.open(info) as fh:
            return read_capped(fh, label, cap)
    if info.flag_bits & 0x1:
        raise NotImplementedError("the member is encrypted")
    raw = _compressed_bytes(zf, info)
    if info.compress_type == zipfile.ZIP_BZIP2:
        decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor = bz2.BZ2Decompressor()
    elif info.compress_type == zipfile.ZIP_LZMA:
        decompressor, raw = _lzma_decompressor(raw, min(info.file_size, cap))
    else:
        raise NotImplementedError(f"compression method {info.compress_type} is not supported")
    data = decompressor.decompress(raw, min(info.file_size, cap) + 1)
    if len(data) > cap:
        raise too_big(label, cap)
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"{info.filename} inflates to other bytes than its header declares")
    return data


def _compressed_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's compressed bytes, after its local header (whose name and extra lengths may differ)."""
    if zf.filename is None:
        raise NotImplementedError("the zip was not opened from a file name")
    with open(zf.filename, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        raw = fh.read(info.compress_size)
    if len(raw) != info.compress_size:
        raise zipfile.BadZipFile(f"{info.filename} is truncated")
    return raw


def _lzma_decompressor(raw: bytes, size: int) -> tuple[lzma.LZMADecompressor, bytes]:
    """Zip's LZMA: version (2 bytes), properties length (2), LZMA1 properties (lc/lp/pb byte, dict size), data.

    The dictionary, allocated up front, is cut to `size`, the most the member may hold: the header may ask
    for 4 GiB.
    """
    (props_len,) = struct.unpack("<H", raw[2:4])
    props = raw[4 : 4 + props_len]
    if props_len != 5 or len(props) != 5:
        raise zipfile.BadZipFile("bad LZMA properties")
    pb, rest = divmod(props[0], 45)
    lp, lc = divmod(rest, 9)
    dict_size = min(int.from_bytes(props[1:5], "little"), max(size, 4096))  # liblzma's minimum is 4 KiB
    lzma1 = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1]), raw[4 + props_len :]
