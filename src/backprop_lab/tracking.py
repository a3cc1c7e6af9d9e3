"""The MLflow recorder: the one module that talks to MLflow.

It decides where the store is, creates the experiment once (under a file lock, so parallel
jobs cannot race), buffers per-step metrics and sends them with `log_batch` in chunks,
and writes params, tags, provenance and artifacts. Run status is set by `recorded_run`.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE, ErrorCode
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

from . import interrupts
from .config import ConfigError
from .data import Dataset
from .plots import LOSS_KEY, plotted
from .shapes import ShapeEntry, key_products

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
PROBE_SECONDS = 3.0  # how long to wait for a tracking server to accept a connection
# MLflow's own HTTP defaults retry for minutes; a run should fail within seconds instead.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
LONG_MARK = "... (see params_long.txt)"  # ends a param cut to MLflow's length limit
BUSY_RETRIES = 3  # extra attempts when SQLite stays locked past its own 20 s busy wait


class StoreUnavailable(ConfigError):
    """The tracking store cannot be reached or opened; the message names the URI."""


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


def probe(uri: str, seconds: float = PROBE_SECONDS) -> None:
    """Raise StoreUnavailable unless the server behind an http(s) URI accepts a connection.

    Other stores (SQLite, folders) are checked by opening them. Also bounds MLflow's HTTP
    retries for this process (unless the user set them), so a server that dies mid-run
    ends the run in seconds, not minutes.
    """
    url = urlparse(uri)
    if url.scheme not in ("http", "https"):
        return
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=seconds).close()
    except OSError as error:
        raise StoreUnavailable(_unreachable(uri, error)) from error


def _unreachable(uri: str, error: object) -> str:
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        fix = "start the server (e.g. `mlflow server --host 127.0.0.1 --port 5000`)"
    elif scheme == "sqlite":
        fix = "make sure its folder can be created and written"
    else:
        fix = "use sqlite:///<path>/mlflow.db or http://<host>:<port>"
    return (f"cannot open the tracking store tracking.uri={uri} ({error}). Fix: {fix}, "
            "or set tracking.uri=null for the project's mlflow.db.")


def open_experiment(uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client on `uri` and the id of experiment `name`, created if missing.

    For SQLite, creating the database and the experiment happens under a file lock beside
    the database, so jobs starting together cannot both try; artifacts go to a folder
    beside the database rather than wherever the process happens to run.
    Raises StoreUnavailable, naming the URI, when the store cannot be reached or opened.
    """
    probe(uri)
    db = sqlite_path(uri)
    try:
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
    except (OSError, MlflowException) as error:
        raise StoreUnavailable(_unreachable(uri, _first_line(error))) from error
    return client, experiment_id


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The gist of an error in one short line: SQLAlchemy appends the statement and every
    bound parameter to its messages, which would bury the reason."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0].split(" [SQL:", 1)[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _busy(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(TEMPORARILY_UNAVAILABLE)


def _retrying(call, *args, **kwargs):
    """`call(*args, **kwargs)`, tried again while the store reports itself busy (locked)."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return call(*args, **kwargs)
        except MlflowException as error:
            if not _busy(error) or attempt == BUSY_RETRIES:
                raise
            log.warning("tracking store busy (%s); retrying", _first_line(error))
            time.sleep(2.0 * (attempt + 1))


@contextmanager
def _nothing():
    yield


DATASET_RETRIES = 3  # further tries of log_inputs after a parallel job filed the same data
MAX_BATCHES_IN_FLIGHT = 2  # background metric batches allowed to wait for the store
MAX_CURVE_POINTS = 20_000  # points per plotted metric kept in memory for the pictures


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
        self.last_step: int | None = None  # the latest step whose metrics were reported
        self.shape_entries: list[ShapeEntry] = []
        self._sending: list = []  # MLflow's handles on batches still being written
        self._workdir = tempfile.TemporaryDirectory(prefix="backprop-lab-")
        self.workdir = Path(self._workdir.name)

    # ---- what the runner reports ------------------------------------------------------------

    def metrics(self, step: int, values: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)
        # A step enters the buffer whole, so a signal never splits it.
        with interrupts.deferred():
            for key, value in values.items():
                value = float(value)
                self._buffer.append(Metric(key, value, stamp, step))
                keep = self._plotted.get(key)
                if keep is None:
                    keep = self._plotted[key] = plotted(key)
                if keep:
                    curve = self.curves.setdefault(key, [])
                    curve.append((step, value))
                    if len(curve) > MAX_CURVE_POINTS:
                        # Long runs keep every other point: a picture needs no more, and
                        # memory stays flat however many steps are taken.
                        del curve[1::2]
            self.last_step = step
        if len(self._buffer) >= self.chunk:
            self._send_full_chunks()

    def _send_full_chunks(self) -> None:
        """Hand full batches to MLflow's background writer, so training does not wait on
        the database; flush() waits for them."""
        while len(self._buffer) >= self.chunk:
            with interrupts.deferred():  # a batch is either buffered or handed over, never lost
                chunk, self._buffer = self._buffer[: self.chunk], self._buffer[self.chunk:]
                handle = self.client.log_batch(self.run_id, metrics=chunk, synchronous=False)
                self._sending.append((chunk, handle))
            # Back-pressure: when the store is slower than training, the loop waits here
            # rather than queueing batches without bound (memory, and a long close).
            while len(self._sending) > MAX_BATCHES_IN_FLIGHT:
                self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest background batch; one the writer could not store is sent again
        here, in the foreground and with retries, rather than dropped."""
        with interrupts.deferred():  # a batch resent must also leave the list, or twice
            chunk, handle = self._sending[0]
            try:
                handle.wait()
            except MlflowException as error:
                log.warning("a background metric batch failed (%s); sending it again",
                            _first_line(error))
                _retrying(self.client.log_batch, self.run_id, metrics=chunk)
            self._sending.pop(0)

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
        self._log_input(DatasetInput(entity, tags=[context_tag]))
        prefix = "data" if context == "training" else f"data.{context}"
        tags = {f"{prefix}.digest": entity.digest, f"{prefix}.shape": str(dataset.shape)}
        if dataset.targets is not None:
            tags[f"{prefix}.targets_shape"] = str(dataset.targets.shape)
        if dataset.classes is not None:
            tags[f"{prefix}.classes"] = ",".join(dataset.classes)[:5000]  # under MLflow's cap
        self.tags(tags)

    def _log_input(self, dataset_input: DatasetInput) -> None:
        """log_inputs, tried again when a parallel job filed the same dataset first.

        MLflow looks a dataset up by (experiment, name, digest) and inserts it when missing,
        in two steps; two jobs of a sweep on the same data can both miss it, and the second
        insert then breaks the unique key. On the next try the lookup finds the dataset.
        """
        for attempt in range(DATASET_RETRIES + 1):
            try:
                self.client.log_inputs(self.run_id, datasets=[dataset_input])
                return
            except MlflowException as error:
                if "UNIQUE constraint failed" not in str(error) or attempt == DATASET_RETRIES:
                    raise
                time.sleep(0.2 * (attempt + 1))

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
                text = text[: MAX_PARAM_VAL_LENGTH - len(LONG_MARK)] + LONG_MARK
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

    @property
    def unsent(self) -> int:
        """How many metrics are not yet known to be in the store."""
        return len(self._buffer) + sum(len(chunk) for chunk, _ in self._sending)

    def flush(self) -> None:
        """Send every buffered metric, in chunks of at most MLflow's batch limit, and wait
        until those sent in the background are written too."""
        while self._sending:
            self._settle_oldest()
        while self._buffer:
            # A signal waits until the chunk is both sent and dropped from the buffer: a chunk
            # sent but still buffered would be sent twice by the final flush.
            with interrupts.deferred():
                # Sent before it leaves the buffer: a failed send keeps it for the final flush.
                _retrying(self.client.log_batch, self.run_id,
                          metrics=self._buffer[: self.chunk])
                self._buffer = self._buffer[self.chunk:]

    def finish(self, status: str) -> None:
        """Flush what is buffered, then mark the run FINISHED, FAILED or KILLED.

        A run whose last metrics could not be sent is not FINISHED: it is marked FAILED,
        and the flush error propagates so the loss is never silent.
        """
        try:
            self.flush()
        except BaseException:
            if status == RunStatus.to_string(RunStatus.FINISHED):
                status = RunStatus.to_string(RunStatus.FAILED)
            raise
        finally:
            try:
                self.client.set_terminated(self.run_id, status=status)
            finally:
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


def failure_tags(error: BaseException, recorder: MlflowRecorder) -> dict[str, str]:
    """What ended a run, as tags: the reason, and the step it stopped at when known.

    The step is the error's own (a divergence knows it) or else the last step reported.
    """
    if isinstance(error, KeyboardInterrupt):
        name = "SIGTERM" if isinstance(error, interrupts.Terminated) else "SIGINT (Ctrl-C)"
        tags = {"failure.reason": f"stopped by {name}"}
    else:
        tags = {"failure.reason": f"{type(error).__name__}: {error}"[:5000]}
    step = getattr(error, "step", None)
    if step is None:
        step = recorder.last_step
    if step is not None:
        tags["failure.step"] = str(step)
    return tags


@contextmanager
def recorded_run(recorder: MlflowRecorder) -> Iterator[MlflowRecorder]:
    """Close the run with a truthful status: FINISHED, KILLED on interrupt, FAILED otherwise.

    Closing flushes every buffered metric first, with SIGINT and SIGTERM held back so a
    second Ctrl-C cannot leave the run half-closed. When the run fails and the store
    fails too, the store's error is logged and the run's own error is the one raised.
    """
    try:
        yield recorder
    except BaseException as error:
        killed = isinstance(error, KeyboardInterrupt)
        status = RunStatus.to_string(RunStatus.KILLED if killed else RunStatus.FAILED)
        with interrupts.deferred():
            try:
                try:
                    recorder.tags(failure_tags(error, recorder))
                finally:
                    recorder.finish(status)
            except Exception as store_error:  # the run's own error is the one to raise
                log.error("could not close run %s as %s: %s (%d metrics unsent)",
                          recorder.run_id, status, _first_line(store_error), recorder.unsent)
            else:
                log.info("run %s marked %s; every metric logged so far is kept",
                         recorder.run_id, status)
        raise
    else:
        with interrupts.deferred():
            recorder.finish(RunStatus.to_string(RunStatus.FINISHED))
