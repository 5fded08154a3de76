"""The BI server on this machine: Superset's virtualenv, secrets, metadata database, first-time setup and process."""

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from pipeline.settings import PROJECT_ROOT

DEPLOYMENT_DIR = PROJECT_ROOT / "deployments" / "superset"
INSTALL_SCRIPT = DEPLOYMENT_DIR / "install"
LOCK_FILE = DEPLOYMENT_DIR / "requirements.lock"
CONFIG_FILE = DEPLOYMENT_DIR / "superset_config.py"
DEFAULT_VENV = PROJECT_ROOT / ".venv-superset"
READER_ROLE = "weather_dashboard"
ADMIN_USER = "admin"
METADATA_DATABASE = "superset"
# Generated once into the secret file, never written anywhere else.
SECRET_NAMES = ("SUPERSET_SECRET_KEY", "PIPELINE_DASHBOARD_PASSWORD", "PIPELINE_DASHBOARD_READER_PASSWORD")
# The first `superset db upgrade` + `init` take ~30 s on two cores.
SETUP_TIMEOUT_SECONDS = 600.0


class DashboardServerError(RuntimeError):
    """Installing, setting up or starting the BI server failed."""


@dataclass(frozen=True)
class SupersetHome:
    """Superset's state on this machine: its cache, its SQLite metadata (tests only) and the secret file."""

    root: Path

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.env"

    @property
    def setup_stamp(self) -> Path:
        return self.root / ".set-up"


def venv_dir() -> Path:
    return Path(os.environ.get("SUPERSET_VENV") or DEFAULT_VENV)


def install(venv: Path | None = None) -> Path:
    """Install Superset from its lock into `venv` (instant when already there); returns the venv."""
    venv = venv or venv_dir()
    result = subprocess.run([str(INSTALL_SCRIPT), str(venv)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DashboardServerError(f"installing Superset into {venv} failed: {result.stderr.strip()[-2000:]}")
    return venv


def ensure_secrets(path: Path) -> dict[str, str]:
    """The secret file's values, generating any that are missing (file mode 0600)."""
    values = read_env_file(path) if path.exists() else {}
    missing = [name for name in SECRET_NAMES if not values.get(name)]
    if missing:
        values |= {name: secrets.token_urlsafe(32) for name in missing}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8")
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines, as systemd's EnvironmentFile= reads them (no quoting, no expansion)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def superset_env(home: SupersetHome, secret_values: dict[str, str], metadata_url: str | None) -> dict[str, str]:
    """The environment of every `superset` command and of its web server."""
    env = {
        **os.environ,
        "SUPERSET_HOME": str(home.root),
        "SUPERSET_CONFIG_PATH": str(CONFIG_FILE),
        "SUPERSET_SECRET_KEY": secret_values["SUPERSET_SECRET_KEY"],
        "FLASK_APP": "superset.app:create_app()",
        # Superset's own usage statistics stay off, like everything else in the stack.
        "SCARF_ANALYTICS": "false",
    }
    if metadata_url:
        env["SUPERSET_METADATA_URL"] = metadata_url
    return env


def set_up(venv: Path, home: SupersetHome, env: dict[str, str], admin_password: str) -> bool:
    """Migrate Superset's metadata database and create its admin user, once; returns whether it ran now."""
    stamp = f"{LOCK_FILE.stat().st_mtime_ns} {env.get('SUPERSET_METADATA_URL', 'sqlite')}"
    if home.setup_stamp.exists() and home.setup_stamp.read_text(encoding="utf-8") == stamp:
        return False
    home.root.mkdir(parents=True, exist_ok=True)
    admin = ["--username", ADMIN_USER, "--firstname", "Weather", "--lastname", "Admin", "--email", "admin@localhost"]

    def superset(*args: str) -> str:
        argv = [str(venv / "bin" / "superset"), *args]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=SETUP_TIMEOUT_SECONDS)
        if result.returncode != 0:
            raise DashboardServerError(f"`superset {' '.join(args[:2])}` failed: {result.stderr.strip()[-2000:]}")
        return result.stdout + result.stderr

    superset("db", "upgrade")
    # Each command is a Python process importing Superset (~8 s): an existing admin only gets the password.
    if "already exists" in superset("fab", "create-admin", *admin, "--password", admin_password):
        superset("fab", "reset-password", "--username", ADMIN_USER, "--password", admin_password)
    superset("init")
    home.setup_stamp.write_text(stamp, encoding="utf-8")
    return True


def web_command(venv: Path, port: int, workers: int = 2) -> list[str]:
    """Superset under gunicorn, as in production; the systemd unit runs the same."""
    return [
        str(venv / "bin" / "gunicorn"),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--limit-request-line",
        "0",
        "superset.app:create_app()",
    ]


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def sqlalchemy_url(dsn: str, driver: str, **override: str) -> str:
    """A libpq DSN as a SQLAlchemy URL for `driver`, with `override` (user, password, dbname) applied."""
    info = psycopg.conninfo.conninfo_to_dict(dsn) | override
    host = str(info.get("host") or "localhost")
    query = {}
    if host.startswith("/"):  # a Unix-socket directory (the embedded Postgres) goes in the query
        query, host = {"host": host}, None
    url = URL.create(
        f"postgresql+{driver}",
        username=info.get("user"),
        password=info.get("password"),
        host=host,
        port=int(info["port"]) if info.get("port") else None,
        database=info.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def reader_url(warehouse_dsn: str, password: str) -> str:
    """Superset's connection to the warehouse: the read-only role, same server and database."""
    return sqlalchemy_url(warehouse_dsn, "psycopg2", user=READER_ROLE, password=password)


def set_reader_password(conn: psycopg.Connection, password: str) -> None:
    """Give the read-only role (created by migration 007) the password Superset's connection uses."""
    # ALTER ROLE takes no bound parameters; the literal is quoted by psycopg and never logged.
    conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(READER_ROLE), sql.Literal(password)))


def metadata_url(warehouse_dsn: str) -> str:
    """Superset's metadata database, `superset` on the warehouse's Postgres server, created if missing."""
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", [METADATA_DATABASE]).fetchone():
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(METADATA_DATABASE)))
    return sqlalchemy_url(warehouse_dsn, "psycopg2", dbname=METADATA_DATABASE)
