"""Sweeps: the same multirun with Hydra's basic launcher (jobs one after another, in one
process) beside the joblib launcher (jobs in parallel worker processes)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import tracking
from ..paths import conf_dir
from .startup import _env
from .table import Table, ratio


def unavailable() -> str | None:
    """Why the sweep row cannot be measured in this checkout, or None when it can."""
    if not (conf_dir() / "launcher" / "joblib.yaml").is_file():
        return "this checkout has no joblib launcher (conf/launcher/joblib.yaml)"
    return None


def _sweep(folder: Path, name: str, jobs: int, launcher: list[str],
           overrides: list[str]) -> float:
    command = [sys.executable, "-m", "backprop_lab", "-m", f"seed=range(0,{jobs})", *launcher,
               f"hydra.sweep.dir={folder / name}", *overrides]
    start = time.perf_counter()
    subprocess.run(command, env=_env(folder), cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def sweeps_table(jobs: int = 20, overrides: list[str] | None = None) -> Table:
    table = Table(f"Sweeps: {jobs} jobs of the default run (seconds)", ["launcher", "s", "ratio"])
    reason = unavailable()
    if reason:
        table.add("basic", "unavailable", reason)
        table.add("joblib", "unavailable", reason)
        return table
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as tmp:
        folder = Path(tmp)
        # Created beforehand, so neither sweep pays for making the store.
        tracking.open_experiment(_env(folder)["MLFLOW_TRACKING_URI"], "backprop-lab")
        basic = _sweep(folder, "basic", jobs, [], overrides or [])
        joblib = _sweep(folder, "joblib", jobs, ["launcher=joblib"], overrides or [])
    table.add("basic (one process, jobs in turn)", f"{basic:.1f}", "1.00x")
    table.add("joblib (a worker process per core)", f"{joblib:.1f}", ratio(joblib, basic))
    table.notes.append("each job is a default run with its own seed; the joblib launcher "
                       "caps each job at one BLAS thread")
    return table
