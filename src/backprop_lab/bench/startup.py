"""Start-up: a whole default run as a process, beside importing MLflow and Hydra alone.

Every process here writes to a store in a temporary folder, never the project's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .table import Table, median, ratio

IMPORT_ONLY = [sys.executable, "-c", "import mlflow, hydra"]
PHASES = ("imports", "store", "compute", "logging", "artifacts", "hydra and the rest")


def _env(folder: Path) -> dict[str, str]:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
    env.pop("BACKPROP_LAB_DEBUG", None)
    return env


def _wall(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def startup_table(repeats: int = 3, overrides: list[str] | None = None) -> Table:
    """Whole-process wall times (medians over interleaved repeats) and a run's phases.

    Each timed run is a default run with a clock on its phases; the wrappers cost
    microseconds, so its wall time is that of a plain run.
    """
    overrides = overrides or []
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as tmp:
        folder = Path(tmp)
        env = _env(folder)
        first, _ = _clocked_run(folder, env, "first", overrides)  # creates the store
        imports, runs = [], []
        for number in range(repeats):
            imports.append(_wall(IMPORT_ONLY, env, folder))
            runs.append(_clocked_run(folder, env, f"run{number}", overrides))
    wall, phases = sorted(runs, key=lambda run: run[0])[len(runs) // 2]  # the median run
    table = Table("Start-up: whole processes (medians, seconds)", ["measure", "s", "share"])
    table.add('python -c "import mlflow, hydra"', f"{median(imports):.2f}", "")
    table.add("default run, store already there", f"{wall:.2f}",
              ratio(wall, median(imports)) + " of the imports")
    table.add("default run that creates the store", f"{first:.2f}", "")
    for phase in PHASES:
        table.add(f"  {phase}", f"{phases[phase]:.2f}", f"{phases[phase] / wall:.0%}")
    outside = wall - phases["in process"]
    table.add("  interpreter start and exit", f"{outside:.2f}", f"{outside / wall:.0%}")
    table.notes += [
        "phases of the median run: imports: backprop_lab's door with mlflow, hydra and the "
        "tracking module; store: MLflow's client on the SQLite file (which imports MLflow's "
        "SQL store: sqlalchemy, alembic), the experiment, the run; logging: params, tags, "
        "dataset, metrics, final status; artifacts: config, shape ledger, arrays and the "
        "run's figures (with matplotlib's import)",
        "each phase counts its own time, less the phases called inside it",
    ]
    return table


def _clocked_run(folder: Path, env: dict[str, str], name: str,
                 overrides: list[str]) -> tuple[float, dict[str, float]]:
    """(wall seconds, seconds per phase) of one default run in its own process."""
    out = folder / f"{name}.json"
    command = [sys.executable, "-m", "backprop_lab.bench._phases", str(out),
               f"hydra.run.dir={folder / name}", *overrides]
    wall = _wall(command, env, folder)
    return wall, json.loads(out.read_text())
