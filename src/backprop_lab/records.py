"""Reading recorded runs back from MLflow: their config, tags, metric histories and children.

The counterpart of `tracking`, which writes runs; `reproduce` uses both.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from .tracking import sqlite_path

CONFIG_ARTIFACT = "config.yaml"
PARENT_TAG = "mlflow.parentRunId"


class RecordError(LookupError):
    """A run, or a part of its record, that the store does not have."""


@dataclass(frozen=True)
class RecordedRun:
    """What the store knows about one run, apart from its metrics."""

    run_id: str
    name: str
    status: str
    experiment_id: str
    tags: dict[str, str]


def open_store(uri: str) -> MlflowClient:
    """A client on an existing store; RecordError when a SQLite store's file is missing."""
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise RecordError(f"no tracking store at {db}; pass --uri or set MLFLOW_TRACKING_URI")
    return MlflowClient(tracking_uri=uri)


def fetch_run(client: MlflowClient, run_id: str) -> RecordedRun:
    """The run `run_id`, or RecordError naming the store when it is not there."""
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise RecordError(
            f"no run {run_id!r} in {client.tracking_uri}; check the id (the MLflow UI "
            "shows it) or point at the right store with --uri"
        ) from error
    return _recorded(run)


def _recorded(run) -> RecordedRun:
    info = run.info
    return RecordedRun(info.run_id, info.run_name, info.status, info.experiment_id,
                       dict(run.data.tags))


def recorded_config(client: MlflowClient, run_id: str) -> dict:
    """The resolved config the run saved as its config.yaml artifact, as a plain dict."""
    with tempfile.TemporaryDirectory(prefix="backprop-lab-") as folder:
        try:
            path = client.download_artifacts(run_id, CONFIG_ARTIFACT, folder)
        except (MlflowException, OSError) as error:
            raise RecordError(
                f"run {run_id} has no {CONFIG_ARTIFACT} artifact, so its config is unknown; "
                "only runs started by backprop-lab can be reproduced"
            ) from error
        return OmegaConf.to_container(OmegaConf.load(Path(path)), resolve=True)


def metric_histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the run as (step, value) pairs in step order (logging order on ties)."""
    keys = sorted(client.get_run(run_id).data.metrics)
    histories = {}
    for key in keys:
        points = sorted(client.get_metric_history(run_id, key),
                        key=lambda m: (m.step, m.timestamp))
        histories[key] = [(m.step, m.value) for m in points]
    return histories


def child_runs(client: MlflowClient, parent: RecordedRun) -> list[RecordedRun]:
    """The runs whose parent is `parent`, oldest first: the jobs of a sweep."""
    runs = client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=10_000,
    )
    return [_recorded(r) for r in runs]


def latest_tagged(client: MlflowClient, experiment_id: str, key: str, value: str,
                  since_ms: int) -> RecordedRun:
    """The newest run tagged key=value that started at or after `since_ms` (epoch ms)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{key}` = '{value}' and attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise RecordError(f"no run tagged {key}={value} started after {since_ms}")
    return _recorded(runs[0])


def start_run(client: MlflowClient, experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """Open a bare run (e.g. the parent of a reproduced sweep) and return its id."""
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


def finish_run(client: MlflowClient, run_id: str, ok: bool) -> None:
    status = RunStatus.FINISHED if ok else RunStatus.FAILED
    client.set_terminated(run_id, status=RunStatus.to_string(status))


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
