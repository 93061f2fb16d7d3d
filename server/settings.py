"""Every configuration setting, its default and what it is for.

Settings are data (as datasette does): the app factory fills defaults from here, an instance
file or VILLAGECHECK_* environment variables override them, and a test checks each is documented.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str


SETTINGS = (
    Setting("DATABASE", "villagecheck.db", "SQLite file, relative to the instance folder"),
    Setting(
        "DATABASE_URL",
        "",
        "database URL; postgresql+psycopg://user:password@host/name uses PostgreSQL"
        " (empty: the SQLite file DATABASE)",
    ),
    Setting("MEDIA_ROOT", "media", "photo store folder, relative to the instance folder"),
    Setting("MAX_JSON_BYTES", 8 * 1024 * 1024, "largest JSON request body accepted (413 above)"),
    Setting("MAX_PHOTO_BYTES", 20 * 1024 * 1024, "largest photo accepted (413 above)"),
    Setting("MAX_CHUNK_BYTES", 4 * 1024 * 1024, "largest photo upload chunk (413 above)"),
    Setting(
        "MAX_PHOTO_PIXELS", 50_000_000, "photos with more pixels are refused (decompression bombs)"
    ),
    Setting(
        "INGEST_CONCURRENCY",
        2,
        "photos decoded at once per server process (about 220 MB each at 49 MP); others wait",
    ),
    Setting("EVIDENCE_FAR_METRES", 200, "photo further than this from its facility is flagged"),
    Setting(
        "EVIDENCE_TAKEN_BEFORE_HOURS", 48, "photo taken this long before the inspection is flagged"
    ),
    Setting(
        "EVIDENCE_TAKEN_AFTER_MINUTES", 30, "photo taken this long after the inspection is flagged"
    ),
    Setting(
        "EVIDENCE_NEAR_DUPLICATE_BITS",
        12,
        "perceptual-hash distance at or below this is a near-duplicate",
    ),
    Setting("HIGH_RISK_SCORE", 50, "risk score at or above this is always spot-checked"),
    Setting("PULL_PAGE_SIZE", 500, "changes per pull page when the phone does not ask"),
    Setting("PULL_PAGE_MAX", 2000, "largest pull page a phone may ask for"),
    Setting("PUSH_BATCH_MAX", 200, "most items in one push"),
    Setting("CONFLICT_WINDOW_HOURS", 72, "reports further apart than this never conflict"),
    Setting("SKEW_FLAG_MINUTES", 30, "device clock skew above this is flagged"),
    Setting(
        "CLOCK_AHEAD_MAX_HOURS",
        24,
        "reports stamped further ahead of server time are re-stamped at receipt (and flagged)",
    ),
    Setting(
        "LOGIN_MAX_FAILURES",
        5,
        "failed logins for one username from one address before each further try must wait"
        " (1 s, then doubling)",
    ),
    Setting(
        "LOGIN_LOCK_MINUTES",
        15,
        "longest wait for one username and address; failures are forgotten after this quiet",
    ),
    Setting(
        "LOGIN_USER_MAX_FAILURES",
        20,
        "failed logins for one username from all addresses before every address is slowed",
    ),
    Setting(
        "LOGIN_USER_DELAY_MAX_SECONDS",
        60,
        "longest wait that slowdown imposes (addresses the user logged in from are exempt)",
    ),
    Setting(
        "TRUSTED_PROXY",
        False,
        "behind your own reverse proxy: take the client address and https from X-Forwarded-*",
    ),
    Setting("DESK_IDLE_MINUTES", 30, "a desk login ends after this long without a page load"),
    Setting("DESK_SESSION_HOURS", 12, "a desk login ends this long after it began, used or not"),
    Setting(
        "SESSION_COOKIE_SECURE",
        False,
        "always mark the desk cookie Secure (it is anyway on requests that came over HTTPS)",
    ),
    Setting(
        "PASSWORD_CHECKS_AT_ONCE",
        4,
        "password checks run at once per process (each takes about 32 MB); the rest wait",
    ),
    Setting("TOKEN_TTL_DAYS", 180, "device tokens unused for this long stop working"),
    Setting(
        "SCHEDULER_ENABLED",
        False,
        "start the job scheduler inside the app (`villagecheck serve` ignores it: it runs the"
        " jobs in one of its worker processes unless --no-scheduler)",
    ),
    Setting("TIMEZONE", "Asia/Shanghai", "time zone of job schedules, months and due dates"),
    Setting("JOB_LEASE_SECONDS", 3600, "a job's lease lasts this long if its runner dies"),
    Setting("SAMPLE_SHARE", 0.1, "share of each village's low-risk submissions spot-checked"),
    Setting("PARTIAL_UPLOAD_MAX_AGE_DAYS", 7, "unfinished photo uploads idle this long go"),
    Setting("TIDINESS_TARGET", 75, "average tidiness score a village needs (75 = 良)"),
    Setting("EXPORT_BATCH_ROWS", 1000, "rows read from the database at a time by exports"),
    Setting(
        "SESSION_COOKIE_SAMESITE", "Lax", "supervisors' session cookie is not sent by other sites"
    ),
    Setting(
        "WRITE_WAIT_SECONDS",
        15,
        "longest a write waits in line for the database; then 503 `busy` and nothing is stored",
    ),
    Setting(
        "REQUEST_TIMEOUT_SECONDS",
        30,
        "`villagecheck serve`: a request's headers must be complete this long after it connects"
        " (or after its last answer), and each read of the body and write of the answer too",
    ),
    Setting(
        "SERVE_THREADS",
        32,
        "`villagecheck serve --threads`: requests served at once by each worker process",
    ),
    Setting(
        "SERVE_MAX_CONNECTIONS",
        500,
        "`villagecheck serve`: open connections at most per worker process (keep well under"
        " the open-file limit); at the bound the oldest idle one is dropped for a new one",
    ),
    Setting("SECRET_KEY", None, "session signing key; generated into the instance folder if unset"),
    # -- operations: logs (server/logs.py) --
    Setting(
        "LOG_FORMAT",
        "auto",
        "logs as `json` lines or plain `text`; `auto`: text in tests and on a terminal, else JSON",
    ),
    # -- `villagecheck serve`: gunicorn worker processes and HTTPS (issue 10) --
    Setting("SERVE_WORKERS", 2, "`villagecheck serve --workers`: worker processes"),
    Setting(
        "SERVE_KEEPALIVE_SECONDS",
        5,
        "`villagecheck serve`: an idle connection is kept open this long for the next request",
    ),
    Setting(
        "SERVE_GRACEFUL_SECONDS",
        30,
        "`villagecheck serve`: on stop or restart, requests under way get this long to finish",
    ),
    Setting(
        "SERVE_CERTFILE",
        "",
        "`villagecheck serve --certfile`: PEM certificate chain; with SERVE_KEYFILE it serves"
        " HTTPS",
    ),
    Setting(
        "SERVE_KEYFILE", "", "`villagecheck serve --keyfile`: PEM private key of SERVE_CERTFILE"
    ),
    # -- photo store (docs/PHOTO_STORE.md)
    Setting(
        "MEDIA_STORE",
        "local",
        "where photos are kept: `local` (the MEDIA_ROOT folder) or `s3` (an S3-compatible bucket)",
    ),
    Setting(
        "S3_ENDPOINT_URL",
        "",
        "S3 API address, e.g. http://127.0.0.1:9000 (MinIO), https://oss-cn-hangzhou.aliyuncs.com"
        " (empty: AWS)",
    ),
    Setting("S3_BUCKET", "", "bucket holding the photos (create it first)"),
    Setting("S3_REGION", "", "region for request signing, e.g. cn-hangzhou (empty: us-east-1)"),
    Setting("S3_ACCESS_KEY_ID", "", "access key (empty: boto3's usual sources, e.g. AWS_* vars)"),
    Setting("S3_SECRET_ACCESS_KEY", "", "secret key; keep it out of shared files"),
    Setting("S3_PREFIX", "", "key prefix inside the bucket, e.g. villagecheck/ (empty: none)"),
    Setting(
        "S3_ADDRESSING_STYLE",
        "path",
        "`path` (MinIO, Ceph RGW) or `virtual` (bucket in the host name: Aliyun OSS, Tencent COS)",
    ),
    # -- background photo ingest (server/ingest_worker.py) --
    Setting(
        "INGEST_WORKERS",
        None,
        "ingest threads per server process (None: the CPUs the process may use, at most 8;"
        " 0: none, run `villagecheck worker` instead); decodes stay bounded by INGEST_CONCURRENCY",
    ),
    Setting(
        "INGEST_CLAIM_SECONDS",
        300,
        "a worker holds a photo this long; if it is killed mid-ingest, another takes it after",
    ),
    Setting(
        "INGEST_MAX_ATTEMPTS",
        5,
        "tries before a photo that keeps failing is marked failed (retry: `worker --retry-failed`)",
    ),
    Setting("INGEST_RETRY_SECONDS", 30, "wait before a failed photo is tried again (doubling)"),
    Setting(
        "INGEST_POLL_SECONDS",
        1.0,
        "idle ingest workers look for photos queued by other processes this often",
    ),
    # -- photo size on the phone (client_pwa/js/photo_resize.js) --
    Setting(
        "PWA_MAX_PHOTO_EDGE",
        2560,
        "phones redraw JPEGs with a longer edge to this many pixels, keeping the EXIF, before"
        " storing and uploading them (0: keep every photo as taken)",
    ),
    # -- the PWA on real phones (server/pwa.py, /app/config.json; issue 11) --
    Setting(
        "PWA_SERVICE_WORKER",
        True,
        "the app's service worker (offline shell); off (false): phones unregister it and clear"
        " its caches on their next online load, and the app runs online only",
    ),
    Setting(
        "PWA_GPS_GOOD_METRES",
        50,
        "a phone's fix worse than this shows 等待定位 on forms (photos may still be taken; the"
        " accuracy is recorded) and asks to confirm when registering a facility",
    ),
    # -- server-verified photo stamps (server/stamp.py, media/stamp_code.py) --
    Setting(
        "STAMP_SECRET",
        "",
        "secret of the photo stamps' verification codes (empty: derived from SECRET_KEY under its"
        " own label); changing it makes every code issued before unverifiable",
    ),
    Setting(
        "STAMP_VERIFY_PER_MINUTE",
        30,
        "code look-ups at /desk/verify per user and minute, per server process (0: no limit)",
    ),
    # -- coordinates and datums (media/datum.py, media/checks.py) --
    Setting(
        "EVIDENCE_REGISTER_UNCERTAINTY_METRES",
        30,
        "how far a registered facility position may be from the facility itself (map picks,"
        " lists); added to EVIDENCE_FAR_METRES and the phone fix's accuracy before a photo is far",
    ),
    # -- maps (client_pwa/js/screens/map.js, the desk's map; /app/config.json; issue 12) --
    Setting(
        "MAP_TILE_URL",
        "",
        "tile URL template with {z}/{x}/{y} (and {s} for MAP_TILE_SUBDOMAINS), e.g. 天地图 with"
        " its key; empty: maps show the facilities on a plain background with a scale bar",
    ),
    Setting("MAP_TILE_SUBDOMAINS", "abc", "the letters or digits {s} takes (天地图: 01234567)"),
    Setting(
        "MAP_TILE_DATUM",
        "wgs84",
        "datum of the tiles: wgs84 (天地图/CGCS2000, OpenStreetMap) or gcj02 (AMap/Tencent tiles;"
        " positions are converted before drawing)",
    ),
    Setting("MAP_TILE_ATTRIBUTION", "", "attribution text shown on the map (plain text)"),
    Setting("MAP_MAX_ZOOM", 18, "deepest zoom level the tile server has"),
    Setting(
        "MAP_OFFLINE_MAX_MB",
        50,
        "largest estimated download for one village's offline map; larger choices are refused",
    ),
    # -- the audit log's retention (server/audit_command.py, server/storage/audit_chain.py) --
    Setting(
        "AUDIT_RETENTION_DAYS",
        180,
        "audit entries younger than this are never removed; the daily audit-retention job archives"
        " older ones to AUDIT_ARCHIVE_DIR (never less than 180: a smaller value is raised to 180"
        " with a warning; 0: keep every entry in the database)",
    ),
    Setting(
        "AUDIT_ARCHIVE_DIR",
        "audit-archive",
        "folder of the audit archive files (gzip JSON lines), relative to the instance folder",
    ),
    # -- passwords and two-factor login (server/password_policy.py, server/totp.py; issue 13) --
    Setting(
        "PASSWORD_MAX_AGE_DAYS",
        0,
        "days after which a password must be changed at the next login (0: no maximum age)",
    ),
    Setting(
        "TOTP_REQUIRED_ROLES",
        "",
        "comma-separated roles that must log in to the desk with a TOTP code (e.g. admin or"
        " admin,supervisor); they enrol after their password at the next login",
    ),
)

DEFAULTS = {s.name: s.default for s in SETTINGS}
