"""`pipeline blocks apply`, `pipeline deploy`, `pipeline up` and `pipeline down`."""

import sys
from collections.abc import Callable
from typing import Annotated

import typer

PoolOption = Annotated[
    str | None,
    typer.Option(
        "--pool", metavar="POOL", help="work pool (default: $PREFECT_DEFAULT_WORK_POOL_NAME, else weather-pool)"
    ),
]


def add_commands(app: typer.Typer, execute: Callable[[Callable[[], int]], int]) -> None:
    """Register the stack's commands on the `pipeline` command; `execute` runs each one."""
    blocks = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(blocks, name="blocks", help="the Prefect blocks deployments read")

    @blocks.command("apply")
    def blocks_apply_command() -> int:
        """register the block types and write the documents from the PIPELINE_* variables"""
        return execute(blocks_apply)

    @app.command("deploy")
    def deploy_command(pool: PoolOption = None) -> int:
        """prepare the server in PREFECT_API_URL: work pool, queues, rate limit, blocks, deployments, automations"""
        return execute(lambda: deploy(pool))

    @app.command("up")
    def up_command(
        port: Annotated[
            int, typer.Option("--port", metavar="PORT", help="Prefect server port (default: 4200)", show_default=False)
        ] = 4200,
        pool: PoolOption = None,
        local_source: Annotated[
            bool, typer.Option("--local-source", help="also start the local Open-Meteo-compatible API and use it")
        ] = False,
        dashboard_port: Annotated[
            int,
            typer.Option(
                "--dashboard-port", metavar="PORT", help="the dashboard's port (default: 8088)", show_default=False
            ),
        ] = 8088,
        no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="leave the BI dashboard out")] = False,
    ) -> int:
        """start a Prefect server, the BI dashboard and a process worker here, in the background"""
        return execute(lambda: up(port, pool, local_source, None if no_dashboard else dashboard_port))

    @app.command("down")
    def down_command() -> int:
        """stop what `pipeline up` started"""
        return execute(down)


def blocks_apply() -> int:
    from blocks import apply_blocks
    from pipeline.settings import Settings

    _require_api_url()
    for line in apply_blocks(Settings()):
        print(line)
    return 0


def deploy(pool: str | None) -> int:
    from pipeline.deploy import configure_server, default_pool
    from pipeline.settings import Settings

    _require_api_url()
    return _report(lambda: configure_server(Settings(), pool or default_pool()))


def up(port: int, pool: str | None, local_source: bool, dashboard_port: int | None) -> int:
    from pipeline import stack
    from pipeline.deploy import default_pool
    from pipeline.settings import Settings

    settings = Settings()

    def start() -> None:
        state = stack.up(settings, port, pool or default_pool(), local_source, dashboard_port=dashboard_port)
        print(f"\nPrefect UI: {state.ui_url}")
        if state.dashboard_url:
            print(f"Dashboard: {state.dashboard_url}")
        print(f"Use it from a shell: export PREFECT_API_URL={state.api_url}")
        print("Stop everything: pipeline down")

    return _report(start)


def down() -> int:
    from pipeline import stack
    from pipeline.settings import Settings

    def stop() -> None:
        if not stack.down(Settings().data_dir):
            print("pipeline down: nothing to stop, no stack is recorded")

    return _report(stop)


def _report(action) -> int:
    from pipeline.dashboard.client import SupersetError
    from pipeline.dashboard.server import DashboardServerError
    from pipeline.deploy import DeployError
    from pipeline.processes import ProcessError

    try:
        action()
    except (DeployError, ProcessError, SupersetError, DashboardServerError) as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 1
    return 0


def _require_api_url() -> None:
    from prefect.settings import PREFECT_API_URL

    # Without it Prefect would start a temporary server and the blocks would vanish with it.
    if not PREFECT_API_URL.value():
        raise ValueError("PREFECT_API_URL is not set: point it at the Prefect server (pipeline up prints it)")
