"""Photo upload and download under /api/v1/media/<sha256> (see docs/PROTOCOL.md, "Photos").

Uploads are resumable by offset, checked by content type on the first bytes and by SHA-256 when
complete. A complete photo is stored and queued, and the answer comes at once: 503 `processing`
(the phone asks again later). Ingest workers process it in the background (server/ingest.py:
EXIF facts, display versions, perceptual hashes, and judging every submission whose photos are
now all in; server/ingest_worker.py). A photo counts as complete only once processed: one held
but missing from the queue (the server died in between) is queued again when the phone asks
about it or sends it again.
"""

import re

from flask import Blueprint, current_app, g, jsonify, request

from media import store as media_results
from media.images import sniff_type
from media.stamp_code import display as stamp_display
from media.store import is_sha256

from . import ingest_worker, stamp
from .auth import require_token
from .context import media_store, now_iso, storage
from .errors import ApiError
from .ingest import DISPLAY_SIZES

bp = Blueprint("media", __name__, url_prefix="/api/v1/media")
ORIGINAL_ROLES = ("supervisor", "admin")
# Upload-Offset / Upload-Length: ASCII digits only (str.isdigit() also takes "²" and other
# digits int() refuses), and at most 15 of them, far above any photo, before int() sees them.
_HEADER_INT = re.compile(r"[0-9]{1,15}")


def _checked(sha256: str) -> str:
    """400 for a malformed hash, 403 unless a submission in the caller's villages uses it."""
    if not is_sha256(sha256):
        raise ApiError(400, "bad_hash", "照片编号必须是 64 位小写十六进制 SHA-256")
    if not storage().photo_in_villages(sha256, g.villages):
        raise ApiError(403, "media_forbidden", "没有使用这张照片的记录，或您没有该村的权限")
    return sha256


def _readable(sha256: str) -> str:
    """_checked, and 403 unless the photo is readable in the caller's villages: used there by a
    submission whose author holds its bytes (PROTOCOL, Photos); the hash alone is no key."""
    if not storage().photo_readable(_checked(sha256), g.villages):
        raise ApiError(403, "media_forbidden", "没有使用这张照片的记录，或您没有该村的权限")
    return sha256


def _status(sha256: str) -> dict:
    """Complete (with its size) once processed; otherwise the partial upload's progress.

    A photo held but not processed is not complete: it is queued if it is not yet (a crash
    between the upload and its queueing), and the answer is 503 `processing` (ask again later);
    422 with the reason if it was not a readable image or its processing failed for good.
    """
    media = media_store()
    _finish_full_partial(media, sha256)
    store = storage()
    row = store.media(sha256)
    if row is not None:
        return {"sha256": sha256, "complete": True, "offset": row["size"], "length": row["size"]}
    if media.has(sha256):
        _processing(sha256)
    entry = store.ingest_entry(sha256)
    if entry is not None and entry["state"] == "rejected":
        code = entry["last_error"] or "corrupt"
        raise ApiError(422, code, _REJECTED.get(code, "照片无法读取"))
    return {
        "sha256": sha256,
        "complete": False,
        "offset": media.partial_offset(sha256) or 0,
        "length": media.partial_length(sha256),
    }


def _processing(sha256: str):
    """A held photo not processed yet: queue it (if it is not) and answer 503 `processing`,
    or 422 `processing_failed` once its processing has failed INGEST_MAX_ATTEMPTS times."""
    store = storage()
    entry = store.ingest_entry(sha256)
    if entry is None or entry["state"] == "rejected":
        store.enqueue_ingest(sha256, at=now_iso())
        ingest_worker.notify(current_app._get_current_object())
    elif entry["state"] == "failed":
        raise ApiError(422, "processing_failed", "照片已收到，但多次处理失败，请联系管理员")
    raise ApiError(
        503,
        "processing",
        "照片已收到，正在处理，请稍后再查询",
        retry_after=PROCESSING_RETRY_SECONDS,
    )


def _finish_full_partial(media, sha256: str) -> None:
    """Check a partial that holds every declared byte (the server stopped between receiving the
    last chunk and checking it): a phone would otherwise be told to resume at the very end."""
    length = media.partial_length(sha256)
    if length is not None and media.partial_offset(sha256) == length:
        media.append_chunk(sha256, length, b"", length)


def _header_int(name: str) -> int:
    value = request.headers.get(name, "")
    if not _HEADER_INT.fullmatch(value):
        raise ApiError(400, "bad_header", f"缺少或错误的 {name} 请求头（应为不超过 15 位的数字）")
    return int(value)


@bp.get("/<sha256>")
@require_token
def status(sha256: str):
    """Whether the server holds a photo, or how many bytes of it so far."""
    return jsonify(_status(_checked(sha256)))


@bp.patch("/<sha256>")
@require_token
def upload_chunk(sha256: str):
    """Append a chunk at the server's offset; the last one completes and checks the photo."""
    _checked(sha256)
    config = current_app.config
    offset, length = _header_int("Upload-Offset"), _header_int("Upload-Length")
    if length > config["MAX_PHOTO_BYTES"]:
        raise ApiError(413, "too_large", f"照片不能超过 {config['MAX_PHOTO_BYTES'] // 2**20} MB")
    request.max_content_length = config["MAX_CHUNK_BYTES"]
    chunk = request.get_data(cache=False)
    media = media_store()
    _finish_full_partial(media, sha256)
    if offset == 0 and not media.has(sha256) and sniff_type(chunk[:16]) is None:
        raise ApiError(415, "unsupported_type", "只能上传 JPEG、PNG 或 WebP 照片")
    result = media.append_chunk(sha256, offset, chunk, length)
    if isinstance(result, media_results.OffsetConflict):
        raise ApiError(
            409, "offset_mismatch", "上传位置不对，请从服务器的位置继续", offset=result.offset
        )
    if isinstance(result, media_results.HashMismatch):
        raise ApiError(422, "hash_mismatch", "照片内容与编号不符，已丢弃，请重新上传")
    if isinstance(result, media_results.TooLarge):
        raise ApiError(413, "too_large", "照片太大")
    if isinstance(result, media_results.LengthMismatch | media_results.PastDeclaredLength):
        raise ApiError(400, "length_mismatch", "照片长度与之前声明的不一致")
    if isinstance(result, media_results.Completed):
        storage().record_uploader(sha256, g.user["id"], at=now_iso())
    body = _status(sha256)
    response = jsonify(body)
    response.headers["Upload-Offset"] = str(body["offset"])
    return response


#: Seconds a phone is told to wait before asking again about a photo being processed.
PROCESSING_RETRY_SECONDS = 2

_REJECTED = {
    "corrupt": "照片文件不完整或已损坏，请重新拍摄",
    "too_many_pixels": "照片像素太多，无法处理",
    "unsupported_type": "只能上传 JPEG、PNG 或 WebP 照片",
}


def send_display(sha256: str, size: int):
    """A display version with a strong ETag; these never change once made."""
    etag = f"{sha256[:16]}-{size}"
    headers = {"ETag": f'"{etag}"', "Cache-Control": "private, max-age=31536000, immutable"}
    if request.if_none_match.contains(etag):
        return current_app.response_class(status=304, headers=headers)
    data = media_store().open_derived(sha256, f"{size}.jpg")
    if data is None:
        raise ApiError(404, "not_found", "照片尚未上传完成")
    with data:
        body = data.read()
    return current_app.response_class(body, mimetype="image/jpeg", headers=headers)


@bp.get("/<sha256>/display/<int:size>")
@require_token
def display(sha256: str, size: int):
    """A display version: oriented, about `size` px, no metadata, cached for a year."""
    if size not in DISPLAY_SIZES:
        raise ApiError(404, "not_found", "没有这个尺寸")
    return send_display(_readable(sha256), size)


@bp.get("/<sha256>/stamped/<submission_id>")
@require_token
def stamped(sha256: str, submission_id: str):
    """The stamped version of a photo as one submission in the caller's villages uses it
    (server/stamp.py): drawn at its first request and kept, like the display versions."""
    _readable(sha256)
    store = storage()
    row = store.submission(submission_id)
    if (
        row is None
        or row["village_code"] not in g.villages
        or sha256 not in store.submission_photo_hashes(submission_id)
    ):
        raise ApiError(404, "not_found", "没有这条记录，或记录没有使用这张照片")
    made = stamp.stamped_jpeg(store, media_store(), row, sha256)
    if made is None:
        raise ApiError(404, "not_found", "照片尚未上传完成")
    jpeg, code = made
    response = current_app.response_class(jpeg, mimetype="image/jpeg")
    response.set_etag(f"{sha256[:16]}-stamp-{code}")
    response.headers["Cache-Control"] = "private, max-age=86400"
    response.headers["X-Stamp-Code"] = stamp_display(code)
    return response.make_conditional(request)


@bp.get("/<sha256>/original")
@require_token(roles=ORIGINAL_ROLES)
def original(sha256: str):
    """The original bytes as the camera wrote them (EXIF and all): supervisors and admins."""
    _readable(sha256)
    row = storage().media(sha256)
    if row is None or not media_store().has(sha256):
        raise ApiError(404, "not_found", "照片尚未上传完成")
    return current_app.response_class(
        stream_file(media_store().open(sha256)),
        mimetype=row["mime"],
        headers={
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'attachment; filename="{sha256}.jpg"',
        },
    )


def stream_file(f, block: int = 1 << 16):
    """Yield a file's bytes and close it, so a large original never sits whole in memory."""
    with f:
        while chunk := f.read(block):
            yield chunk
