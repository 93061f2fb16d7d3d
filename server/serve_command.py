"""`villagecheck serve`: create or upgrade the database, then serve with gunicorn (serving.py)."""

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from . import scheduler as _scheduler
from . import serving
from .bootstrap import init_db
from .context import now_iso
from .demo import demo_data
from .logs import log_format
from .storage import connect


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(1, 64), help="worker processes [SERVE_WORKERS]")
@click.option("--threads", type=click.IntRange(1, 1000), help="threads per worker [SERVE_THREADS]")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="serve HTTPS")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="key of --certfile")
@click.option(
    "--demo/--no-demo", default=False, help="load the demo county when the database is empty"
)
@click.option(
    "--scheduler/--no-scheduler", default=True, help="run the scheduled jobs (in one worker)"
)
@with_appcontext
def serve(host, port, workers, threads, certfile, keyfile, demo, scheduler):
    """Create or upgrade the database, then serve the app with gunicorn worker processes."""
    config = current_app.config
    certfile = certfile or config["SERVE_CERTFILE"] or None
    keyfile = keyfile or config["SERVE_KEYFILE"] or None
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile 和 --keyfile 须一起给出")
    for path in (certfile, keyfile):
        if path and not Path(path).is_file():
            raise click.UsageError(f"没有这个文件: {path}")
    store = connect(config["DATABASE_URL"])  # closed before gunicorn forks its workers
    try:
        init_db(store, at=now_iso())
        if demo and store.is_empty():
            from .cli import _load_and_print

            _load_and_print(store)
        elif demo:
            click.echo(
                "数据库已有数据，未重新加载示例数据。demo logins: "
                + ", ".join(f"{u['username']}/{u['password']}" for u in demo_data()["users"])
            )
    finally:
        store.close()
    running = current_app.extensions.pop(_scheduler.EXTENSION, None)
    if running:  # SCHEDULER_ENABLED started one here, in the arbiter-to-be: not there
        running.shutdown(wait=True)  # a job under way finishes before anything is forked
    options = serving.gunicorn_options(
        config,
        host=host,
        port=port,
        workers=workers or config["SERVE_WORKERS"],
        threads=threads or config["SERVE_THREADS"],
        certfile=certfile,
        keyfile=keyfile,
        json_logs=log_format(current_app) == "json",
    )
    scheme = "https" if certfile else "http"
    root = f"{scheme}://{host}:{port}"
    click.echo(
        f"乡村巡检 服务已启动: {root}/ (手机端)  {root}/desk (督查工作台)"
        f"  ({options['workers']} 个工作进程)"
    )
    sys.stdout.flush()
    serving.Server(
        _create_app_in_worker,
        options,
        request_timeout=config["REQUEST_TIMEOUT_SECONDS"],
        scheduler=_scheduler.start if scheduler else None,
    ).run()


def _create_app_in_worker():
    """A worker's app, made after the fork, with its ingest threads (INGEST_WORKERS); its
    scheduler starts only if the arbiter says."""
    from . import create_app, ingest_worker

    app = create_app({"SCHEDULER_ENABLED": False})
    ingest_worker.start(app)
    return app
