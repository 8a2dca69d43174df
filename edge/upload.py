"""Decode an untrusted photo safely: its size is read from the header before any pixel is allocated.

Pillow opens an image lazily (header only), so an image of more than `max_pixels` is refused without
decoding it, whatever its file size (a 1 MB PNG can hold 30000x30000 pixels). Only the still-image
formats a camera or phone writes are opened; Pillow's plugins that call out to other programs (EPS)
or read containers are never tried. The pixels are then decoded by the same library that read the
header, so the two cannot disagree about the size.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np

FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "PPM", "GIF")
FORMAT_NAMES = "JPEG, PNG, WebP, TIFF, BMP, PGM/PPM or GIF"


class UploadError(Exception):
    """An upload that cannot be used: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, max_pixels: int, draft_side: int | None = None) -> tuple[np.ndarray, float]:
    """BGR pixels (H, W, 3) of an encoded still image, upright per its EXIF orientation, and the
    factor from them to the original's pixels (1.0 unless reduced).

    With `draft_side`, an image at least twice that on both sides is reduced by a whole factor that
    keeps both at least `draft_side`; a JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, by
    libjpeg, at no cost) to begin with, so a phone photo takes a quarter of the memory or less.
    UploadError 415 if it is not an image of FORMATS or cannot be decoded, 413 if it has more than
    `max_pixels` pixels (checked on the header, before decoding).
    """
    from PIL import Image, ImageOps  # imported on the first upload: the daemon's idle RSS stays as it was

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is ours, and stricter
        try:
            im = Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.DecompressionBombError:
            raise UploadError(413, f"image has more than {max_pixels:,} pixels (http.max_upload_pixels)") from None
        except Exception:  # Pillow raises many kinds for a bad header: all mean the same here
            raise UploadError(415, f"not an image that can be read ({FORMAT_NAMES})") from None
        width, height = im.size
        if width * height > max_pixels:
            raise UploadError(413, f"image is {width}x{height} pixels, more than {max_pixels:,} "
                                   "(http.max_upload_pixels)")
        if width == 0 or height == 0:
            raise UploadError(415, "image has no pixels")
        if draft_side is not None and im.format == "JPEG":
            im.draft(im.mode, (draft_side, draft_side))
        try:
            ImageOps.exif_transpose(im, in_place=True)  # loads the pixels
            if im.mode not in ("L", "RGB"):  # palette, CMYK, 16-bit ...: what reduce() takes
                im = im.convert("RGB")
            if draft_side is not None and (k := min(im.size) // draft_side) >= 2:
                im = im.reduce(k)
            if im.mode != "RGB":
                im = im.convert("RGB")
        except Exception:  # truncated or corrupt data, an unsupported compression
            raise UploadError(415, f"{im.format} image could not be decoded (truncated or corrupt)") from None
    pixels = np.array(im)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR, dst=pixels), max(width, height) / max(im.size)
