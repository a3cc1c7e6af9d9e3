"""Faults during a run: divergence, signals, an unreachable or busy store, oversized params.

Each ends with a truthful status in a real SQLite store and every metric logged before the
fault still there.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from backprop_lab import cli, tracking
from backprop_lab.config import flatten, to_plain, validate
from backprop_lab.runner import train

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "backprop_lab"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite store with its tables made once; each test copies it (migrations are slow)."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    tracking.open_experiment(f"sqlite:///{db}", "backprop-lab")
    return db


@pytest.fixture
def store(empty_store, tmp_path) -> str:
    """The URI of a fresh store of this test's own."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def refusal(caplog) -> str:
    """The one error line the door logged."""
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    return record.getMessage()


def composed(*args: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(args))


def only_run(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("backprop-lab")
    if experiment is None:
        raise ValueError("no experiment yet")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def loss_steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "train/loss"))


# ---- divergence ----------------------------------------------------------------------------

# A learning rate this large overflows the weights on the first update.
EXPLODING = ("optimizer.lr=1e300", "objective=half_sum_squares", "model.init_scale=1",
             "model.widths=[8,4]", "gradcheck.enabled=false", "optimizer.steps=50")


def test_divergence_fails_the_run_at_its_step_and_keeps_the_metrics(store, caplog):
    uri = store
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # overflow is reported, not warned
        with pytest.raises(SystemExit) as exit_info:
            cli.run_from_config(composed(*EXPLODING, f"tracking.uri={uri}"))
    assert exit_info.value.code == cli.EXIT_RUN_FAILED
    err = refusal(caplog)
    assert "diverged at step 1" in err and "optimizer.lr=1e+300; try 1e+299" in err

    client, run = only_run(uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure.step"] == "1"
    assert "not finite" in run.data.tags["failure.reason"] or "nan" in run.data.tags[
        "failure.reason"]
    assert loss_steps(client, run.info.run_id) == [0, 1]  # every step up to the fault
    assert len(client.get_metric_history(run.info.run_id, "param/layer1.weights/norm")) == 2


# ---- signals ---------------------------------------------------------------------------------

def _start_long_run(uri: str) -> subprocess.Popen:
    args = ["gradcheck.enabled=false", "optimizer.steps=1000000", "compute.blas_threads=1",
            f"tracking.uri={uri}", "tracking.log_arrays=false"]
    return subprocess.Popen([sys.executable, "-m", "backprop_lab", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_metrics(uri: str, proc: subprocess.Popen) -> int:
    """Block until the running job has flushed metrics; return how many loss steps exist."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            client, run = only_run(uri)
            steps = loss_steps(client, run.info.run_id)
            if steps:
                return len(steps)
        except ValueError:
            pass  # the run is not there yet
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"no metrics arrived: {proc.communicate()}")


@pytest.mark.slow
def test_sigint_and_sigterm_mid_training_flush_and_mark_killed(empty_store, tmp_path):
    jobs = {}
    for signum in (signal.SIGINT, signal.SIGTERM):  # both at once: start-up is most of the time
        db = tmp_path / f"{signum.name}.db"
        shutil.copy(empty_store, db)
        jobs[signum] = (f"sqlite:///{db}", _start_long_run(f"sqlite:///{db}"))
    for signum, (uri, proc) in jobs.items():
        seen = _wait_for_metrics(uri, proc)
        proc.send_signal(signum)
        if signum == signal.SIGINT:
            time.sleep(0.05)
            proc.send_signal(signum)  # an impatient second Ctrl-C must not spoil the close
        try:
            _, err = proc.communicate(timeout=30)  # prompt: seconds, not the hours left
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], err
        assert "Traceback" not in err and "marked KILLED" in err

        client, run = only_run(uri)
        assert run.info.status == "KILLED"
        steps = loss_steps(client, run.info.run_id)
        assert steps == list(range(len(steps))) and len(steps) >= seen  # no gaps, none lost
        # The buffer was flushed: the store holds up to the last step the run reported.
        assert steps[-1] == int(run.data.tags["failure.step"])
        assert signum.name in run.data.tags["failure.reason"]


# ---- unreachable and busy stores -------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_fails_within_seconds_naming_the_uri(caplog):
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        cli.run_from_config(composed(f"tracking.uri={uri}", "gradcheck.enabled=false"))
    assert time.monotonic() - started < 15  # MLflow's own retries would take minutes
    assert exit_info.value.code == cli.EXIT_USER_ERROR
    err = refusal(caplog)
    assert err.startswith("tracking error:") and uri in err and "mlflow server" in err


STEPS, NAMES = 200, 5  # per writer: 1000 metrics in 20 batches of 50


def _write_one_run(uri: str, barrier, results) -> None:
    client, experiment_id = tracking.open_experiment(uri, "backprop-lab")
    run_id = client.create_run(experiment_id).info.run_id
    recorder = tracking.MlflowRecorder(client, run_id, chunk=50)
    barrier.wait()  # all four write at once
    with tracking.recorded_run(recorder):
        recorder.params({"writer": run_id})
        for step in range(STEPS):
            recorder.metrics(step, {f"m{i}": step + i / 10 for i in range(NAMES)})
    results.put(run_id)


@pytest.mark.slow
def test_four_processes_writing_one_sqlite_store_lose_nothing(store):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_write_one_run, args=(store, barrier, results))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]

    client = MlflowClient(store)
    run_ids = {results.get(timeout=5) for _ in workers}
    assert len(run_ids) == 4
    for run_id in run_ids:
        assert client.get_run(run_id).info.status == "FINISHED"
        for i in range(NAMES):
            history = client.get_metric_history(run_id, f"m{i}")
            assert sorted((m.step, m.value) for m in history) == [
                (step, step + i / 10) for step in range(STEPS)]


# ---- what gets logged ------------------------------------------------------------------------

def test_long_values_and_many_keys_log_as_params_and_an_artifact(store, tmp_path):
    uri = store
    client, experiment_id = tracking.open_experiment(uri, "params")
    run_id = client.create_run(experiment_id).info.run_id
    recorder = tracking.MlflowRecorder(client, run_id)
    long_value = "x" * (MAX_PARAM_VAL_LENGTH + 500)
    params = {f"key{i}": i for i in range(250)} | {"long": long_value}
    with tracking.recorded_run(recorder):
        recorder.params(params)

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(run.data.params) == 251
    assert run.data.params["long"].endswith(tracking.LONG_MARK)
    assert len(run.data.params["long"]) == MAX_PARAM_VAL_LENGTH  # cut by us, not by MLflow
    path = client.download_artifacts(run_id, "params_long.txt", str(tmp_path))
    assert Path(path).read_text() == f"long={long_value}\n"


def test_a_hundred_layer_config_logs_and_finishes(store):
    # What the door records (params, shapes, every step metric), without the pictures,
    # whose drawing is the slow part at this depth.
    cfg = composed(f"model.widths=[{','.join(['3'] * 100)}]", "optimizer.steps=1",
                   "gradcheck.enabled=false", "tracking.log_arrays=false")
    client, experiment_id = tracking.open_experiment(store, "backprop-lab")
    run_id = client.create_run(experiment_id).info.run_id
    recorder = tracking.MlflowRecorder(client, run_id)
    with tracking.recorded_run(recorder):
        recorder.params(flatten(to_plain(cfg)))
        train(validate(cfg), recorder)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.widths"].count("3") == 100
    assert "param/layer100.weights/norm" in run.data.metrics


def test_saved_arrays_are_never_unpickled():
    calls = [(path.name, line) for path in SRC.rglob("*.py")
             for line in path.read_text().splitlines() if re.search(r"\bnp\.load\(", line)]
    unsafe = [c for c in calls if "allow_pickle=False" not in c[1]]
    assert not unsafe, f"np.load without allow_pickle=False: {unsafe}"


# ---- the UI's address --------------------------------------------------------------------

def test_make_ui_binds_localhost_even_with_host_in_the_environment():
    env = {**os.environ, "HOST": "0.0.0.0", "PORT": "80"}
    dry = subprocess.run(["make", "-n", "ui"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60).stdout
    assert "--host 127.0.0.1 --port 5000" in dry

    from backprop_lab import ui

    assert ui.parse_args([]).host == "127.0.0.1"
    assert "this machine alone" in ui.binding_note("127.0.0.1")
    assert ui.binding_note("0.0.0.0").startswith("warning")
