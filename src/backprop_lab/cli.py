"""The front door: compose the config with Hydra, validate it, record the run in MLflow.

`execute` is the plain function behind `python -m backprop_lab`; tests call it directly.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import interrupts, overrides
from .config import ConfigError, Settings, flatten, to_plain, validate
from .data import DataError
from .identity import HASH_TAG, config_hash
from .paths import ROOT_ENV, project_root
from .runner import Diverged, GradientCheckError, TrainResult, train

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2  # a config value or environment problem the user can fix
EXIT_RUN_FAILED = 1  # the run started and failed (divergence, failed gradient check)
DEBUG_ENV = "BACKPROP_LAB_DEBUG"  # set to 1 to see full tracebacks


@dataclass
class Outcome:
    """What `execute` returns: the MLflow run it wrote and the run's result."""

    run_id: str
    tracking_uri: str
    result: TrainResult


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def _progress_bar(total: int):
    from tqdm import tqdm

    # delay: only runs long enough to want a bar get one; disable=None: only on a terminal.
    return tqdm(total=total, unit="step", delay=2.0, disable=None, leave=False)


def _step_done(bar, done: int) -> None:
    interrupts.check()  # a signal whose KeyboardInterrupt was swallowed still stops the run
    bar.update(done - bar.n)


def _record_config(recorder, plain: dict, output_dir: Path | None) -> None:
    config_file = recorder.workdir / "config.yaml"
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    recorder.artifact(config_file)
    if output_dir is not None and (output_dir / ".hydra").is_dir():
        recorder.artifact_dir(output_dir / ".hydra", ".hydra")


def execute(settings: Settings, plain: dict, root: Path, run_name: str | None = None,
            extra_tags: Mapping[str, str] | None = None) -> Outcome:
    """Open an MLflow run for `settings`, train, and record everything; return the outcome.

    `plain` is the resolved config as a dict (what gets logged as params and config.yaml);
    `extra_tags` are set on the run when it is created (e.g. what it reproduces).
    Raises GradientCheckError or Diverged after the run has been marked FAILED.
    """
    from threadpoolctl import threadpool_limits

    from . import tracking

    uri = tracking.resolve_uri(settings.tracking.uri, root)
    client, experiment_id = tracking.open_experiment(uri, settings.tracking.experiment)
    tags = {"seed": settings.seed, "compute.dtype": settings.compute.dtype,
            HASH_TAG: config_hash(settings), **(extra_tags or {})}
    if settings.tracking.parent_run_id:
        tags["mlflow.parentRunId"] = settings.tracking.parent_run_id
    run = client.create_run(experiment_id, run_name=settings.tracking.run_name or run_name,
                            tags={k: str(v) for k, v in tags.items()})
    run_id = run.info.run_id
    log.info("tracking to %s, experiment %r, run %s (%s)",
             uri, settings.tracking.experiment, run.info.run_name, run_id)

    recorder = tracking.MlflowRecorder(client, run_id)
    with tracking.recorded_run(recorder):
        recorder.params(flatten(plain))
        _record_config(recorder, plain, _hydra_output_dir())
        title = (f"{run.info.run_name}: {settings.objective.name}, "
                 f"widths {list(settings.model.widths)}")
        try:
            # BLAS products change in their last bits with the thread count, so the count is
            # pinned for the run and recorded from inside the pin, where it is the one in force.
            with threadpool_limits(limits=settings.compute.blas_threads), \
                    _progress_bar(settings.optimizer.steps) as bar:
                recorder.tags(tracking.provenance(root))
                result = train(settings, recorder,
                               progress=lambda done: _step_done(bar, done))
        except Diverged:
            _record_pictures(recorder, title, quiet=True)  # how it blew up is worth a look
            raise
        recorder.flush()
        _record_pictures(recorder, title)
    return Outcome(run_id, uri, result)


def _record_pictures(recorder, title: str, quiet: bool = False) -> None:
    """Draw the run's pictures and file them under plots/.

    `quiet` is for a run that is already failing: a picture that cannot be drawn is then
    logged and skipped, so the run's own error is the one reported.
    """
    from . import plots

    try:
        for figure in plots.run_figures(recorder.curves, recorder.shape_entries,
                                        recorder.workdir, title):
            recorder.artifact(figure, "plots")
    except Exception as error:
        if not quiet:
            raise
        log.warning("could not draw the failed run's pictures: %s", error)


def _ui_hint(uri: str) -> str:
    if uri.startswith("sqlite:"):
        return "make ui"
    return f"open {uri}"


def run_checked(cfg: DictConfig) -> float:
    """Validate, run and report; return the final loss.

    Raises ConfigError before any run is opened (tracking.StoreUnavailable, a ConfigError,
    when the store cannot be reached), and DataError, Diverged or GradientCheckError after
    the run has been marked FAILED.
    """
    settings = validate(cfg)
    outcome = execute(settings, to_plain(cfg), project_root(), run_name=_run_name())
    r = outcome.result
    log.info("run %s finished: loss %.6g -> %.6g over %d steps", outcome.run_id,
             r.initial_loss, r.final_loss, r.steps)
    log.info("browse it with: %s", _ui_hint(outcome.tracking_uri))
    return r.final_loss


def run_from_config(cfg: DictConfig) -> float:
    """One Hydra job: `run_checked`, with user errors and failed runs answered by `refuse`."""
    from .tracking import StoreUnavailable  # imports MLflow: only once a run is wanted

    try:
        return run_checked(cfg)
    except StoreUnavailable as error:
        return refuse(f"tracking error: {error}", EXIT_USER_ERROR)
    except ConfigError as error:
        if _in_sweep():
            _record_rejected_job(cfg, f"config error: {error}")
        return refuse(f"config error: {error}", EXIT_USER_ERROR)
    except DataError as error:
        return refuse(f"data error: {error}", EXIT_USER_ERROR)
    except (Diverged, GradientCheckError) as error:
        return refuse(f"run failed: {error}", EXIT_RUN_FAILED)


def _run_name() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    experiment = hydra_cfg.runtime.choices.get("experiment")
    exclude = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    return readable_name(experiment, list(hydra_cfg.overrides.task), exclude)


RUN_NAME_LIMIT = 250  # MLflow shows long names cut; keep them well within a table cell's reach
GENERIC_KEYS = {"name", "enabled"}  # last key segments too vague to stand alone


def readable_name(experiment: str | None, overrides: list[str], exclude: set[str]) -> str:
    """A run name from what distinguishes the run: 'lr_sweep lr=0.01 widths=[8,4]'.

    The experiment's name comes first, then each override as typed, keyed by the last part
    of its dotted key (`optimizer.lr` -> `lr`) unless that part is vague (`objective.name`).
    Keys in `exclude` (where and how the run is filed) and hydra.* settings are left out.
    """
    parts = [experiment] if experiment and experiment != "None" else []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in exclude or key.split(".")[0] in ("hydra", "experiment"):
            continue
        label = key.rsplit(".", 1)[-1]
        parts.append(f"{key if label in GENERIC_KEYS else label}={value}")
    return " ".join(parts)[:RUN_NAME_LIMIT] or "defaults"


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def refuse(message: str, code: int) -> float:
    """The one place a user error or failed run ends: one line, no traceback, exit `code`.

    Call it from an `except` block. With BACKPROP_LAB_DEBUG=1 the exception is re-raised
    with its traceback instead. Inside a sweep the process must live on for the other
    jobs: the message is logged and the job returns an infinite loss (a search sweeper
    ranks it last); a run it opened is already marked FAILED.
    """
    if os.environ.get(DEBUG_ENV):
        raise
    log.error(message)  # to the console and to the run's log file
    if _in_sweep():
        return math.inf
    sys.exit(code)


def _record_rejected_job(cfg: DictConfig, reason: str) -> None:
    """A sweep job whose values were refused before a run opened still leaves a FAILED run."""
    from .sweeps import record_rejected_job

    record_rejected_job(to_plain(cfg), reason, project_root(), run_name=_run_name())


def _stopped(interrupt: KeyboardInterrupt) -> None:
    name = "SIGTERM" if isinstance(interrupt, interrupts.Terminated) else "Ctrl-C (SIGINT)"
    print(f"stopped by {name}: metrics logged so far were flushed and the run is marked "
          "KILLED", file=sys.stderr, flush=True)
    sys.exit(interrupts.exit_code(interrupt))


def main() -> None:
    """Entry point of `python -m backprop_lab` and the `backprop-lab` script."""
    import hydra

    root = project_root()
    os.environ.setdefault(ROOT_ENV, str(root))  # read by conf/ for output folders
    if os.environ.get(DEBUG_ENV):
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra's tracebacks in full, too
    try:
        overrides.check(sys.argv[1:], root / "conf")
    except ConfigError as error:
        refuse(f"config error: {error}", EXIT_USER_ERROR)

    @hydra.main(version_base="1.3", config_path=str(root / "conf"), config_name="config")
    def _task(cfg: DictConfig) -> float:
        return run_from_config(cfg)

    try:
        with interrupts.stop_on_signals():
            _task()
    except KeyboardInterrupt as interrupt:
        if os.environ.get(DEBUG_ENV):
            raise
        _stopped(interrupt)
    finally:
        # Freezing the heap spares the interpreter's exit a garbage collection over every
        # object MLflow's imports made: left to run, that took over a second.
        gc.freeze()
