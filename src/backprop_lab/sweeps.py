"""The parent run of a sweep: a Hydra callback that opens it and closes it with the verdict.

`python -m backprop_lab -m ...` is a Hydra multirun. Before the first job, `SweepRecord`
opens one MLflow run for the whole sweep and records what was asked: the parameter space,
the overrides, the command, the expected number of jobs, the composed sweep config. It
hands the parent's id to every job as the override `tracking.parent_run_id='...'`, so the
id travels inside each job's config to whatever process or machine the launcher uses.
When the last job is done it files the comparison table, the plots and the best job on the
parent and says how many jobs finished and failed. A failed job does not stop a sweep: the
door records it FAILED and returns an infinite loss (see cli.run_from_config).

This module is imported by every run (Hydra builds its callbacks), so MLflow, pandas and
matplotlib are imported only inside the functions that use them.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

ROLE_TAG = "sweep.role"            # "parent" on the run that stands for a whole sweep
KEYS_TAG = "sweep.swept_keys"      # comma-separated config keys the sweep varies
PARENT_KEY = "tracking.parent_run_id"
EXIT_USER_ERROR = 2                # the parent could not be opened: nothing was run
EXIT_REPORT_FAILED = 1             # the jobs ran, but the parent's report could not be filed
REPORT_DIR = "report"              # parent artifacts: the comparison table
PLOTS_DIR = "plots"                # parent artifacts: final loss per key, overlaid curves
CONFIG_DIR = "sweep"               # parent artifacts: multirun.yaml and overrides.yaml


# ---- what the sweep asks for ---------------------------------------------------------------

def sweep_space(config: DictConfig) -> dict[str, str]:
    """Every swept key and its sweep as written: hydra.sweeper.params, then the command line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    for override in overrides:
        if override.is_sweep_override():
            space[override.key_or_group] = override.input_line.split("=", 1)[1]
    return space


def expected_jobs(config: DictConfig, space: Mapping[str, str]) -> int | None:
    """How many jobs the sweep launches: n_trials for a search, the grid's size for a grid."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "n_trials" in config.hydra.sweeper:
        return int(config.hydra.sweeper.n_trials)
    count = 1
    lines = [f"{key}={value}" for key, value in space.items()]
    for override in OverridesParser.create().parse_overrides(lines):
        if not override.is_discrete_sweep():
            return None  # a range or interval that only a search sweeper draws from
        count *= len(list(override.sweep_string_iterator()))
    return count


def sweep_name(config: DictConfig, space: Mapping[str, str]) -> str:
    """A readable parent name: the experiment's name, else the swept keys and values."""
    experiment = config.hydra.runtime.choices.get("experiment")
    if experiment and experiment != "None":
        return f"sweep {experiment}"
    grid = " ".join(f"{k}={v}" for k, v in space.items()) or "default"
    return f"sweep {grid}"[:250]


def user_overrides(config: DictConfig) -> list[str]:
    """The overrides typed for this sweep (the parent's id is not one of them)."""
    return [o for o in config.hydra.overrides.task
            if not o.lstrip("+~").startswith(PARENT_KEY + "=")]


def _command_line() -> str:
    """The command that started the sweep, as a person would type it again."""
    args = shlex.join(sys.argv[1:])
    if sys.argv and sys.argv[0].endswith(("backprop_lab/__main__.py", "backprop-lab")):
        return f"python -m backprop_lab {args}"
    return shlex.join(sys.argv)


@contextmanager
def _stop_on_failure(what: str, code: int) -> Iterator[None]:
    """Turn an error into one logged line and an exit code.

    Hydra only warns about an exception raised in a callback and carries on, which would
    leave a sweep without its parent, or report success over a half-filed parent.
    BACKPROP_LAB_DEBUG=1 logs the traceback too.
    """
    try:
        yield
    except Exception as error:
        log.error("%s: %s", what, error, exc_info=bool(os.environ.get("BACKPROP_LAB_DEBUG")))
        raise SystemExit(code) from error


def _hand_to_jobs(config: DictConfig, parent_run_id: str) -> None:
    """Append `tracking.parent_run_id='<id>'` to the overrides every job is composed with.

    Hydra hands `hydra.overrides.task` to the sweeper after this callback has run. The id is
    quoted so an all-digit id stays text; an earlier value of the key is replaced.
    """
    kept = user_overrides(config)
    with read_write(config.hydra.overrides), open_dict(config.hydra.overrides):
        config.hydra.overrides.task = kept + [f"{PARENT_KEY}='{parent_run_id}'"]


# ---- the callback --------------------------------------------------------------------------

class SweepRecord(Callback):
    """Opens the sweep's parent run on multirun start and completes it on multirun end.

    Only plain values are kept on the instance: launchers pickle callbacks into workers.
    """

    def __init__(self, fraction: float = 0.1) -> None:
        self.fraction = fraction
        self.parent_run_id: str | None = None
        self.tracking_uri: str | None = None
        self._closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from .paths import project_root

        space = sweep_space(config)
        n_jobs = expected_jobs(config, space)
        with _stop_on_failure("cannot open the sweep's parent run", EXIT_USER_ERROR):
            self.tracking_uri, self.parent_run_id = open_parent(
                config, project_root(), space=space, n_jobs=n_jobs, command=_command_line())
        self._closed = False
        _hand_to_jobs(config, self.parent_run_id)
        atexit.register(self._close_if_abandoned)
        log.info("sweep parent run %s: %s over %s", self.parent_run_id,
                 f"{n_jobs} jobs" if n_jobs else "a search", ", ".join(space) or "no keys")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.parent_run_id is None or self._closed:
            return
        self._closed = True
        with _stop_on_failure(f"the sweep's parent run {self.parent_run_id} was marked FAILED "
                              "while filing its report", EXIT_REPORT_FAILED):
            summary = close_parent(self.tracking_uri, self.parent_run_id, self.fraction)
        log.info("sweep %s ended: %d jobs, %d finished, %d failed", self.parent_run_id,
                 summary.n_jobs, summary.n_finished, summary.n_failed)
        if summary.best_run_id:
            log.info("best job %s (%s): final loss %.6g", summary.best_run_id,
                     summary.best_name, summary.best_loss)
        log.info("table again: make report SWEEP=%s", self.parent_run_id)

    def _close_if_abandoned(self) -> None:
        """At exit, a parent still open means the sweep stopped early: say so truthfully."""
        if self._closed or self.parent_run_id is None:
            return
        self._closed = True
        interrupted = getattr(sys, "last_type", None) is KeyboardInterrupt
        abandon_parent(self.tracking_uri, self.parent_run_id, interrupted)


# ---- the parent run in MLflow --------------------------------------------------------------

@dataclass
class SweepSummary:
    """What the end of a sweep found among its jobs."""

    n_jobs: int
    n_finished: int
    n_failed: int
    best_run_id: str | None
    best_name: str | None
    best_loss: float | None


def _plugin(config: DictConfig, node: str) -> str:
    target = str(config.hydra[node].get("_target_", "unknown"))
    return target.rsplit(".", 1)[-1]


def open_parent(config: DictConfig, root: Path, *, space: Mapping[str, str],
                n_jobs: int | None, command: str) -> tuple[str, str]:
    """Create the sweep's parent run, RUNNING until `close_parent`; return (uri, run id)."""
    from . import tracking

    uri = tracking.resolve_uri(config.tracking.uri, root)
    client, experiment_id = tracking.open_experiment(uri, config.tracking.experiment)
    tags = {ROLE_TAG: "parent", KEYS_TAG: ",".join(space), "sweep.command": command,
            "sweep.sweeper": _plugin(config, "sweeper"),
            "sweep.launcher": _plugin(config, "launcher"),
            "sweep.dir": str(config.hydra.sweep.dir)}
    run = client.create_run(experiment_id, run_name=sweep_name(config, space), tags=tags)
    recorder = tracking.MlflowRecorder(client, run.info.run_id)
    params = {f"sweep.{key}": value for key, value in space.items()}
    params["sweep.n_jobs"] = "open" if n_jobs is None else n_jobs
    recorder.params(params)
    recorder.tags(tracking.provenance(root))
    _record_request(recorder, config)
    return uri, run.info.run_id


def _record_request(recorder, config: DictConfig) -> None:
    """The composed sweep config and the typed overrides: enough to launch it again."""
    multirun = recorder.workdir / "multirun.yaml"
    multirun.write_text(OmegaConf.to_yaml(config))
    overrides = recorder.workdir / "overrides.yaml"
    overrides.write_text(OmegaConf.to_yaml(OmegaConf.create(user_overrides(config))))
    recorder.artifact(multirun, CONFIG_DIR)
    recorder.artifact(overrides, CONFIG_DIR)


def close_parent(uri: str, parent_run_id: str, fraction: float) -> SweepSummary:
    """File the table, plots and best job on the parent and mark it FINISHED."""
    from mlflow import MlflowClient

    from . import report, tracking

    client = MlflowClient(tracking_uri=uri)
    recorder = tracking.MlflowRecorder(client, parent_run_id)
    with tracking.recorded_run(recorder):
        runs = report.sweep_children(client, parent_run_id)
        histories = report.loss_histories(client, runs)
        keys = report.swept_keys(client.get_run(parent_run_id), runs)
        table = report.runs_table(runs, histories, keys, fraction)
        _record_table(recorder, table)
        _record_plots(recorder, table, histories, keys)
        summary = _summarise(table)
        _record_summary(recorder, table, summary, keys)
        print(report.as_text(table.drop(columns="run_name")), flush=True)  # the verdict
    return summary


def _record_table(recorder, table) -> None:
    from . import report

    for name, text in report.renderings(table).items():
        path = recorder.workdir / name
        path.write_text(text)
        recorder.artifact(path, REPORT_DIR)


def _record_plots(recorder, table, histories, keys) -> None:
    from . import sweep_plots

    folder = recorder.workdir / PLOTS_DIR
    folder.mkdir(exist_ok=True)
    for key in keys:
        if key in table.columns:
            recorder.artifact(sweep_plots.final_loss_against(table, key, folder), PLOTS_DIR)
    names = dict(zip(table["run_id"], table["run_name"], strict=True))
    curves = {names.get(run_id, run_id): points for run_id, points in histories.items()}
    recorder.artifact(sweep_plots.loss_curves(curves, folder / "loss_curves.png"), PLOTS_DIR)


def _summarise(table) -> SweepSummary:
    from . import report

    best = report.best_row(table)
    finished = int((table["status"] == "FINISHED").sum()) if len(table) else 0
    failed = int((table["status"] == "FAILED").sum()) if len(table) else 0
    if best is None:
        return SweepSummary(len(table), finished, failed, None, None, None)
    return SweepSummary(len(table), finished, failed, best["run_id"], best["run_name"],
                        float(best["final_loss"]))


def _record_summary(recorder, table, summary: SweepSummary, keys) -> None:
    counts = {"sweep/n_jobs": summary.n_jobs, "sweep/n_finished": summary.n_finished,
              "sweep/n_failed": summary.n_failed}
    if summary.best_run_id is None:
        recorder.metrics(0, counts)
        return
    recorder.metrics(0, {**counts, "sweep/best_final_loss": summary.best_loss})
    best = table.loc[table["run_id"] == summary.best_run_id].iloc[0]
    tags = {"best.run_id": summary.best_run_id, "best.run_name": summary.best_name,
            "best.final_loss": repr(summary.best_loss)}
    tags.update({f"best.{key}": best[key] for key in keys if key in table.columns})
    recorder.tags(tags)


def abandon_parent(uri: str, parent_run_id: str, interrupted: bool) -> None:
    """Close a parent whose sweep never reached its end: KILLED on Ctrl-C, else FAILED."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    status = "KILLED" if interrupted else "FAILED"
    client.set_tag(parent_run_id, "failure.reason", "the sweep stopped before its last job")
    client.set_terminated(parent_run_id, status=status)


def record_rejected_job(raw: Mapping, reason: str, root: Path, run_name: str | None) -> str:
    """A sweep job whose config failed validation: record it as a FAILED child and go on.

    `raw` is the job's plain config; its tracking values are used as given, since the job
    never got as far as validated settings.
    """
    from . import config, tracking

    section = raw.get("tracking") or {}
    uri = tracking.resolve_uri(section.get("uri") or None, root)
    client, experiment_id = tracking.open_experiment(
        uri, section.get("experiment") or "backprop-lab")
    tags = {"failure.reason": reason[:5000]}
    if section.get("parent_run_id"):
        tags["mlflow.parentRunId"] = str(section["parent_run_id"])
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    recorder = tracking.MlflowRecorder(client, run.info.run_id)
    recorder.params(config.flatten(raw))
    recorder.finish("FAILED")
    return run.info.run_id
