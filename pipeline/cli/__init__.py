"""The `pipeline` command: typer wiring (`app`), usage errors (`usage`), what commands run under (`context`),
their bodies (`commands`) and what they print (`output`)."""

from pipeline.cli.app import app, main
from pipeline.cli.options import REPROCESS_MODES

__all__ = ["REPROCESS_MODES", "app", "main"]
