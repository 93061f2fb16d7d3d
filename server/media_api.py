"""Photo upload and download under /api/v1/media/<sha256> (see docs/PROTOCOL.md, "Photos").

Uploads are resumable by offset, checked by content type on the first bytes and by SHA-256 when
complete; a complete photo is ingested at once (EXIF facts, display versions, perceptual
hashes), and every submission whose photos are now all in is judged for evidence flags.
"""

from flask import Blueprint, current_app, g, jsonify, request

from media import store as media_results
from media.exif import read_facts
from media.images import ImageRejected, process_image, sniff_type
from media.phash import to_hex
from media.store import is_sha256

from .auth import require_token
from .context import media_store, now_iso, storage
from .errors import ApiError
from .evidence import judge_complete

bp = Blueprint("media", __name__, url_prefix="/api/v1/media")
DISPLAY_SIZES = (1280, 320)
ORIGINAL_ROLES = ("supervisor", "admin")


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
    media = media_store()
    if media.has(sha256):
        row = storage().media(sha256)
        size = row["size"] if row else None
        return {"sha256": sha256, "complete": True, "offset": size, "length": size}
    return {
        "sha256": sha256,
        "complete": False,
        "offset": media.partial_offset(sha256) or 0,
        "length": media.partial_length(sha256),
    }


def _header_int(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit():
        raise ApiError(400, "bad_header", f"缺少或错误的 {name} 请求头")
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
        _ingest(sha256)
    body = _status(sha256)
    response = jsonify(body)
    response.headers["Upload-Offset"] = str(body["offset"])
    return response


def _ingest(sha256: str) -> None:
    """Check and describe a complete photo; a photo that fails leaves nothing behind."""
    media = media_store()
    try:
        _describe(sha256)
    except ImageRejected as rejected:
        media.discard(sha256)
        raise ApiError(422, rejected.code, _REJECTED.get(rejected.code, "照片无法读取")) from None
    except BaseException:
        # Without its media row the photo would look held yet never complete a submission;
        # dropping it lets the phone upload it again.
        media.discard(sha256)
        raise


def _describe(sha256: str) -> None:
    """Display versions, EXIF facts and hashes; then judge the submissions now complete."""
    media, store, config = media_store(), storage(), current_app.config
    with media.open(sha256) as f:
        data = f.read()
    processed = process_image(data, DISPLAY_SIZES, max_pixels=config["MAX_PHOTO_PIXELS"])
    for size, jpeg in processed.versions.items():
        media.put_derived(sha256, f"{size}.jpg", jpeg)
    at = now_iso()
    with store.write():
        store.insert_media(
            {
                "sha256": sha256,
                "size": len(data),
                "mime": processed.mime,
                "width": processed.width,
                "height": processed.height,
                "exif": read_facts(data).to_dict(),
                "phash": to_hex(processed.phash),
                "crop_hashes": [to_hex(h) for h in processed.crop_phashes],
                "created_at": at,
            }
        )
        waiting = [
            u["submission_id"]
            for u in store.submissions_using([sha256])
            if u["state"] == "received"
            and not store.missing_media(store.submission_photo_hashes(u["submission_id"]))
        ]
        judge_complete(store, waiting, at=at)


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


@bp.get("/<sha256>/original")
@require_token(roles=ORIGINAL_ROLES)
def original(sha256: str):
    """The original bytes as the camera wrote them (EXIF and all): supervisors and admins."""
    _readable(sha256)
    if not media_store().has(sha256):
        raise ApiError(404, "not_found", "照片尚未上传完成")
    return current_app.response_class(
        stream_file(media_store().open(sha256)),
        mimetype=storage().media(sha256)["mime"],
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
