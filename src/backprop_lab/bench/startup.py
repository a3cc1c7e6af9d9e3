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


def _run_command(folder: Path, number: int, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "backprop_lab", f"hydra.run.dir={folder / f'run{number}'}",
            *overrides]


def startup_table(repeats: int = 3, overrides: list[str] | None = None) -> Table:
    """Whole-process wall times (medians over interleaved repeats) and one run's phases."""
    overrides = overrides or []
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as tmp:
        folder = Path(tmp)
        env = _env(folder)
        first = _wall(_run_command(folder, 0, overrides), env, folder)  # creates the store
        imports, runs = [], []
        for number in range(1, repeats + 1):
            imports.append(_wall(IMPORT_ONLY, env, folder))
            runs.append(_wall(_run_command(folder, number, overrides), env, folder))
        phases, wall = _phases(folder, env, overrides)
    table = Table("Start-up: whole processes (medians, seconds)", ["measure", "s", "share"])
    table.add('python -c "import mlflow, hydra"', f"{median(imports):.2f}", "")
    table.add("default run, store already there", f"{median(runs):.2f}",
              ratio(median(runs), median(imports)) + " of the imports")
    table.add("default run that creates the store", f"{first:.2f}", "")
    table.add("one default run, clocked by phase", f"{wall:.2f}", "100%")
    for phase in PHASES:
        table.add(f"  {phase}", f"{phases[phase]:.2f}", f"{phases[phase] / wall:.0%}")
    outside = wall - phases["in process"]
    table.add("  interpreter start and shutdown", f"{outside:.2f}", f"{outside / wall:.0%}")
    table.notes += [
        "imports: backprop_lab's door with mlflow, hydra and the tracking module; store: "
        "MLflow client on the SQLite file (it imports its SQL store: sqlalchemy, alembic), "
        "the experiment and the run; logging: params, tags, dataset, metrics, final status; "
        "artifacts: config, shape ledger, arrays, loss-curve plot (matplotlib)",
        "each phase counts its own time, less the phases called inside it",
    ]
    return table


def _phases(folder: Path, env: dict[str, str], overrides: list[str]) -> tuple[dict, float]:
    out = folder / "phases.json"
    command = [sys.executable, "-m", "backprop_lab.bench._phases", str(out),
               f"hydra.run.dir={folder / 'phases'}", *overrides]
    wall = _wall(command, env, folder)
    return json.loads(out.read_text()), wall
