// Photo size on the phone (issue 11): a 3 MB original costs minutes at village data speeds, so a
// JPEG whose long edge is over the server's `max_photo_edge` is drawn smaller on a canvas and
// encoded again, and the original's EXIF block (APP1 "Exif") is copied into the new file, so the
// server's EXIF facts (capture time, GPS when present, camera make/model, software) still hold.
//
// What changes in the copied EXIF, and why:
// - Orientation becomes 1. The browser decodes with imageOrientation 'from-image', so the pixels
//   are drawn already turned; keeping e.g. 6 would make the server turn them a second time.
//   (If a browser did not turn a quarter-turned photo, which its width and height show, the tag
//   is kept as it was, so the server still turns the pixels once.)
// - The EXIF thumbnail (IFD1) is dropped: it shows the sensor's unturned picture, which no longer
//   matches Orientation 1, nothing on the server reads it, and it costs 5–60 kB on every upload.
//   IFD0's link to it is set to 0; its bytes are cut off too when they end the block (zero
//   padding aside) and nothing IFD0, Exif, GPS or Interop point at lies after them (the Apple and
//   Canon files of the corpus), else they stay, unreachable (the Nikon one).
// - PixelXDimension/PixelYDimension, when present, get the new size.
// Everything else is byte for byte the camera's, in the camera's byte order (II or MM).
//
// Anything not understood keeps the original unchanged: a photo that is not a JPEG (HEIC, PNG…),
// one cut short or the browser cannot decode, an EXIF block that cannot be walked, a result that
// is not smaller. Photos already within the edge are never decoded and are kept byte for byte.
//
// The byte helpers (jpegInfo, jpegComplete, exifOrientation, patchExif, withExif) are pure
// functions on Uint8Arrays, tested on their own (tests/test_photo_resize.py).

export const DEFAULT_MAX_EDGE = 2560;
export const JPEG_QUALITY = 0.85;

const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"
const TAG = {
  orientation: 0x0112,
  exifIfd: 0x8769,
  gpsIfd: 0x8825,
  interopIfd: 0xa005,
  pixelX: 0xa002,
  pixelY: 0xa003,
  thumbOffset: 0x0201,
  thumbLength: 0x0202,
};
// Bytes per value of each TIFF field type (1 BYTE … 13 IFD); unknown types count as 0.
const TYPE_SIZE = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4];

// ---- JPEG segments ----------------------------------------------------------------------------

/**
 * The frame size and the segments that matter of a JPEG, read from the markers before the scan:
 * {width, height, exif: {start, end} | null (the whole APP1 Exif segment), insertAt (where an
 * APP1 goes: after SOI, or after a leading APP0 JFIF), scanAt (the first SOS marker, 0 if none)}. null when the bytes are not a JPEG whose
 * header can be read.
 */
export function jpegInfo(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let i = 2;
  let width = 0;
  let height = 0;
  let exif = null;
  let insertAt = 2;
  let scanAt = 0;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1];
    if (marker === 0xff) { i += 1; continue; } // fill byte
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { i += 2; continue; }
    if (marker === 0xd9) break;
    if (marker === 0xda) { scanAt = i; break; }
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    const end = i + 2 + length;
    if (length < 2 || end > bytes.length) return null;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (length < 7) return null;
      height = (bytes[i + 5] << 8) | bytes[i + 6];
      width = (bytes[i + 7] << 8) | bytes[i + 8];
    } else if (marker === 0xe1 && !exif && length >= 16 && EXIF_ID.every((b, k) => bytes[i + 4 + k] === b)) {
      exif = { start: i, end };
    } else if (marker === 0xe0 && i === 2) {
      insertAt = end; // JFIF wants APP0 first; the APP1 goes right after it
    }
    i = end;
  }
  if (!width || !height) return null;
  return { width, height, exif, insertAt, scanAt };
}

/** Whether an end-of-image marker follows the first scan: a photo cut short has none (a browser
 * would still decode it, grey where the bytes stop, and the server would refuse the original). */
export function jpegComplete(bytes, info = jpegInfo(bytes)) {
  if (!info || !info.scanAt) return false;
  for (let i = bytes.indexOf(0xd9, info.scanAt + 2); i !== -1; i = bytes.indexOf(0xd9, i + 1)) {
    if (bytes[i - 1] === 0xff) return true;
  }
  return false;
}

/** The TIFF block (after "Exif\0\0") of a JPEG's APP1 segment, or null. */
export function exifTiff(bytes, info = jpegInfo(bytes)) {
  return info && info.exif ? bytes.subarray(info.exif.start + 10, info.exif.end) : null;
}

/**
 * `jpeg` (a fresh encoding, e.g. a canvas's) with `tiff` as its APP1 Exif segment, any Exif
 * segment it had removed. null if `jpeg` is not a JPEG or the block does not fit a segment.
 */
export function withExif(jpeg, tiff) {
  const info = jpegInfo(jpeg);
  if (!info || tiff.length + 8 > 0xffff) return null;
  const app1 = new Uint8Array(tiff.length + 10);
  app1.set([0xff, 0xe1, (tiff.length + 8) >> 8, (tiff.length + 8) & 0xff, ...EXIF_ID]);
  app1.set(tiff, 10);
  let head = jpeg.subarray(0, info.insertAt);
  let tail = jpeg.subarray(info.insertAt);
  if (info.exif) {
    const rest = [jpeg.subarray(0, info.exif.start), jpeg.subarray(info.exif.end)];
    const joined = new Uint8Array(rest[0].length + rest[1].length);
    joined.set(rest[0]);
    joined.set(rest[1], rest[0].length);
    const at = info.exif.start < info.insertAt ? info.insertAt - (info.exif.end - info.exif.start) : info.insertAt;
    head = joined.subarray(0, at);
    tail = joined.subarray(at);
  }
  const out = new Uint8Array(head.length + app1.length + tail.length);
  out.set(head);
  out.set(app1, head.length);
  out.set(tail, head.length + app1.length);
  return out;
}

// ---- the TIFF block ---------------------------------------------------------------------------

function tiffReader(tiff) {
  if (!(tiff instanceof Uint8Array) || tiff.length < 8) return null;
  const le = tiff[0] === 0x49 && tiff[1] === 0x49; // "II": little-endian
  const be = tiff[0] === 0x4d && tiff[1] === 0x4d; // "MM": big-endian
  if (!le && !be) return null;
  const dv = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const r = {
    length: tiff.length,
    u16: (o) => dv.getUint16(o, le),
    u32: (o) => dv.getUint32(o, le),
    set16: (o, v) => dv.setUint16(o, v, le),
    set32: (o, v) => dv.setUint32(o, v, le),
  };
  return r.u16(2) === 42 ? r : null;
}

/** One IFD: its entries (tag, type, count, at, valueAt, size), where its next-IFD link is, its
 * end; null when any part of it lies outside the block. */
function readIfd(r, offset) {
  if (!offset || offset < 8 || offset + 2 > r.length) return null;
  const n = r.u16(offset);
  const nextAt = offset + 2 + 12 * n;
  if (nextAt + 4 > r.length) return null;
  const entries = [];
  let end = nextAt + 4;
  for (let k = 0; k < n; k += 1) {
    const at = offset + 2 + 12 * k;
    const type = r.u16(at + 2);
    const count = r.u32(at + 4);
    const size = (TYPE_SIZE[type] || 0) * count;
    const valueAt = size <= 4 ? at + 8 : r.u32(at + 8);
    if (valueAt + size > r.length) return null;
    if (size > 4) end = Math.max(end, valueAt + size);
    entries.push({ tag: r.u16(at), type, count, at, valueAt, size });
  }
  return { offset, entries, nextAt, end, get: (tag) => entries.find((e) => e.tag === tag) };
}

function shortValue(r, entry) {
  if (!entry || entry.count < 1) return null;
  if (entry.type === 3) return r.u16(entry.valueAt);
  if (entry.type === 4) return r.u32(entry.valueAt);
  return null;
}

/** The Orientation tag of IFD0 (1 when absent); null when the block cannot be read. */
export function exifOrientation(tiff) {
  const r = tiffReader(tiff);
  const ifd0 = r && readIfd(r, r.u32(4));
  if (!ifd0) return null;
  const entry = ifd0.get(TAG.orientation);
  return entry ? shortValue(r, entry) : 1;
}

/**
 * A copy of the TIFF block for the smaller picture: Orientation set to `orientation`, the
 * PixelX/YDimension set to `width`×`height`, and the thumbnail (IFD1) dropped, in the block's own
 * byte order. Returns {tiff, orientation (the old value), thumbnail: 'none' | 'unlinked' | 'cut'},
 * or null when the block cannot be walked (the caller then keeps the original photo).
 */
export function patchExif(tiff, { width, height, orientation = 1 } = {}) {
  let copy = tiff.slice();
  const r = tiffReader(copy);
  const ifd0 = r && readIfd(r, r.u32(4));
  if (!ifd0) return null;
  const sub = (ifd, tag) => {
    const e = ifd && ifd.get(tag);
    return e ? readIfd(r, r.u32(e.valueAt)) || false : null; // false: linked but unreadable
  };
  const exifIfd = sub(ifd0, TAG.exifIfd);
  const gpsIfd = sub(ifd0, TAG.gpsIfd);
  const interopIfd = sub(exifIfd, TAG.interopIfd);
  if (exifIfd === false || gpsIfd === false || interopIfd === false) return null;
  const ifds = [ifd0, exifIfd, gpsIfd, interopIfd].filter(Boolean);

  const entry = ifd0.get(TAG.orientation);
  let old = 1;
  if (entry) {
    old = shortValue(r, entry);
    if (entry.type !== 3 || old === null) return null;
    r.set16(entry.valueAt, orientation);
  }
  if (exifIfd && width && height) {
    for (const [tag, value] of [[TAG.pixelX, width], [TAG.pixelY, height]]) {
      const e = exifIfd.get(tag);
      if (e && e.type === 3 && e.count === 1) r.set16(e.valueAt, value);
      else if (e && e.type === 4 && e.count === 1) r.set32(e.valueAt, value);
    }
  }

  let thumbnail = 'none';
  const next = r.u32(ifd0.nextAt);
  if (next) {
    r.set32(ifd0.nextAt, 0);
    thumbnail = 'unlinked';
    const ifd1 = readIfd(r, next);
    if (ifd1) {
      const start = shortValue(r, ifd1.get(TAG.thumbOffset));
      const cut = start === null ? next : Math.min(next, start);
      // Cut only a tail: IFD1, its values and the thumbnail end the block (but for zero
      // padding), and nothing IFD0, Exif, GPS or Interop point at lies after the cut.
      const length = shortValue(r, ifd1.get(TAG.thumbLength)) || 0;
      const reach = Math.max(ifd1.end, start === null ? 0 : start + length);
      let last = copy.length;
      while (last > reach && copy[last - 1] === 0) last -= 1;
      if (Math.max(...ifds.map((d) => d.end)) <= cut && reach >= last) {
        copy = copy.slice(0, cut);
        thumbnail = 'cut';
      }
    }
  }
  return { tiff: copy, orientation: old, thumbnail };
}

// ---- drawing smaller --------------------------------------------------------------------------

async function encodeJpeg(bitmap, w, h, quality) {
  if (typeof OffscreenCanvas !== 'undefined') {
    const canvas = new OffscreenCanvas(w, h);
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, w, h);
    return canvas.convertToBlob({ type: 'image/jpeg', quality });
  }
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, w, h);
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('toBlob'))), 'image/jpeg', quality));
}

/**
 * The photo to keep: `file` itself when its long edge is at most `maxEdge` (or maxEdge is 0,
 * or anything is not understood), else a smaller JPEG carrying the original's EXIF.
 * Returns {blob, resized, reason, width, height, orientation, thumbnail, ms}; never throws.
 */
export async function shrinkPhoto(file, maxEdge = DEFAULT_MAX_EDGE, { quality = JPEG_QUALITY } = {}) {
  const started = performance.now();
  const keep = (reason, info = null) => ({
    blob: file,
    resized: false,
    reason,
    width: info ? info.width : null,
    height: info ? info.height : null,
    ms: performance.now() - started,
  });
  let info = null;
  try {
    if (!(Number.isInteger(maxEdge) && maxEdge > 0)) return keep('off');
    const bytes = new Uint8Array(await file.arrayBuffer());
    info = jpegInfo(bytes);
    if (!info) return keep('not_jpeg');
    if (Math.max(info.width, info.height) <= maxEdge) return keep('small', info);
    if (!jpegComplete(bytes, info)) return keep('truncated', info);
    const tiff = exifTiff(bytes, info);
    const old = tiff ? exifOrientation(tiff) : 1;
    if (old === null) return keep('exif_unreadable', info);

    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
    } catch {
      return keep('undecodable', info);
    }
    let encoded;
    let w;
    let h;
    // A quarter turn (5–8) swaps width and height: if the browser did not turn, keep the tag.
    const turned = !(old >= 5 && old <= 8 && info.width !== info.height && bitmap.width === info.width);
    try {
      const scale = maxEdge / Math.max(bitmap.width, bitmap.height);
      w = Math.max(1, Math.round(bitmap.width * scale));
      h = Math.max(1, Math.round(bitmap.height * scale));
      encoded = new Uint8Array(await (await encodeJpeg(bitmap, w, h, quality)).arrayBuffer());
    } finally {
      bitmap.close?.();
    }
    let out = encoded;
    let patched = null;
    if (tiff) {
      patched = patchExif(tiff, { width: w, height: h, orientation: turned ? 1 : old });
      out = patched && withExif(encoded, patched.tiff);
      if (!out) return keep('exif_unreadable', info);
    }
    if (out.length >= bytes.length) return keep('not_smaller', info);
    return {
      blob: new Blob([out], { type: 'image/jpeg' }),
      resized: true,
      reason: 'resized',
      width: w,
      height: h,
      orientation: old,
      thumbnail: patched ? patched.thumbnail : 'none',
      ms: performance.now() - started,
    };
  } catch (err) {
    console.warn('photo resize', err);
    return keep('error', info);
  }
}
