"""Run `python -m backprop_lab` in this process with a clock on each phase of a run.

Started by the start-up benchmark as `python -m backprop_lab.bench._phases OUT_JSON
[overrides...]`. It wraps (does not replace) the functions that mark each phase and
accounts each call's time to its phase minus the time of wrapped calls inside it, so
that, for instance, metrics logged from inside training count as logging, not compute.
"""

from __future__ import annotations

import json
import sys
import time

START = time.perf_counter()

import hydra  # noqa: E402, F401  (imported after the clock starts: importing is a phase)

from .. import cli, plots, tracking  # noqa: E402

IMPORTS = time.perf_counter() - START

spent = {"store": 0.0, "compute": 0.0, "logging": 0.0, "artifacts": 0.0}
_children = [0.0]  # time spent in wrapped calls below the current one, per open call


def clock(owner, name: str, phase: str) -> None:
    original = getattr(owner, name)

    def clocked(*args, **kwargs):
        _children.append(0.0)
        begin = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - begin
            spent[phase] += elapsed - _children.pop()
            _children[-1] += elapsed

    setattr(owner, name, clocked)


def instrument() -> None:
    clock(tracking, "open_experiment", "store")
    clock(tracking.MlflowClient, "create_run", "store")
    clock(cli, "train", "compute")
    for name in ("metrics", "flush", "params", "tags", "dataset", "finish"):
        clock(tracking.MlflowRecorder, name, "logging")
    clock(tracking, "provenance", "logging")
    for name in ("artifact", "artifact_dir", "arrays", "shapes"):
        clock(tracking.MlflowRecorder, name, "artifacts")
    clock(plots, "run_figures", "artifacts")


def main(out: str, overrides: list[str]) -> None:
    instrument()
    sys.argv = ["backprop_lab", *overrides]
    begin = time.perf_counter()
    try:
        cli.main()
    except SystemExit as done:
        if done.code:
            raise
    run = time.perf_counter() - begin
    rest = run - sum(spent.values())
    report = {"imports": IMPORTS, **spent, "hydra and the rest": rest,
              "in process": time.perf_counter() - START}
    with open(out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
