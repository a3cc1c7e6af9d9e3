"""One config and seed give bit-identical histories, whatever runs them, on a real store."""

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from conftest import run_through_door
from mlflow import MlflowClient
from threadpoolctl import threadpool_limits

from backprop_lab import records
from backprop_lab.identity import HASH_TAG
from backprop_lab.paths import project_root
from backprop_lab.reproduce import reproduce

# Sizes at which OpenBLAS's float32 products come out different in their last bits with 1
# and with 2 threads on this project's machines, so only the pinned thread count
# (compute.blas_threads, 1 by default) keeps these runs identical.
THREAD_SENSITIVE = ["seed=5", "compute.dtype=float32", "gradcheck.enabled=false",
                    "dataset.n_samples=200", "dataset.n_features=64", "model.widths=[128,8]",
                    "optimizer.steps=5", "tracking.log_arrays=false"]


EXPERIMENT = f"determinism-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def store(store_uri):
    return store_uri


def run(store, *overrides: str) -> str:
    return run_through_door(store, EXPERIMENT, *overrides)


def joblib_sweep(store, folder, *overrides: str) -> None:
    """The config as a one-job multirun on Hydra's joblib launcher, in a worker process."""
    command = [sys.executable, "-m", "backprop_lab", "-m", "hydra/launcher=joblib",
               f"hydra.sweep.dir={folder}", f"tracking.uri={store}",
               f"tracking.experiment={EXPERIMENT}", *overrides]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def thread_sensitive_runs(store, tmp_path_factory) -> list[str]:
    """One config run three ways: in-process under 1 and 2 BLAS threads, and on joblib."""
    with threadpool_limits(limits=1):
        first = run(store, *THREAD_SENSITIVE)
    with threadpool_limits(limits=2):
        second = run(store, *THREAD_SENSITIVE)
    joblib_sweep(store, tmp_path_factory.mktemp("multirun"), *THREAD_SENSITIVE)
    client = MlflowClient(store)
    config_hash = client.get_run(first).data.tags[HASH_TAG]
    found = client.search_runs([client.get_run(first).info.experiment_id],
                               filter_string=f"tags.`{HASH_TAG}` = '{config_hash}'",
                               order_by=["attributes.start_time ASC"])
    assert [r.info.run_id for r in found][:2] == [first, second] and len(found) == 3
    return [r.info.run_id for r in found]


def test_basic_and_joblib_launchers_and_1_or_2_threads_give_identical_histories(
        store, thread_sensitive_runs):
    client = MlflowClient(store)
    assert {client.get_run(r).data.tags["blas.threads"] for r in thread_sensitive_runs} == {"1"}
    reference = records.metric_histories(client, thread_sensitive_runs[0])
    assert len(reference["train/loss"]) == 5
    for other in thread_sensitive_runs[1:]:
        assert records.metric_histories(client, other) == reference, other


def test_a_real_sweep_reproduces_from_its_parent_run(store, thread_sensitive_runs, capsys):
    client = MlflowClient(store)
    job = client.get_run(thread_sensitive_runs[2])
    parent = job.data.tags["mlflow.parentRunId"]  # opened by the sweep callback
    results = reproduce(parent, store, project_root())
    assert [r.original.run_id for r in results] == [job.info.run_id]
    assert results[0].identical and results[0].verdict.n_inexact == 0
    assert "1 of 1 identical; new parent run" in capsys.readouterr().out
    new_parent = client.get_run(results[0].reproduction.tags["mlflow.parentRunId"]).data.tags
    assert new_parent["sweep.swept_keys"] == client.get_run(parent).data.tags["sweep.swept_keys"]


def test_the_recorded_thread_count_is_the_one_in_force(store):
    with threadpool_limits(limits=1):
        run_id = run(store, "compute.blas_threads=2", "optimizer.steps=2",
                     "gradcheck.enabled=false", "tracking.log_arrays=false")
    assert MlflowClient(store).get_run(run_id).data.tags["blas.threads"] == "2"


IMPORT_PROBE = textwrap.dedent("""
    import logging, os, pkgutil, random, importlib, warnings
    import numpy as np
    import mlflow, hydra, omegaconf, threadpoolctl, filelock  # third parties first
    from threadpoolctl import threadpool_info

    def snapshot():
        root = logging.getLogger()
        return (np.random.get_state()[1].tobytes(), random.getstate(), dict(os.environ),
                np.geterr(), np.get_printoptions(), list(warnings.filters), os.getcwd(),
                root.level, list(root.handlers), [p["num_threads"] for p in threadpool_info()])

    before = snapshot()
    import backprop_lab
    names = [m.name for m in pkgutil.walk_packages(backprop_lab.__path__, "backprop_lab.")]
    for name in names:
        importlib.import_module(name)
    after = snapshot()
    labels = ["numpy random", "random", "environ", "np.geterr", "printoptions", "warnings",
              "cwd", "root log level", "root handlers", "BLAS threads"]
    changed = [label for label, a, b in zip(labels, before, after) if a != b]
    print(len(names), "modules;", "changed:", changed)
""")


def test_importing_every_module_changes_no_global_state():
    done = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    count, _, changed = done.stdout.strip().partition(" modules; changed: ")
    assert int(count) >= 10 and changed == "[]", done.stdout
