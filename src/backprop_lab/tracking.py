"""The MLflow recorder: the one module that talks to MLflow.

It decides where the store is, creates the experiment once (under a file lock, so parallel
jobs cannot race), buffers per-step metrics and sends them with `log_batch` in chunks,
and writes params, tags, provenance and artifacts. Run status is set by `recorded_run`.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

from .data import Dataset
from .plots import LOSS_KEY, plotted
from .shapes import ShapeEntry, key_products

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def resolve_uri(configured: str | None, root: Path) -> str:
    """tracking.uri if set, else $MLFLOW_TRACKING_URI, else the project's SQLite file."""
    if configured:
        return configured
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / DB_NAME}"


def sqlite_path(uri: str) -> Path | None:
    """The database file behind a sqlite:/// URI, or None for any other store."""
    prefix = "sqlite:///"  # SQLAlchemy's form: sqlite:///relative.db or sqlite:////abs.db
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0]).absolute()


def experiment_ids(uri: str) -> dict[str, str]:
    """{name: id} of the experiments in a SQLite store, oldest first; {} if it has none yet.

    Other stores are not asked: a remote server that is down would keep the caller waiting
    through the client's retries.
    """
    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return {}
    client = MlflowClient(tracking_uri=uri)
    found = client.search_experiments(order_by=["creation_time ASC"])
    return {e.name: e.experiment_id for e in found if e.name != "Default"}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def open_experiment(uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client on `uri` and the id of experiment `name`, created if missing.

    For SQLite, creating the database and the experiment happens under a file lock beside
    the database, so jobs starting together cannot both try; artifacts go to a folder
    beside the database rather than wherever the process happens to run.
    """
    db = sqlite_path(uri)
    artifact_location = None
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = str(db.parent / ARTIFACTS_DIR)
    lock = FileLock(str(db) + ".lock") if db is not None else None
    with lock if lock is not None else _nothing():
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            experiment_id = client.create_experiment(name, artifact_location=artifact_location)
        else:
            experiment_id = experiment.experiment_id
    return client, experiment_id


@contextmanager
def _nothing():
    yield


class MlflowRecorder:
    """Receives what the runner reports and writes it into one MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str, chunk: int = MAX_METRICS_PER_BATCH):
        self.client = client
        self.run_id = run_id
        self.chunk = min(chunk, MAX_METRICS_PER_BATCH)
        self._buffer: list[Metric] = []
        # The metrics the run's pictures draw, kept as they pass: {name: [(step, value)]}.
        self.curves: dict[str, list[tuple[int, float]]] = {}
        self._plotted: dict[str, bool] = {}  # metric name -> kept? decided once per name
        self.shape_entries: list[ShapeEntry] = []
        self._sending: list = []  # MLflow's handles on batches still being written
        self._workdir = tempfile.TemporaryDirectory(prefix="backprop-lab-")
        self.workdir = Path(self._workdir.name)

    # ---- what the runner reports ------------------------------------------------------------

    def metrics(self, step: int, values: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)
        for key, value in values.items():
            value = float(value)
            self._buffer.append(Metric(key, value, stamp, step))
            keep = self._plotted.get(key)
            if keep is None:
                keep = self._plotted[key] = plotted(key)
            if keep:
                self.curves.setdefault(key, []).append((step, value))
        if len(self._buffer) >= self.chunk:
            self._send_full_chunks()

    def _send_full_chunks(self) -> None:
        """Hand full batches to MLflow's background writer, so training does not wait on
        the database; flush() waits for them."""
        while len(self._buffer) >= self.chunk:
            chunk, self._buffer = self._buffer[: self.chunk], self._buffer[self.chunk:]
            self._sending.append(
                self.client.log_batch(self.run_id, metrics=chunk, synchronous=False))

    def dataset(self, dataset: Dataset, context: str = "training") -> None:
        """Log `dataset` as a run input: name, source, digest, and the shapes in its profile.

        The training set's digest and shape also go into tags (data.digest, data.shape);
        other contexts get their own (data.validation.digest, ...).
        """
        import mlflow.data  # only the dataset helpers; kept out of the import of this module
        from mlflow.data.code_dataset_source import CodeDatasetSource

        source = CodeDatasetSource(tags={"builder": dataset.source})
        entity = mlflow.data.from_numpy(
            dataset.inputs, source=source, targets=dataset.targets, name=dataset.name
        )._to_mlflow_entity()
        context_tag = InputTag(key="mlflow.data.context", value=context)
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(entity, tags=[context_tag])])
        prefix = "data" if context == "training" else f"data.{context}"
        tags = {f"{prefix}.digest": entity.digest, f"{prefix}.shape": str(dataset.shape)}
        if dataset.targets is not None:
            tags[f"{prefix}.targets_shape"] = str(dataset.targets.shape)
        if dataset.classes is not None:
            tags[f"{prefix}.classes"] = ",".join(dataset.classes)[:5000]  # under MLflow's cap
        self.tags(tags)

    @property
    def losses(self) -> list[tuple[int, float]]:
        """(step, train/loss) pairs, for the loss curve."""
        return self.curves.get(LOSS_KEY, [])

    def shapes(self, entries: list[ShapeEntry]) -> None:
        self.shape_entries = list(entries)
        rows = [e.as_row() for e in entries]
        path = self.workdir / "shapes.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        self.artifact(path)
        markdown = self.workdir / "shapes.md"
        markdown.write_text(_markdown_table(rows))
        self.artifact(markdown)
        self.tags({f"shape.{k}": v for k, v in key_products(entries).items()})

    def arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.workdir / f"{name}.npz"
        np.savez(path, **arrays)
        self.artifact(path, "arrays")

    # ---- what the door adds -------------------------------------------------------------

    def params(self, flat: Mapping[str, object]) -> None:
        """Log dotted-key params; values too long for MLflow go whole into params_long.txt."""
        params, long_values = [], {}
        for key, value in flat.items():
            text = str(value)
            if len(text) > MAX_PARAM_VAL_LENGTH:
                long_values[key] = text
                text = text[: MAX_PARAM_VAL_LENGTH - 20] + "... (see params_long)"
            params.append(Param(key, text))
        for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)
        if long_values:
            path = self.workdir / "params_long.txt"
            path.write_text("".join(f"{k}={v}\n" for k, v in long_values.items()))
            self.artifact(path)

    def tags(self, values: Mapping[str, object]) -> None:
        tags = [RunTag(k, str(v)) for k, v in values.items()]
        for chunk in _chunks(tags, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=chunk)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def artifact_dir(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(path), folder)

    def flush(self) -> None:
        """Send every buffered metric, in chunks of at most MLflow's batch limit, and wait
        until those sent in the background are written too."""
        while self._sending:
            self._sending.pop(0).wait()
        while self._buffer:
            chunk, self._buffer = self._buffer[: self.chunk], self._buffer[self.chunk:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def finish(self, status: str) -> None:
        """Flush what is buffered, then mark the run FINISHED, FAILED or KILLED."""
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)
            self._workdir.cleanup()


def _markdown_table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def provenance(root: Path) -> dict[str, str]:
    """Code and environment facts a reproduction needs: git state, library versions, BLAS."""
    import hydra
    import mlflow
    from threadpoolctl import threadpool_info

    facts = {"numpy.version": np.__version__, "mlflow.version": mlflow.__version__,
             "hydra.version": hydra.__version__}
    facts.update(_git_state(root))
    for index, pool in enumerate(p for p in threadpool_info() if p.get("user_api") == "blas"):
        prefix = "blas" if index == 0 else f"blas{index}"
        facts[f"{prefix}.library"] = f"{pool.get('internal_api')} {pool.get('version')}"
        facts[f"{prefix}.threads"] = str(pool.get("num_threads"))
    return facts


def _git_state(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    return {"git.commit": commit, "git.dirty": str(dirty).lower(),
            "mlflow.source.git.commit": commit}


@contextmanager
def recorded_run(recorder: MlflowRecorder) -> Iterator[MlflowRecorder]:
    """Close the run with a truthful status: FINISHED, KILLED on interrupt, FAILED otherwise."""
    try:
        yield recorder
    except KeyboardInterrupt:
        recorder.finish(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as error:
        recorder.tags({"failure.reason": f"{type(error).__name__}: {error}"[:5000]})
        recorder.finish(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        recorder.finish(RunStatus.to_string(RunStatus.FINISHED))
