"""Another machine's copy of the pipeline: the checkout's files in another folder, and a virtualenv of its own."""

import shutil
import subprocess
import sys
from pathlib import Path


def copy_checkout(source: Path, target: Path) -> None:
    """The project's files (tracked, or new and not ignored) copied to `target`, as a clone would leave them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (source / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def install_virtualenv(checkout: Path) -> str:
    """The checkout's own .venv from requirements.lock, as ./dev makes it (uv's cache makes it ~20 s); its python."""
    uv = str(Path(sys.executable).with_name("uv"))
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    for command in (
        [uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python", python, "requirements.lock"],
        [uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "-e", "."],
    ):
        result = subprocess.run(command, cwd=checkout, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
    return python
