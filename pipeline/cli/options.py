"""The options commands share, and their parsers: bad input is refused before anything is touched."""

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from pipeline import backfill
from pipeline.window import check_not_future, parse_day

REPROCESS_MODES = backfill.MODES


def past_day(value: str) -> date:
    try:
        # The option's name is added when the error is shown: "argument --start: date '2024-02-30' is not …".
        return check_not_future(parse_day(value, "date"), datetime.now(UTC).date(), "date")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def reprocess_mode(value: str) -> str:
    if value not in REPROCESS_MODES:
        choices = ", ".join(map(repr, REPROCESS_MODES))
        raise typer.BadParameter(f"invalid choice: {value!r} (choose from {choices})")
    return value


def day_option(help_text: str, *names: str) -> typer.models.OptionInfo:
    return typer.Option(*names, parser=past_day, metavar="YYYY-MM-DD", help=help_text, show_default=False)


LogicalDate = Annotated[date | None, day_option("logical date YYYY-MM-DD (default: yesterday, UTC)", "--date")]
