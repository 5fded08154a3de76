"""`pipeline blocks apply`, `pipeline deploy`, `pipeline up` and `pipeline down`."""

import argparse
import sys

from pipeline.settings import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the stack's commands on the `pipeline` parser's subcommands."""
    block_commands = commands.add_parser("blocks", help="the Prefect blocks deployments read").add_subparsers(
        title="blocks commands"
    )
    apply = block_commands.add_parser(
        "apply", help="register the block types and write the documents from the PIPELINE_* variables"
    )
    apply.set_defaults(handler=cmd_blocks_apply)

    deploy = commands.add_parser(
        "deploy",
        help="prepare the server in PREFECT_API_URL: work pool, queues, rate limit, blocks, deployments, automations",
    )
    deploy.add_argument("--pool", help="work pool (default: $PREFECT_DEFAULT_WORK_POOL_NAME, else weather-pool)")
    deploy.set_defaults(handler=cmd_deploy)

    up = commands.add_parser("up", help="start a Prefect server and a process worker here, in the background")
    up.add_argument("--port", type=int, default=4200, help="Prefect server port (default: 4200)")
    up.add_argument("--pool", help="work pool (default: $PREFECT_DEFAULT_WORK_POOL_NAME, else weather-pool)")
    up.add_argument(
        "--local-source", action="store_true", help="also start the local Open-Meteo-compatible API and use it"
    )
    up.set_defaults(handler=cmd_up)

    down = commands.add_parser("down", help="stop what `pipeline up` started")
    down.set_defaults(handler=cmd_down)


def cmd_blocks_apply(args: argparse.Namespace) -> int:
    from blocks import apply_blocks

    _require_api_url()
    for line in apply_blocks(Settings()):
        print(line)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from pipeline import deploy

    _require_api_url()
    return _report(lambda: deploy.configure_server(Settings(), args.pool or deploy.default_pool()))


def cmd_up(args: argparse.Namespace) -> int:
    from pipeline import deploy, stack

    settings = Settings()

    def start() -> None:
        state = stack.up(settings, args.port, args.pool or deploy.default_pool(), args.local_source)
        print(f"\nPrefect UI: {state.ui_url}")
        print(f"Use it from a shell: export PREFECT_API_URL={state.api_url}")
        print("Stop everything: pipeline down")

    return _report(start)


def cmd_down(args: argparse.Namespace) -> int:
    from pipeline import stack

    def stop() -> None:
        if not stack.down(Settings().data_dir):
            print("pipeline down: nothing to stop, no stack is recorded")

    return _report(stop)


def _report(action) -> int:
    from pipeline.deploy import DeployError
    from pipeline.processes import ProcessError

    try:
        action()
    except (DeployError, ProcessError) as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 1
    return 0


def _require_api_url() -> None:
    from prefect.settings import PREFECT_API_URL

    # Without it Prefect would start a temporary server and the blocks would vanish with it.
    if not PREFECT_API_URL.value():
        raise ValueError("PREFECT_API_URL is not set: point it at the Prefect server (pipeline up prints it)")
