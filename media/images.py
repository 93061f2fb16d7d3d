"""Display versions of evidence photos (Pillow), decoded once.

Pure functions of bytes / paths / binary file objects: no Flask, no SQL.

The pipeline for one uploaded original:

1. ``sniff_type`` on the first bytes (magic numbers only; the client's Content-Type and file
   name are not trusted).
2. Header-only open with the matching Pillow plugin and a pixel-count guard *before* any pixel is
   decoded (a 50 kB PNG can declare 10000x10000).
3. One decode: JPEGs use draft mode (libjpeg DCT scaling 1/2, 1/4, 1/8) so a 12 MP photo is decoded
   at the smallest scale that is still at least as large as the largest display version.
4. The largest display version is resized from the decoded image and every smaller one from the
   next larger one, then each is turned by its EXIF orientation (turning the small versions
   costs a tenth of turning the decoded image).
5. JPEG re-encode with no metadata at all (no EXIF, GPS, ICC, XMP, COM).

``process_image`` returns the versions, the oriented pixel size and the perceptual hash (computed
from the already-decoded smallest version, see ``media.phash``), so nothing is decoded twice.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin

from media.phash import photo_hashes

try:  # WebP support is optional in Pillow builds.
    from PIL import WebPImagePlugin
except ImportError:  # pragma: no cover - depends on the Pillow build
    WebPImagePlugin = None  # type: ignore[assignment]

DEFAULT_SIZES: tuple[int, ...] = (1280, 320)
DEFAULT_QUALITY = 82
DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP; phones today top out around 50 MP (8160x6120)
# The perceptual hash is always computed from the 320 px version (derived from the 1280 one in
# the default pipeline), so the hash of a photo does not depend on which versions were asked for.
HASH_SOURCE_SIZE = 320
# Downscaling filter for display versions. After draft mode the remaining factor is < 2 for the
# large version (e.g. 2000 -> 1280) and 4 for the small one; Pillow's BOX filter is area averaging
# (antialiased), visually on par with LANCZOS at these factors for photos, at a third of the
# cost (12 ms vs 36 ms for 2000x1500 -> 1280x960; see tests/bench/bench_images.py).
DISPLAY_RESAMPLE = Image.Resampling.BOX

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

_MIME_JPEG = "image/jpeg"
_MIME_PNG = "image/png"
_MIME_WEBP = "image/webp"


class ImageRejected(Exception):
    """The upload cannot be turned into display versions.

    ``code`` is stable and machine-readable: ``unsupported_type``, ``too_many_pixels``,
    ``corrupt``. ``message`` is for logs and admins.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


def sniff_type(head: bytes) -> str | None:
    """MIME type from magic bytes only ("image/jpeg", "image/png", "image/webp") or None."""
    head = bytes(head[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return _MIME_JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _MIME_PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _MIME_WEBP
    return None


@dataclass(frozen=True)
class ProcessedImage:
    """What the ingest pipeline needs from one decode."""

    mime: str
    width: int  # full-resolution size after EXIF orientation
    height: int
    versions: dict[int, bytes]  # requested size -> JPEG bytes
    phash: int  # 64-bit perceptual hash (media.phash) of the HASH_SOURCE_SIZE version
    crop_phashes: tuple[int, ...]  # media.phash.crop_hashes of the same version


# --------------------------------------------------------------------------------------------
# opening


def _as_file(source: Source) -> tuple[BinaryIO, bool]:
    """A seekable binary file for ``source`` and whether we must close it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, (str, os.PathLike)):
        return open(source, "rb"), True  # noqa: SIM115 - closed by the caller
    return source, False


_PLUGINS = {
    _MIME_JPEG: JpegImagePlugin.JpegImageFile,
    _MIME_PNG: PngImagePlugin.PngImageFile,
}
if WebPImagePlugin is not None:
    _PLUGINS[_MIME_WEBP] = WebPImagePlugin.WebPImageFile


def _open_checked(fp: BinaryIO, max_pixels: int | None) -> tuple[ImageFile.ImageFile, str]:
    """Header-only open with our own pixel guard.

    The format plugin is instantiated directly (instead of ``Image.open``) so that Pillow's global
    ``MAX_IMAGE_PIXELS`` warning/error is not involved: our limit is per call, needs no global or
    warnings-filter state (thread-safe under a threaded WSGI server) and always yields
    ``ImageRejected("too_many_pixels")``.
    """
    start = fp.tell()
    head = fp.read(16)
    fp.seek(start)
    mime = sniff_type(head)
    plugin = _PLUGINS.get(mime) if mime else None
    if plugin is None:
        raise ImageRejected("unsupported_type", "not a JPEG, PNG or WebP file")
    try:
        img = plugin(fp)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        raise ImageRejected("corrupt", f"cannot read image header: {exc}") from exc
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageRejected("corrupt", f"invalid dimensions {w}x{h}")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageRejected(
            "too_many_pixels", f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}"
        )
    return img, mime


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # corrupt EXIF never blocks the picture itself
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


#: How to turn stored pixels upright for each EXIF orientation (as ``ImageOps.exif_transpose``).
_TURN = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    w, h = size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def pixel_size(source: Source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the full image after EXIF orientation, from the header only."""
    fp, close = _as_file(source)
    try:
        img, _ = _open_checked(fp, max_pixels)
        return _oriented_size(img.size, _orientation(img))
    finally:
        if close:
            fp.close()


# --------------------------------------------------------------------------------------------
# decoding


def _fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """Size with the longest side ``longest`` (never upscaled), aspect ratio kept."""
    w, h = size
    if max(w, h) <= longest:
        return w, h
    if w >= h:
        return longest, max(1, round(h * longest / w))
    return max(1, round(w * longest / h)), longest


def draft_box(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """The box to pass to ``JpegImageFile.draft`` for a target longest side.

    Pillow picks the largest DCT scale that keeps *both* sides at least as large as the box, so
    ``(longest, longest)`` would be needlessly conservative for non-square photos (a 4608x1976
    panorama would be fully decoded for a 1280 version). Asking for the target box itself keeps
    the longest side >= ``longest`` and lets the scale go as far as possible. The box is
    orientation-independent: the target keeps the stored aspect ratio.
    """
    return _fit(size, longest)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _shrink(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Area-average ``img`` down to ``target``. An exact integer factor (1280 -> 320) is
    ``reduce``: the same box average as the BOX filter, at a quarter of the cost."""
    factor = img.width // target[0]
    if factor > 1 and img.size == (target[0] * factor, target[1] * factor):
        return img.reduce(factor)
    return img.resize(target, DISPLAY_RESAMPLE)


def decode_versions(
    source: Source,
    sizes: Iterable[int] = DEFAULT_SIZES,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[str, tuple[int, int], dict[int, Image.Image]]:
    """Decode once and return (mime, oriented full size, {size: RGB PIL image}).

    Raises ``ImageRejected``. The images carry no metadata (``info`` is empty).
    """
    wanted = sorted({int(s) for s in sizes}, reverse=True)
    if not wanted or wanted[-1] <= 0:
        raise ValueError("sizes must be positive integers")
    fp, close = _as_file(source)
    try:
        img, mime = _open_checked(fp, max_pixels)
        orientation = _orientation(img)
        full_size = _oriented_size(img.size, orientation)
        try:
            if mime == _MIME_JPEG:
                # Decode at the smallest DCT scale still >= the largest version.
                img.draft("RGB", draft_box(img.size, wanted[0]))
            img.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
            raise ImageRejected("corrupt", f"cannot decode image: {exc}") from exc
        out: dict[int, Image.Image] = {}
        current = _to_rgb(img)
        for size in wanted:
            target = _fit(current.size, size)  # the longest side: the same either way round
            if target != current.size:
                current = _shrink(current, target)
            elif current is img:
                current = current.copy()  # never hand out the file-backed image
            turned = current.transpose(_TURN[orientation]) if orientation != 1 else current
            turned.info = {}  # no EXIF/ICC/XMP/comment can leak into a saved version
            out[size] = turned
        return mime, full_size, out
    finally:
        if close:
            fp.close()


def encode_jpeg(img: Image.Image, quality: int = DEFAULT_QUALITY) -> bytes:
    """Baseline JPEG with no metadata segments at all (only APP0/JFIF)."""
    buf = io.BytesIO()
    # Explicit empty values: Pillow would otherwise fall back to ``img.info`` for some of them.
    img.save(buf, "JPEG", quality=quality, exif=b"", icc_profile=None, comment=b"", optimize=False)
    return buf.getvalue()


def process_image(
    source: Source,
    sizes: Iterable[int] = DEFAULT_SIZES,
    quality: int = DEFAULT_QUALITY,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ProcessedImage:
    """Display versions + oriented pixel size + perceptual hash from a single decode."""
    wanted = {int(s) for s in sizes}
    mime, (width, height), images = decode_versions(
        source, wanted | {HASH_SOURCE_SIZE}, max_pixels=max_pixels
    )
    versions = {size: encode_jpeg(images[size], quality) for size in sorted(wanted, reverse=True)}
    full, crops = photo_hashes(images[HASH_SOURCE_SIZE])
    return ProcessedImage(mime, width, height, versions, full, tuple(crops))


def make_display_versions(
    path_or_bytes: Source,
    sizes: Iterable[int] = DEFAULT_SIZES,
    quality: int = DEFAULT_QUALITY,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[int, bytes]:
    """{size: JPEG bytes}, longest side = size (never upscaled), oriented, metadata stripped."""
    _, _, images = decode_versions(path_or_bytes, sizes, max_pixels=max_pixels)
    return {size: encode_jpeg(im, quality) for size, im in images.items()}


def phash(data: bytes | BinaryIO) -> int:
    """pHash of an encoded image, through the same decode path as the ingest pipeline.

    Raises ``ImageRejected`` for unusable input.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    _, _, images = decode_versions(data, set(DEFAULT_SIZES) | {HASH_SOURCE_SIZE})
    return photo_hashes(images[HASH_SOURCE_SIZE])[0]
