"""Turning an uploaded photo into a processed one, safely across crashes and a few at a time.

A photo is in one of three durable states, and a kill at any moment leaves it in one of them:

1. partial: bytes in the store's partials folder; the phone resumes from their length;
2. held: the verified original is in the store, but there is no media row yet. The API answers
   "not complete" for it, and processing it again is safe (versions are replaced atomically,
   the row is inserted once);
3. processed: the display versions are written first, then the media row and the state of
   every submission it completes are committed in one transaction. Only this is "complete".

A held photo is processed by an ingest worker (server/ingest_worker.py) from the durable
queue (storage/ingest_queue.py): the upload's last chunk queues it; a phone asking about a held
photo missing from the queue queues it again, and so does the `reprocess-held` job (at scheduler
start and every 10 minutes), which finds held photos from those submissions use that have no
media row. The job also judges any submission left `received` with all its photos in, should
judging ever be separated from the row's commit.

Decoding a large photo takes a lot of memory (about 220 MB for 49 MP), so each process decodes
at most INGEST_CONCURRENCY photos at once; the others wait their turn.
"""

import logging

from media.exif import read_facts
from media.images import ImageRejected, process_image
from media.phash import to_hex

from . import limits
from .evidence import judge_complete
from .limits import Gate
from .storage import Storage

DISPLAY_SIZES = (1280, 320)
log = logging.getLogger("villagecheck.ingest")


def decode_gate(config) -> Gate:
    """This process's gate for the INGEST_CONCURRENCY setting (shared by every app and job)."""
    return limits.gate("decode", config["INGEST_CONCURRENCY"])


def ingest(store: Storage, media, sha256: str, *, config, gate: Gate, at: str) -> None:
    """Process a held photo and judge the submissions it completes; nothing if already done.

    Raises `ImageRejected` after removing a photo that cannot be read (the phone may send it
    again); any other failure leaves the photo held, to be processed again later.
    """
    if store.media(sha256) is not None:
        return
    try:
        with gate.slot():
            with media.open(sha256) as f:
                data = f.read()
            processed = process_image(data, DISPLAY_SIZES, max_pixels=config["MAX_PHOTO_PIXELS"])
            exif = read_facts(data).to_dict()
    except ImageRejected:
        media.discard(sha256)
        raise
    for size, jpeg in processed.versions.items():
        media.put_derived(sha256, f"{size}.jpg", jpeg)
    with store.write():
        store.insert_media(
            {
                "sha256": sha256,
                "size": len(data),
                "mime": processed.mime,
                "width": processed.width,
                "height": processed.height,
                "exif": exif,
                "phash": to_hex(processed.phash),
                "crop_hashes": [to_hex(h) for h in processed.crop_phashes],
                "created_at": at,
            }
        )
        store.credit_unheld_photo(sha256, at=at)
        waiting = [
            u["submission_id"]
            for u in store.submissions_using([sha256])
            if u["state"] == "received"
            and not store.missing_media(store.submission_photo_hashes(u["submission_id"]))
        ]
        judge_complete(store, waiting, at=at)


def reprocess_held(store: Storage, media, *, at: str) -> dict:
    """Queue every photo held but not processed and not yet queued (the worker processes it:
    there is one path for ingest), then judge any submission left `received` with all its
    photos in; the summary counts what happened."""
    held = [sha for sha in store.photos_without_media() if media.has(sha)]
    queued = store.enqueue_ingest_many(held, at=at)
    stranded = store.received_with_all_photos()
    if stranded:
        with store.write():
            judge_complete(store, stranded, at=at)
    return {
        "judged": len(stranded),
        "held": len(held),
        "queued": queued,
        "sha256": held[:20],
    }
