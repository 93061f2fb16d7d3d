// The IndexedDB schema and its version, and nothing else (as workbox-background-sync keeps
// its schema apart from the code that uses it). Bump DB_VERSION and add a step to `upgrade`
// to change the schema; never edit a step that phones in the field have already run.

import { openDB, deleteDB } from '../vendor/idb/idb.js';

export const DB_NAME = 'villagecheck';
export const DB_VERSION = 1;

/**
 * Stores:
 * - meta        key → value: session (token, user, villages), device_id, cursor, hlc, lang, last_sync
 * - forms       form definitions from pull, keyed [id, version]
 * - villages    the user's villages (by code)
 * - facilities  village records from pull, plus facilities registered on this phone (pending)
 * - tasks       the first secretary's monthly tasks from pull
 * - drafts      inspections being filled in; saved on every change; id = the future submission id
 * - outbox      what was submitted: the exact item to push, its state, the server's answer and review
 * - photos      original photo bytes (Blob) by SHA-256, kept until the server holds them
 * - thumbs      small JPEG thumbnails made on the phone, by SHA-256
 */
function upgrade(db, oldVersion) {
  if (oldVersion < 1) {
    db.createObjectStore('meta');
    const forms = db.createObjectStore('forms', { keyPath: ['id', 'version'] });
    forms.createIndex('id', 'id');
    db.createObjectStore('villages', { keyPath: 'code' });
    const facilities = db.createObjectStore('facilities', { keyPath: 'id' });
    facilities.createIndex('village', 'village');
    const tasks = db.createObjectStore('tasks', { keyPath: 'id' });
    tasks.createIndex('village', 'village');
    const drafts = db.createObjectStore('drafts', { keyPath: 'id' });
    drafts.createIndex('record', 'record');
    const outbox = db.createObjectStore('outbox', { keyPath: 'id' });
    outbox.createIndex('seq', 'seq');
    outbox.createIndex('record', 'record');
    db.createObjectStore('photos', { keyPath: 'sha256' });
    db.createObjectStore('thumbs', { keyPath: 'sha256' });
  }
}

let dbPromise = null;

/** The open database (one connection per page or worker). */
export function db() {
  if (!dbPromise) {
    dbPromise = openDB(DB_NAME, DB_VERSION, {
      upgrade,
      blocking() {
        // A newer version of the app wants to upgrade the schema: let it.
        dbPromise?.then((d) => d.close());
        dbPromise = null;
      },
    });
  }
  return dbPromise;
}

/** Delete the whole database (tests and "reset this phone"). */
export async function destroy() {
  if (dbPromise) (await dbPromise).close();
  dbPromise = null;
  await deleteDB(DB_NAME);
}
