"""Every SQL statement of villagecheck, behind one small class.

Protocol code (sync/, forms/, media/) never sees SQL; views, CLI commands and scheduler jobs call
methods of `Storage`, which is assembled here from one mixin per aggregate:

    core.py         connect, the writer queue, write()/reading(), dumps, change log, audit log
    schema.py       the migrations and SCHEMA_VERSION
    villages.py     villages
    users.py        users, assignments, device tokens and devices, desk sessions, login throttle
    forms.py        published forms
    records.py      facilities and monthly tasks, observations, conflicts
    submissions.py  submissions and reviews
    media.py        media, photo holders, evidence flags and risk scores
    jobs.py         job leases and runs, samples, indicators
    desk.py         the supervisors' and admins' pages, and the exports
"""

from .core import (
    DatabaseBusy,
    StorageBase,
    WriterQueue,
    connect,
    dumps,
    is_busy,
)
from .desk import DeskMixin
from .forms import FormsMixin
from .jobs import JobsMixin
from .media import MediaMixin
from .records import RecordsMixin
from .schema import MIGRATIONS, SCHEMA_VERSION, SchemaMixin
from .submissions import SubmissionsMixin
from .users import TOUCH_WAIT_SECONDS, UsersMixin
from .villages import VillagesMixin

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TOUCH_WAIT_SECONDS",
    "DatabaseBusy",
    "Storage",
    "WriterQueue",
    "connect",
    "dumps",
    "is_busy",
]


class Storage(
    SchemaMixin,
    VillagesMixin,
    UsersMixin,
    FormsMixin,
    RecordsMixin,
    SubmissionsMixin,
    MediaMixin,
    JobsMixin,
    DeskMixin,
    StorageBase,
):
    """The database of one deployment: records, submissions, the change log and the audit log.

    All SQL lives in this package, one module per aggregate, so that moving it onto one SQL
    layer for SQLite and PostgreSQL can go module by module. Writes go through `write()`:
    SQLite's write lock taken up front (BEGIN IMMEDIATE), nested calls as savepoints, and the
    threads of one process waiting their turn in the writer queue (see core.py).
    """
