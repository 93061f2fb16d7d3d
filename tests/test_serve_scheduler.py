"""`villagecheck serve --workers 3` runs the scheduled jobs in exactly one worker (issue 10).

The arbiter gives the role to one worker; when that worker dies, the worker forked in its
place takes it over. The job lease in the database still decides each run: the job that runs
at start ran once, by the worker that holds the role.
"""

import os
import re
import signal
import time

import pytest
from live_serve import Serve

from server.storage import connect

ROLE = re.compile(r"scheduled jobs run in worker (\d+)")


def role_holders(server) -> list[int]:
    return [int(pid) for pid in ROLE.findall(server.output())]


def wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def server(tmp_path):
    with Serve(tmp_path, "--workers", "3") as live:
        yield live


def test_one_worker_runs_the_jobs_and_another_takes_over_when_it_dies(server):
    assert wait_for(lambda: len(server.workers()) == 3 and role_holders(server))
    time.sleep(1)  # every worker has booted: still one holder
    (holder,) = role_holders(server)
    assert holder in server.workers()

    store = connect(server.database)
    try:  # the job that runs at start ran in that worker only (a cron run may follow it)
        assert wait_for(lambda: store.job_runs("reprocess-held", 10))
        holders = {run["holder"].split(":")[1] for run in store.job_runs(None, 50)}
        assert holders == {str(holder)}
    finally:
        store.close()

    os.kill(holder, signal.SIGKILL)
    assert wait_for(lambda: len(role_holders(server)) == 2)
    successor = role_holders(server)[1]
    assert successor != holder and successor in server.workers()
    assert wait_for(lambda: len(server.workers()) == 3)
