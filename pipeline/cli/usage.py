"""Usage errors in argparse's form, which scripts and the drill read: `pipeline run: error: argument --date: …`."""

import sys

import typer

# Typer's own copy of Click: its usage errors are shown here, in argparse's form, not Typer's.
from typer._click import exceptions as click_exceptions


def main(app: typer.Typer, argv: list[str] | None = None) -> int:
    """Run `app` on `argv`; a usage error prints the usage and one line, and exits 2."""
    command = typer.main.get_command(app)
    try:
        return command.main(args=argv, prog_name="pipeline", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message())
        return 2
    except click_exceptions.UsageError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_usage(), file=sys.stderr)
        prog = exc.ctx.command_path if exc.ctx is not None else "pipeline"
        print(f"{prog}: error: {_message(exc)}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click_exceptions.Abort:  # end of input at a prompt: the same as Ctrl-C
        return 130


def _message(exc: click_exceptions.UsageError) -> str:
    if isinstance(exc, click_exceptions.BadParameter) and not isinstance(exc, click_exceptions.MissingParameter):
        if exc.param is not None and exc.param.opts:
            return f"argument {max(exc.param.opts, key=len)}: {exc.message}"
    return exc.format_message()
