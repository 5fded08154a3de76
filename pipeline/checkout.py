"""The deployments' pull step: a flow run starts in the checkout of the worker that picked it up."""

import os
from pathlib import Path

from pipeline.settings import PROJECT_ROOT


class CheckoutError(Exception):
    """The worker's checkout of the pipeline cannot be found."""


def set_working_directory() -> dict[str, str]:
    """Change into this worker's checkout and return it, as Prefect's own set_working_directory step does.

    Resolved when the run starts, on the worker, never when `prefect deploy` runs: the checkout is
    the one the worker's virtualenv installed the pipeline from (or PIPELINE_CHECKOUT, when the
    worker's environment sets it), so workers on VMs with their checkouts in different folders all
    run the same deployment.
    """
    directory = find_checkout(os.environ.get("PIPELINE_CHECKOUT") or None)
    os.chdir(directory)
    return {"directory": str(directory)}


def find_checkout(override: str | None = None, installed_from: Path = PROJECT_ROOT) -> Path:
    """`override` if given, else the folder the pipeline package was installed from; either must hold prefect.yaml."""
    directory = Path(override).expanduser().resolve() if override else installed_from
    if not (directory / "prefect.yaml").is_file() or not (directory / "flows").is_dir():
        origin = f"PIPELINE_CHECKOUT={override}" if override else f"the pipeline's install folder {directory}"
        raise CheckoutError(
            f"{origin} is not a checkout of the pipeline (no prefect.yaml and flows/ there); "
            "install the worker's virtualenv from the checkout with ./dev, or set PIPELINE_CHECKOUT"
        )
    return directory
