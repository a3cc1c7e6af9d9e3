"""The benchmark in tiny mode: every section runs and every row is there (no speed is asserted)."""

from __future__ import annotations

import subprocess

import pytest

from backprop_lab.bench import __main__ as bench
from backprop_lab.bench import compute
from backprop_lab.paths import project_root

pytestmark = pytest.mark.slow


def test_tiny_bench_prints_every_table_and_row(capsys):
    bench.main(["--tiny"])
    out = capsys.readouterr().out

    for title in ("### Machine", "### Compute", "### Memory", "### Logging", "### Start-up",
                  "### Sweeps"):
        assert title in out
    compute_rows = [line for line in out.splitlines()
                    if line.startswith(("| founding ", "| medium ", "| large ", "| xlarge "))]
    assert len(compute_rows) == len(compute.TINY_SIZES) * len(compute.DTYPES)
    for row in compute_rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(compute.COLUMNS)
        assert float(cells[2]) > 0 and float(cells[3]) > 0  # products and step were timed
    for row in ("peak / arrays held", "largest growth within a step",
                "log_metric, one call per value", "ours: MlflowRecorder",
                "longest stall", 'python -c "import mlflow, hydra"',
                "default run, store already there", "default run that creates the store",
                "  imports", "  store", "  compute", "  logging", "  artifacts",
                "interpreter start and exit", "| basic", "| joblib", "load average at the end"):
        assert row in out, row


def test_make_bench_reaches_the_benchmark():
    done = subprocess.run(["make", "-s", "bench", "ARGS=--help"], cwd=project_root(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--tiny" in done.stdout
