"""The schema, declared once for both engines as SQLAlchemy `Table` metadata.

`metadata.create_all` builds a fresh database at the newest schema (SQLite or PostgreSQL); an
existing SQLite file made by older code is upgraded in place instead (schema.py, migrations/).
docs/SCALE.md says what a later step to distributing by county would still need (a county code
on the tables that reach a village only through their record, and a change log per county).

Types: text (compared byte by byte, see TEXT) for identifiers, clocks, timestamps and canonical
JSON (its bytes are hashed, so the database must not rewrite it); BIGINT for counters and
milliseconds; integer 0/1 flags. Integer primary keys are SQLite's rowid alias there and an
identity column on PostgreSQL. `seq` columns number rows in insertion order (photos of a field,
flags of a submission, the near-duplicate index): SQLite assigns them from `dialect.next_seq`,
PostgreSQL from an identity.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

#: An integer primary key: SQLite's rowid alias, PostgreSQL's BIGSERIAL.
ID = BigInteger().with_variant(Integer(), "sqlite")

#: Text compared byte by byte on both engines. Encoded clocks are ordered as strings (max,
#: ORDER BY, >=), and a PostgreSQL database's default collation (en_US.UTF-8, zh_CN.UTF-8)
#: ignores punctuation and would order them, ids and names differently from SQLite.
TEXT = Text().with_variant(Text(collation="C"), "postgresql")


def _id(name: str = "id") -> Column:
    return Column(name, ID, primary_key=True, autoincrement=True)


def _seq() -> Column:
    """Insertion order for tables without an integer key (see the module docstring)."""
    return Column("seq", BigInteger, Identity(), nullable=False)


def _text(name: str, *args, **kwargs) -> Column:
    return Column(name, TEXT, *args, **kwargs)


def _int(name: str, *args, **kwargs) -> Column:
    return Column(name, BigInteger, *args, **kwargs)


meta = Table("meta", metadata, _text("key", primary_key=True), _text("value"))

villages = Table(
    "villages",
    metadata,
    _text("code", primary_key=True),
    _text("name", nullable=False),
    _text("township", nullable=False),
    _text("county", nullable=False),
    _int("county_class", nullable=False),
    _int("households"),
    Column("lat", Float),  # WGS-84 whatever it was declared in (schema 7)
    Column("lon", Float),
    _text("datum"),  # the datum it was declared in: media.datum.DATUMS
    _text("position_source"),  # media.datum.SOURCES
)

users = Table(
    "users",
    metadata,
    _id(),
    _text("username", nullable=False),
    _text("display_name"),
    _text("role", nullable=False),
    _text("password_hash", nullable=False),
    _text("scope_township"),
    _text("scope_county"),
    _int("active", server_default="1"),
    _text("created_at"),
    # passwords and two-factor login (issue 13, migration v11)
    _int("must_change_password", server_default="0"),
    _text("password_changed_at"),
    _text("totp_secret"),  # Fernet-encrypted under a key derived from SECRET_KEY (server/totp.py)
    _text("totp_enrolled_at"),
    _text("totp_recovery"),  # JSON list of the SHA-256 of each unused recovery code
    _int("totp_last_step"),  # the last TOTP time step accepted: a code works once
    Index("idx_users_username", "username", unique=True),
)

assignments = Table(
    "assignments",
    metadata,
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True),
    _text("village_code", ForeignKey("villages.code"), primary_key=True),
)

tokens = Table(
    "tokens",
    metadata,
    _id(),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False),
    _text("token_hash", nullable=False),
    _text("device_id"),
    _text("label"),
    _text("created_at", nullable=False),
    _text("last_used_at"),
    _text("revoked_at"),
    Index("idx_tokens_token_hash", "token_hash", unique=True),
)

devices = Table(
    "devices",
    metadata,
    _text("device_id", primary_key=True),
    Column("user_id", ID, ForeignKey("users.id")),
    _text("last_seen_at"),
    _text("last_clock"),
    _int("skew_ms"),
)

desk_sessions = Table(
    "desk_sessions",
    metadata,
    _id(),
    _text("session_hash", nullable=False),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False),
    _text("created_at", nullable=False),
    _text("last_seen_at", nullable=False),
    Index("idx_desk_sessions_session_hash", "session_hash", unique=True),
    Index("idx_desk_sessions_user_id", "user_id"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    _text("key", primary_key=True),
    _text("kind", nullable=False),
    _int("failures", nullable=False),
    Column("last_at", Float, nullable=False),
    Column("next_at", Float, nullable=False),
    Index("idx_login_throttle_kind_last_at", "kind", "last_at"),
)

forms = Table(
    "forms",
    metadata,
    _text("form_id", primary_key=True),
    _int("version", primary_key=True, autoincrement=False),
    _text("definition", nullable=False),
    _text("sha256", nullable=False),
    _text("published_at"),
)

facilities = Table(
    "facilities",
    metadata,
    _text("id", primary_key=True),
    _text("village_code", ForeignKey("villages.code"), nullable=False),
    _text("kind", nullable=False),
    _text("name", nullable=False),
    Column("lat", Float),  # WGS-84 whatever it was declared in (schema 7)
    Column("lon", Float),
    _text("datum"),  # the datum it was declared in: media.datum.DATUMS
    _text("position_source"),  # media.datum.SOURCES
    _text("state", nullable=False),
    Column("created_by", ID, ForeignKey("users.id")),
    _text("created_clock"),
    _text("created_at"),
    _text("content_hash"),
    Index("idx_facilities_village_code_kind", "village_code", "kind"),
)

tasks = Table(
    "tasks",
    metadata,
    _text("id", primary_key=True),
    _text("village_code", ForeignKey("villages.code"), nullable=False),
    _text("month", nullable=False),
    _text("template", nullable=False),
    _text("title"),
    _text("due_on"),
    _text("state", nullable=False),
    _text("created_at"),
    Index("idx_tasks_village_code_month", "village_code", "month"),
)

submissions = Table(
    "submissions",
    metadata,
    _text("id", primary_key=True),
    _text("form_id", nullable=False),
    _int("form_version", nullable=False),
    _text("record_id", nullable=False),
    _text("record_type"),
    _text("village_code", ForeignKey("villages.code"), nullable=False),
    Column("author_id", ID, ForeignKey("users.id")),
    _text("device_id"),
    _text("clock", nullable=False),
    _text("observed_at"),
    _text("received_at"),
    _text("answers", nullable=False),
    _text("content_hash"),
    _text("state"),
    _int("skew_ms"),
    _int("risk_score"),
    _text("completed_at"),
    _text("replaces"),  # the submission this one fixes and resends (issue 12; schema 9)
    Index("idx_submissions_record_id", "record_id"),
    Index("idx_submissions_village_code_form_id", "village_code", "form_id"),
    Index("idx_submissions_state_risk_score", "state", "risk_score"),
    Index("idx_submissions_replaces", "replaces"),
)

reviews = Table(
    "reviews",
    metadata,
    _id(),
    _text("submission_id", ForeignKey("submissions.id"), nullable=False),
    _text("decision", nullable=False),
    _text("reason"),
    Column("reviewer_id", ID, ForeignKey("users.id"), nullable=False),
    _text("at", nullable=False),
    Index("idx_reviews_submission_id", "submission_id"),
)

flags = Table(
    "flags",
    metadata,
    _text("submission_id", ForeignKey("submissions.id"), nullable=False),
    _text("code", nullable=False),
    _text("photo"),
    _text("figures"),
    _text("message"),
    _seq(),
    Index("idx_flags_submission_id", "submission_id"),
    Index("idx_flags_submission_id_code_photo", "submission_id", "code", "photo"),
    Index("idx_flags_seq", "seq"),
)

observations = Table(
    "observations",
    metadata,
    _text("id", primary_key=True),
    _text("record_id", nullable=False),
    _text("clock", nullable=False),
    _int("wall_ms", nullable=False),
    _text("fields", nullable=False),
    _text("base", nullable=False),
    Index("idx_observations_record_id_wall_ms", "record_id", "wall_ms"),
    Index("idx_observations_clock", "clock"),
)

media = Table(
    "media",
    metadata,
    _text("sha256", primary_key=True),
    _int("size"),
    _text("mime"),
    _int("width"),
    _int("height"),
    _text("exif"),
    _text("phash"),
    _text("crop_hashes"),
    _text("created_at"),
    _seq(),
    Index("idx_media_seq", "seq"),
)

submission_media = Table(
    "submission_media",
    metadata,
    _text("submission_id", ForeignKey("submissions.id"), primary_key=True),
    _text("field", primary_key=True),
    _text("sha256", primary_key=True),
    _text("captured_at"),
    _text("position"),
    _seq(),
    Index("idx_submission_media_sha256", "sha256"),
    Index("idx_submission_media_seq", "seq"),
)

#: The verification code of each use of a photo by a submission (media/stamp_code.py): an HMAC
#: of the photo, the submission, `received_at` and the submission's record. `key_id` names the
#: secret it was made with. Codes are 50 bits, so one may (rarely) repeat: not unique.
photo_codes = Table(
    "photo_codes",
    metadata,
    _text("submission_id", ForeignKey("submissions.id"), primary_key=True),
    _text("sha256", primary_key=True),
    _text("code", nullable=False),
    _text("received_at", nullable=False),
    _text("key_id", nullable=False),
    Index("idx_photo_codes_code", "code"),
)

photo_holders = Table(
    "photo_holders",
    metadata,
    _text("sha256", primary_key=True),
    Column("user_id", ID, primary_key=True, autoincrement=False),
    _text("source", nullable=False),
    _text("at", nullable=False),
)

conflicts = Table(
    "conflicts",
    metadata,
    _text("id", primary_key=True),
    _text("record_id"),
    _text("field"),
    _text("a"),
    _text("b"),
    _text("a_value"),
    _text("b_value"),
    _text("winner"),
    _text("resolved_by"),
    _text("created_at"),
    Index("idx_conflicts_record_id_field", "record_id", "field"),
)

changes = Table(
    "changes",
    metadata,
    _id("seq"),
    _text("entity", nullable=False),
    _text("entity_id", nullable=False),
    _text("village_code"),
    Column("user_id", ID),
    _text("at"),
)

# Settings changed on the admin pages (issue 13): a value (JSON) per county ('' = the whole
# deployment) and name, overriding the config value of that name at read time.
admin_settings = Table(
    "admin_settings",
    metadata,
    _text("county", primary_key=True),
    _text("name", primary_key=True),
    _text("value", nullable=False),
    _text("updated_at", nullable=False),
    Column("updated_by", ID),
)

audit = Table(
    "audit",
    metadata,
    _id(),
    _text("at", nullable=False),
    Column("user_id", ID),
    _text("action", nullable=False),
    _text("entity"),
    _text("entity_id"),
    _text("detail"),
    # The hash chain (audit_chain.py): 1, 2, 3, … in append order; the previous entry's hash
    # and this one's (SHA-256 over its fields and prev_hash).
    _int("seq", nullable=False),
    _text("prev_hash", nullable=False),
    _text("hash", nullable=False),
    Index("idx_audit_seq", "seq", unique=True),
)

job_leases = Table(
    "job_leases",
    metadata,
    _text("job", primary_key=True),
    _text("holder", nullable=False),
    _text("expires_at", nullable=False),
    _text("last_slot"),
)

job_runs = Table(
    "job_runs",
    metadata,
    _id(),
    _text("job", nullable=False),
    _text("holder", nullable=False),
    _text("slot"),
    _text("started_at", nullable=False),
    _text("finished_at"),
    _int("ok"),
    _text("summary"),
    _text("error"),
    Index("idx_job_runs_job_id", "job", "id"),
)

samples = Table(
    "samples",
    metadata,
    _id(),
    _text("drawn_at", nullable=False),
    _int("seed", nullable=False),
    _text("rule", nullable=False),
    _int("pool_size"),
    _int("picked_count"),
)

sample_members = Table(
    "sample_members",
    metadata,
    Column("sample_id", ID, ForeignKey("samples.id"), primary_key=True),
    _text("submission_id", ForeignKey("submissions.id"), primary_key=True),
    _text("village_code"),
    _int("risk_score"),
    _int("picked", nullable=False),
    _text("reason"),
    Index("idx_sample_members_submission_id", "submission_id"),
)

indicator_snapshots = Table(
    "indicator_snapshots",
    metadata,
    _text("month", primary_key=True),
    _text("computed_at", nullable=False),
    _text("data", nullable=False),
)

#: Photos waiting for ingest (server/ingest_worker.py): one row per held photo not yet processed.
#: A worker claims a row until `claim_until`; one killed mid-ingest loses it when that passes.
#: Done rows are deleted (the media row is then the truth); `failed` and `rejected` rows stay.
ingest_queue = Table(
    "ingest_queue",
    metadata,
    _text("sha256", primary_key=True),
    _text("state", nullable=False),
    _int("attempts", nullable=False),
    _text("claimed_by"),
    _text("claim_until"),
    _text("last_error"),
    _text("enqueued_at", nullable=False),
    _text("updated_at", nullable=False),
    Index("idx_ingest_queue_state_claim_until", "state", "claim_until"),
)
