"""Faults the vendor simulator can inject: HTTP errors, stalls, cut or short bodies, wrong encodings, bombs.

Never hold a bomb's inflated bytes in memory: the bodies are built from one compressed block, repeated.
"""

from __future__ import annotations

import functools
import struct
import zlib

FAULT_KINDS: tuple[str, ...] = (
    "http_500",
    "http_503",
    "http_429",
    "timeout",
    "truncated",
    "short_body",
    "wrong_encoding",
    "gzip_bomb",
    "zip_bomb",
)
# The HTTP error faults: kind -> status. 503 says Retry-After: 1; 429 ("Too Many Requests", what a vendor's rate
# limiter answers) says Retry-After: the fault's delay_s, rounded up to whole seconds (the header's unit).
HTTP_ERROR_FAULTS: dict[str, int] = {"http_500": 500, "http_503": 503, "http_429": 429}


def retry_after_header(kind: str, delay_s: float) -> str | None:
    """The Retry-After an HTTP error fault sends (None: no header)."""
    if kind == "http_503":
        return "1"
    if kind == "http_429":
        return str(max(0, -int(-delay_s // 1)))
    return None


# What the two bomb faults inflate to: 2 GiB of zero bytes from a body of about 2 MB.
BOMB_INFLATED_BYTES = 2 * 1024**3
BOMB_ZIP_MEMBER = "f_year.txt"

_BOMB_BLOCK = 1024 * 1024


@functools.cache
def _deflate_bomb() -> tuple[bytes, int]:
    """A raw deflate stream of BOMB_INFLATED_BYTES zero bytes, built without ever holding them: after a full
    flush the compressor starts afresh, so each 1 MiB of zeros compresses to the same ~1 KB block and the
    stream is that block repeated, then the final (empty) block. Returns the stream and its CRC-32."""
    zeros = bytes(_BOMB_BLOCK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    repeats = BOMB_INFLATED_BYTES // _BOMB_BLOCK
    crc = 0
    for _ in range(repeats):
        crc = zlib.crc32(zeros, crc)
    return block * repeats + tail, crc


@functools.cache
def gzip_bomb() -> bytes:
    """The "gzip_bomb" body: one gzip member (served with Content-Encoding: gzip) inflating to 2 GiB."""
    stream, crc = _deflate_bomb()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + stream + struct.pack("<II", crc, BOMB_INFLATED_BYTES & 0xFFFFFFFF)


@functools.cache
def zip_bomb() -> bytes:
    """The "zip_bomb" body: a valid zip whose one .txt member declares and inflates to 2 GiB."""
    stream, crc = _deflate_bomb()
    name = BOMB_ZIP_MEMBER.encode()
    dos_time, dos_date = 0, (2021 - 1980) << 9 | 1 << 5 | 1
    sizes = (crc, len(stream), BOMB_INFLATED_BYTES)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, dos_time, dos_date, *sizes, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, dos_time, dos_date, *sizes, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end


def misencode(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The "wrong_encoding" fault: text re-encoded from windows-1252 to UTF-8, zips corrupted."""
    base_type = content_type.split(";")[0].strip().lower()
    if base_type in ("application/zip", "application/x-zip-compressed") or body[:2] == b"PK":
        corrupted = bytearray(body)
        start = len(corrupted) // 3
        for index in range(start, min(start + 16, len(corrupted))):
            corrupted[index] ^= 0xFF
        return bytes(corrupted), content_type
    if base_type.startswith("text/"):
        return body.decode("cp1252", errors="replace").encode("utf-8"), f"{base_type}; charset=utf-8"
    return body, content_type
