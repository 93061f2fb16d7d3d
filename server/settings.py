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
    Setting("MEDIA_ROOT", "media", "photo store folder, relative to the instance folder"),
    Setting("MAX_JSON_BYTES", 8 * 1024 * 1024, "largest JSON request body accepted (413 above)"),
    Setting("MAX_PHOTO_BYTES", 20 * 1024 * 1024, "largest photo accepted (413 above)"),
    Setting("PULL_PAGE_SIZE", 500, "changes per pull page when the phone does not ask"),
    Setting("PULL_PAGE_MAX", 2000, "largest pull page a phone may ask for"),
    Setting("PUSH_BATCH_MAX", 200, "most items in one push"),
    Setting("CONFLICT_WINDOW_HOURS", 72, "reports further apart than this never conflict"),
    Setting("SKEW_FLAG_MINUTES", 30, "device clock skew above this is flagged"),
    Setting("TOKEN_TTL_DAYS", 180, "device tokens unused for this long stop working"),
    Setting("SECRET_KEY", None, "session signing key; generated into the instance folder if unset"),
)

DEFAULTS = {s.name: s.default for s in SETTINGS}
