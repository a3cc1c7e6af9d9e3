"""Where the project lives, decided once so nothing depends on the current directory."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "BACKPROP_LAB_ROOT"


def project_root() -> Path:
    """$BACKPROP_LAB_ROOT if set, else the checkout this package was installed from.

    The package is installed in editable mode from src/, so the checkout is two levels
    above it; the conf/ folder there confirms it.
    """
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "conf" / "config.yaml").is_file():
        return checkout
    raise RuntimeError(
        f"cannot find the backprop-lab checkout (no conf/config.yaml above {__file__}); "
        f"install with `pip install -e .` from the checkout or set {ROOT_ENV}"
    )


def conf_dir() -> Path:
    return project_root() / "conf"
