"""Decompression bombs: small files whose headers promise huge images, one per format OpenCV reads.

Each is a well-formed header (a decoder would allocate its pixels and start decoding) over a little
real compressed data; the PNG one is complete, 30000x30000 pixels of zeros in under a megabyte.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

SIDE = 30000  # pixels a side: 900 MP, 2.7 GB as BGR


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(side: int = SIDE) -> bytes:
    """A complete 1-bit PNG of side x side zeros."""
    z = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte, then one bit a pixel
    data = b"".join(z.compress(row * min(1000, side - done)) for done in range(0, side, 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def jpeg(side: int = SIDE) -> bytes:
    """A small JPEG whose frame header (SOF0) says side x side."""
    buf = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def webp(side: int = SIDE) -> bytes:
    """A lossless WebP whose VP8L header says side x side, at most 16383 (the format's largest)."""
    buf = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    at = data.index(b"VP8L") + 9  # chunk tag, size, then the 0x2f signature byte
    (bits,) = struct.unpack("<I", data[at:at + 4])
    side = min(side, 16383) - 1
    bits = (bits & ~((1 << 28) - 1)) | (side << 14) | side
    data[at:at + 4] = struct.pack("<I", bits)
    return bytes(data)


def tiff(side: int = SIDE) -> bytes:
    """A deflate-compressed 8-bit TIFF of side x side in one strip, of which the first rows are present."""
    strip = zlib.compress(bytes(side * 100), 9)
    tags = [(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 4, side), (279, 4, len(strip))]
    ifd_size = 2 + 12 * len(tags) + 4
    offset = 8 + ifd_size
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, offset if tag == 273 else value)
                       if kind == 4 else struct.pack("<HHIHH", tag, kind, 1, value, 0) for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + b"\x00" * 4 + strip


def bmp(side: int = SIDE) -> bytes:
    """An RLE8 BMP of side x side whose data is only the end-of-bitmap marker."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    data = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


ALL = {"png": png, "jpeg": jpeg, "webp": webp, "tiff": tiff, "bmp": bmp}
