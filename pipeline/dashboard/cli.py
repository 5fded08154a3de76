"""`pipeline dashboard …`: what operators do with the BI dashboard (install, deploy, refresh, its admin user)."""

import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", metavar="URL", help="Superset's URL (default: $PIPELINE_DASHBOARD_URL, else `pipeline up`'s)"
    ),
]


def add_commands(app: typer.Typer, execute: Callable[[Callable[[], int]], int], with_warehouse) -> None:
    """Register `pipeline dashboard`; `with_warehouse` runs a command with the warehouse configured or started."""
    group = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(group, name="dashboard", help="the BI dashboard (Apache Superset) on the published marts")

    @group.command("install")
    def install_command() -> int:
        """install Superset into its own virtualenv from deployments/superset/requirements.lock"""
        return execute(install)

    @group.command("setup")
    def setup_command() -> int:
        """install Superset and prepare its metadata database and admin user from the environment (the VM's env file)"""
        return execute(setup)

    @group.command("deploy")
    def deploy_command(url: UrlOption = None) -> int:
        """apply the dashboard (connection, datasets, charts) to Superset; safe to repeat"""
        return execute(lambda: with_warehouse(lambda: deploy(url)))

    @group.command("refresh")
    def refresh_command(url: UrlOption = None) -> int:
        """drop Superset's cached results for the dashboard and compute its charts again"""
        return execute(lambda: refresh(url))

    @group.command("admin")
    def admin_command(url: UrlOption = None) -> int:
        """where the dashboard is, its admin user, and the file that holds the password"""
        return execute(lambda: admin(url))


def install() -> int:
    from pipeline.dashboard import server

    started = time.perf_counter()
    venv = server.install()
    print(f"Superset is installed in {venv} ({time.perf_counter() - started:.1f} s)")
    return 0


def setup() -> int:
    import os
    from pathlib import Path

    from pipeline.dashboard import server
    from pipeline.dashboard.settings import DashboardSettings

    settings = DashboardSettings()
    needed = {"SUPERSET_SECRET_KEY", "SUPERSET_METADATA_URL", "SUPERSET_HOME"} - set(os.environ)
    if needed or settings.password is None:
        raise ValueError(f"set {', '.join(sorted(needed | {'PIPELINE_DASHBOARD_PASSWORD'}))} (weather.env)")
    venv = server.install()
    home = server.SupersetHome(Path(os.environ["SUPERSET_HOME"]))
    secret_values = {"SUPERSET_SECRET_KEY": os.environ["SUPERSET_SECRET_KEY"]}
    env = server.superset_env(home, secret_values, os.environ["SUPERSET_METADATA_URL"])
    ran = server.set_up(venv, home, env, settings.password.get_secret_value())
    print(f"Superset in {venv}: {'set up' if ran else 'already set up'} ({home.root})")
    return 0


def deploy(url: str | None) -> int:
    from pipeline.dashboard.client import SupersetClient
    from pipeline.dashboard.deploy import apply, prepare_warehouse
    from pipeline.dashboard.server import reader_url
    from pipeline.settings import current_settings

    # With the embedded warehouse when none is configured (the command runs under `with_warehouse`).
    settings = current_settings()
    resolved = _resolve(url)
    dsn = settings.database_url.get_secret_value()
    reader_password = resolved.reader_password.get_secret_value()
    prepare_warehouse(dsn, reader_password, settings.dbt_project_dir)
    password = resolved.password.get_secret_value()
    with SupersetClient(resolved.url, resolved.user, password, resolved.timeout_seconds) as client:
        deployed = apply(client, reader_url(dsn, reader_password))
    print(
        f"dashboard deployed: {deployed.url} ({len(deployed.chart_ids)} charts on {len(deployed.dataset_ids)} datasets)"
    )
    return 0


def refresh(url: str | None) -> int:
    from pipeline.dashboard.refresh import refresh as refresh_dashboard

    started = time.perf_counter()
    refreshed = refresh_dashboard(_resolve(url))
    took = time.perf_counter() - started
    print(f"dashboard refreshed: {refreshed.charts} charts computed again in {took:.2f} s")
    for name, error in refreshed.errors.items():
        print(f"  {name}: {error}", file=sys.stderr)
    return 1 if refreshed.errors else 0


def admin(url: str | None) -> int:
    from pipeline.dashboard import server, service, spec
    from pipeline.settings import Settings

    resolved = _resolve(url, need_password=False)
    print(f"dashboard: {resolved.url.rstrip('/')}/superset/dashboard/{spec.DASHBOARD_SLUG}/")
    print(f"user: {resolved.user}")
    secrets = service.home(Settings().data_dir / "stack").secrets
    if secrets.exists():
        print(f"password: PIPELINE_DASHBOARD_PASSWORD in {secrets}")
    else:
        print("password: $PIPELINE_DASHBOARD_PASSWORD (on a VM: /etc/weather-pipeline/weather.env)")
    print(f"reset it: {server.venv_dir()}/bin/superset fab reset-password --username {resolved.user}")
    return 0


def _resolve(url: str | None, need_password: bool = True):
    """The dashboard settings, completed from `pipeline up`'s state and secret file where unset."""
    from pipeline import stack
    from pipeline.dashboard import server, service
    from pipeline.dashboard.settings import DashboardSettings
    from pipeline.settings import Settings

    settings = DashboardSettings()
    root = Settings().data_dir / "stack"
    state = stack.load_state(stack.StackPaths(root))
    update: dict = {}
    if url or not settings.url:
        update["url"] = url or (state.dashboard_url.split("/superset/")[0] if state and state.dashboard_url else None)
    secrets = service.home(root).secrets
    if secrets.exists():
        values = server.read_env_file(secrets)
        if settings.password is None:
            update["password"] = values.get("PIPELINE_DASHBOARD_PASSWORD")
        if settings.reader_password is None:
            update["reader_password"] = values.get("PIPELINE_DASHBOARD_READER_PASSWORD")
    resolved = DashboardSettings(**{**settings.model_dump(), **{k: v for k, v in update.items() if v}})
    if not resolved.url:
        raise ValueError("no dashboard URL: set PIPELINE_DASHBOARD_URL, pass --url, or start one with `pipeline up`")
    if need_password and (resolved.password is None or resolved.reader_password is None):
        raise ValueError("set PIPELINE_DASHBOARD_PASSWORD and PIPELINE_DASHBOARD_READER_PASSWORD")
    return resolved
