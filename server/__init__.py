"""villagecheck's Flask application factory.

`create_app()` sets defaults from server.settings, then the instance folder's config.py, then
VILLAGECHECK_* environment variables, then the test dict; nothing creates an app at import time.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, Response, current_app
from werkzeug.middleware.proxy_fix import ProxyFix

from . import errors, maps
from .settings import DEFAULTS
from .storage import database_url


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("VILLAGECHECK")
    if test_config:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["DATABASE_PATH"] = os.path.join(app.instance_path, app.config["DATABASE"])
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or database_url(
        app.config["DATABASE_PATH"]
    )
    app.config["MEDIA_PATH"] = os.path.join(app.instance_path, app.config["MEDIA_ROOT"])
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_JSON_BYTES"]
    app.json.ensure_ascii = False
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["DESK_SESSION_HOURS"])
    if app.config["TRUSTED_PROXY"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    from . import api, auth, cli, context, exports, media_api, pwa, scheduler, supervisor, web
    from .admin import bp as admin_bp
    from .admin_forms import forms as _forms  # noqa: F401 (routes on the admin blueprint)
    from .health import bp as health_bp
    from .logs import install as install_logs

    errors.register(app)
    install_logs(app)
    app.session_interface = web.DeskCookieInterface()
    app.after_request(_security_headers)
    app.teardown_appcontext(context.close_storage)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(media_api.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(supervisor.bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(pwa.bp)
    app.register_blueprint(health_bp)
    cli.register(app)
    if app.config["SCHEDULER_ENABLED"]:
        scheduler.start(app)
    return app


# The desk and the app load scripts, styles and images from this origin only (photo previews
# in the app are blob: URLs), and no page may be framed: approve/reject cannot be clickjacked.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'self';"
    " form-action 'self'; frame-ancestors 'none'"
)


def _security_headers(response: Response) -> Response:
    tiles = maps.csp_sources(current_app.config)  # the map's tile server (issue 12)
    csp = CONTENT_SECURITY_POLICY
    if tiles:
        csp = csp.replace("blob:;", f"blob:{tiles}; connect-src 'self'{tiles};")
    response.headers.setdefault("Content-Security-Policy", csp)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _instance_secret(folder: Path) -> str:
    """A random key kept in the instance folder, made on first start."""
    path = folder / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
