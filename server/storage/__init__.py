"""Every SQL statement of villagecheck, behind one small class.

Protocol code (sync/, forms/, media/) never sees SQL; views, CLI commands and scheduler jobs call
methods of `Storage`, which is assembled here from one mixin per aggregate:

    core.py         connect, transactions, the query helpers, dumps, change log, audit log
    dialect.py      what SQLite and PostgreSQL spell differently
    tables.py       the schema, declared once as SQLAlchemy metadata
    schema.py       creating and upgrading it (Alembic revisions in migrations/)
    villages.py     villages
    users.py        users, assignments, device tokens and devices, desk sessions, login throttle
    forms.py        published forms
    records.py      facilities and monthly tasks, observations, conflicts
    submissions.py  submissions and reviews
    media.py        media, photo holders, evidence flags and risk scores
    ingest_queue.py photos waiting for ingest, claimed by ingest workers
    jobs.py         job leases and runs, samples, indicators
    desk.py         the supervisors' and admins' pages, and the exports
"""

from .audit_queries import AuditQueriesMixin
from .core import (
    DatabaseBusy,
    DatabaseUnavailable,
    StorageBase,
    WriterQueue,
    connect,
    database_url,
    dumps,
    is_busy,
)
from .desk import DeskMixin
from .forms import FormsMixin
from .ingest_queue import IngestQueueMixin
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
    "DatabaseUnavailable",
    "Storage",
    "WriterQueue",
    "connect",
    "database_url",
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
    IngestQueueMixin,
    JobsMixin,
    DeskMixin,
    AuditQueriesMixin,
    StorageBase,
):
    """The database of one deployment: records, submissions, the change log and the audit log.

    All SQL lives in this package, one module per aggregate, written once for SQLite and
    PostgreSQL. Writes go through `write()`: one transaction, nested calls as savepoints;
    on SQLite the write lock is taken up front and the threads of one process wait their turn
    in the writer queue, on PostgreSQL merges lock the records they touch (see core.py).
    """
