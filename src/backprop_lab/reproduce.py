"""`make reproduce RUN=<run id>`: train a recorded run again and prove the two match.

Reads the run's config.yaml back from MLflow, trains it again as a new run tagged
`reproduction_of=<run id>`, compares every metric history step by step, and prints a
verdict. Given the parent run of a sweep, it does this for every child and files the new
runs under a new parent. Exit status: 0 identical (within --tolerance), 1 different,
2 when nothing could be compared (unknown run, missing or invalid config).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import interrupts, records
from .cli import DEBUG_ENV, execute
from .comparison import Verdict, compare_histories, provenance_changes
from .config import ConfigError, validate
from .paths import project_root
from .runner import Diverged, GradientCheckError
from .tracking import resolve_uri

log = logging.getLogger(__name__)

EXIT_IDENTICAL, EXIT_DIFFERENT, EXIT_USER_ERROR = 0, 1, 2
REPRODUCTION_TAG = "reproduction_of"  # on the new run: the id of the run it reproduces
VERDICT_TAG = "reproduction.verdict"  # on the new run: what the comparison found
# Copied from a sweep's parent to the reproduction's, so the sweep report reads it alike.
SWEEP_TAGS_KEPT = ("sweep.role", "sweep.swept_keys")


@dataclass
class Reproduction:
    """One original run, its reproduction, and what comparing them found."""

    original: records.RecordedRun
    reproduction: records.RecordedRun
    verdict: Verdict
    changes: list[str]  # code and environment facts that differ between the two records

    @property
    def identical(self) -> bool:
        return self.verdict.identical and self.original.status == self.reproduction.status

    def describe(self) -> str:
        text = self.verdict.describe()
        if self.original.status != self.reproduction.status:
            return (f"DIFFERENT: the original ended {self.original.status}, the reproduction "
                    f"{self.reproduction.status}\n  histories: {text}")
        if self.original.status == "FAILED":
            reason = self.reproduction.tags.get("failure.reason", "unrecorded")
            text += f"\n  both runs FAILED; the reproduction with: {reason}"
        return text


def _retarget(plain: dict, uri: str, name: str, parent_run_id: str | None) -> dict:
    """The recorded config, pointed at this store and named as a reproduction."""
    plain = copy.deepcopy(plain)
    tracking = plain.setdefault("tracking", {})
    tracking.update(uri=uri, run_name=f"reproduce {name}", parent_run_id=parent_run_id)
    return plain


def _rerun(client, uri: str, root: Path, original, parent_run_id: str | None) -> str:
    """Train the original's config again; return the new run's id, finished or failed."""
    plain = _retarget(records.recorded_config(client, original.run_id), uri, original.name,
                      parent_run_id)
    settings = validate(plain)
    started = int(time.time() * 1000)
    try:
        return execute(settings, plain, root,
                       extra_tags={REPRODUCTION_TAG: original.run_id}).run_id
    except (Diverged, GradientCheckError) as error:
        # The original may have failed the same way; what both recorded is still compared.
        log.warning("the reproduction failed: %s", error)
        return records.latest_tagged(client, original.experiment_id, REPRODUCTION_TAG,
                                     original.run_id, since_ms=started).run_id


def reproduce_run(client, uri: str, root: Path, original: records.RecordedRun,
                  tolerance: float = 0.0, parent_run_id: str | None = None) -> Reproduction:
    """Run `original` again from its recorded config and compare the two records."""
    new_id = _rerun(client, uri, root, original, parent_run_id)
    verdict = compare_histories(records.metric_histories(client, original.run_id),
                                records.metric_histories(client, new_id), tolerance)
    reproduction = records.fetch_run(client, new_id)
    result = Reproduction(original, reproduction, verdict,
                          provenance_changes(original.tags, reproduction.tags))
    records.set_tags(client, new_id, {VERDICT_TAG: _verdict_tag(result)})
    return result


def _verdict_tag(result: Reproduction) -> str:
    if result.identical:
        return "identical" if result.verdict.n_inexact == 0 else "identical within tolerance"
    first = result.verdict.first
    if first is None:
        return "different: run status"
    return f"different: step {first.step}, {first.metric}"


def reproduce_sweep(client, uri: str, root: Path, parent: records.RecordedRun,
                    children: list[records.RecordedRun], tolerance: float) -> list[Reproduction]:
    """Reproduce every child of a sweep's parent run, filing the new runs under a new parent."""
    kept = {k: v for k, v in parent.tags.items() if k in SWEEP_TAGS_KEPT}
    new_parent = records.start_run(client, parent.experiment_id, f"reproduce {parent.name}",
                                   {**kept, REPRODUCTION_TAG: parent.run_id})
    results: list[Reproduction] = []
    refused: list[records.RecordedRun] = []
    try:
        for child in children:
            if _refused_before_training(client, child):
                # A grid value the door refused: no config was ever trained, nothing to rerun.
                refused.append(child)
                reason = child.tags.get("failure.reason", "no reason recorded")
                print(f"run {child.run_id} ({child.name}): refused before training, not rerun "
                      f"({reason})")
                continue
            results.append(reproduce_run(client, uri, root, child, tolerance, new_parent))
            _report(results[-1])
    finally:
        same = sum(r.identical for r in results)
        summary = f"{same} of {len(results)} identical"
        if refused:
            summary += f", {len(refused)} refused before training"
        records.set_tags(client, new_parent, {VERDICT_TAG: summary})
        records.finish_run(client, new_parent,
                           ok=len(results) + len(refused) == len(children))
    print(f"sweep {parent.run_id} ({parent.name}): {summary}; new parent run {new_parent}")
    return results


def _refused_before_training(client, run: records.RecordedRun) -> bool:
    """A FAILED run that never saved a config: the door refused it before training."""
    if run.status != "FAILED":
        return False
    try:
        records.recorded_config(client, run.run_id)
    except records.RecordError:
        return True
    return False


def _report(result: Reproduction) -> None:
    """The verdict on stdout; code and environment changes on stderr, as warnings."""
    for change in result.changes:
        print(f"warning: {change}", file=sys.stderr)
    print(f"run {result.original.run_id} ({result.original.name}) -> reproduction "
          f"{result.reproduction.run_id}")
    print(f"  {result.describe()}")


def reproduce(run_id: str, uri: str, root: Path, tolerance: float = 0.0) -> list[Reproduction]:
    """Reproduce run `run_id` of store `uri`, or every child when it is a sweep's parent."""
    client = records.open_store(uri)
    original = records.fetch_run(client, run_id)
    children = records.child_runs(client, original)
    if children:
        return reproduce_sweep(client, uri, root, original, children, tolerance)
    if original.status == "KILLED":
        step = original.tags.get("failure.step", "an unrecorded step")
        raise records.RecordError(
            f"run {run_id} was stopped (KILLED) at step {step}, so its history is cut short; "
            "a reproduction would train every configured step and could not match it. "
            "Reproduce a run that finished or failed on its own."
        )
    if original.status not in ("FINISHED", "FAILED"):
        print(f"warning: the original run is {original.status}; its history may stop early",
              file=sys.stderr)
    result = reproduce_run(client, uri, root, original, tolerance)
    _report(result)
    return [result]


def _tolerance(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; use 0 (exact) or a small "
                                         "positive number such as 1e-12")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backprop_lab.reproduce",
        description="Train a recorded run again from its config and check the metric "
                    "histories match; a sweep's parent run reproduces every child.")
    parser.add_argument("run_id", help="the MLflow run id to reproduce (the UI shows it)")
    parser.add_argument("--tolerance", type=_tolerance, default=0.0,
                        help="largest absolute difference accepted per metric value "
                             "(default 0: bit for bit)")
    parser.add_argument("--uri", default=None,
                        help="tracking store; default $MLFLOW_TRACKING_URI or the project's "
                             "mlflow.db")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m backprop_lab.reproduce`; returns the exit status."""
    args = parse_args(argv)
    # One small config file is fetched per run; a download bar for it is only noise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("backprop_lab").setLevel(logging.INFO)
    root = project_root()
    try:
        with interrupts.stop_on_signals():  # SIGTERM too ends the run KILLED, not RUNNING
            results = reproduce(args.run_id, resolve_uri(args.uri, root), root, args.tolerance)
    except (records.RecordError, ConfigError) as error:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"error: cannot reproduce {args.run_id}: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interrupt:
        print("stopped: the reproduction run is marked KILLED", file=sys.stderr)
        return interrupts.exit_code(interrupt)
    return EXIT_IDENTICAL if all(r.identical for r in results) else EXIT_DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
