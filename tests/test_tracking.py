"""A run recorded into a real SQLite MLflow store, read back with MlflowClient."""

import numpy as np
import pytest
from mlflow import MlflowClient

from backprop_lab.cli import execute
from backprop_lab.config import to_plain, validate
from backprop_lab.paths import project_root


def run(compose, store_uri, experiment, *overrides):
    cfg = compose(f"tracking.uri={store_uri}", f"tracking.experiment={experiment}", *overrides)
    return execute(validate(cfg), to_plain(cfg), project_root(), run_name="test")


def histories(client, run_id):
    keys = client.get_run(run_id).data.metrics
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One small run with two layers, recorded once and read back by several tests."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    uri = f"sqlite:///{tmp_path_factory.mktemp('recorded') / 'mlflow.db'}"
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[
            f"tracking.uri={uri}", "model.widths=[8,4]", "optimizer.steps=12",
        ])
    outcome = execute(validate(cfg), to_plain(cfg), project_root(), run_name="recorded")
    client = MlflowClient(tracking_uri=uri)
    return client, client.get_run(outcome.run_id), outcome


def test_run_is_finished_with_params_from_the_resolved_config(recorded):
    client, run, _ = recorded
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.widths"] == "[8, 4]"
    assert params["dataset.n_samples"] == "50"
    assert params["optimizer.lr"] == "0.1"
    assert params["seed"] == "0"


def test_every_metric_has_one_value_per_step(recorded):
    client, run, outcome = recorded
    history = histories(client, run.info.run_id)
    per_step = [k for k in history if not k.startswith("gradcheck/")]
    expected = {"train/loss", "train/output_mean", "grad/layer1.dweights/norm",
                "grad/layer2.dbiases/max", "param/layer2.weights/std",
                "update/layer1.weights/ratio", "relu/layer2/dead_fraction"}
    assert expected <= set(per_step)
    for key in per_step:
        assert [s for s, _ in history[key]] == list(range(12)), key
    assert history["train/loss"][0][1] == pytest.approx(outcome.result.initial_loss)
    assert len(history["gradcheck/max_rel_error"]) == 1


def test_gradient_norm_metric_equals_the_saved_gradient(recorded, tmp_path):
    client, run, _ = recorded
    path = client.download_artifacts(run.info.run_id, "arrays/gradients.npz", str(tmp_path))
    with np.load(path, allow_pickle=False) as saved:
        dweights = saved["dlayer1.weights"]
    assert dweights.shape == (3, 8)
    last = client.get_metric_history(run.info.run_id, "grad/layer1.dweights/norm")[-1]
    assert last.value == pytest.approx(float(np.linalg.norm(dweights)), rel=1e-12)


def test_artifacts_and_tags_are_recorded(recorded):
    client, run, _ = recorded
    run_id = run.info.run_id
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "shapes.csv", "shapes.md", "plots", "arrays"} <= top
    assert {a.path for a in client.list_artifacts(run_id, "plots")} >= {"plots/loss_curve.png"}
    assert {a.path for a in client.list_artifacts(run_id, "arrays")} == {
        "arrays/weights.npz", "arrays/gradients.npz"}
    tags = run.data.tags
    assert tags["shape.layer1.dweights"] == "(3, 50) @ (50, 8) -> (3, 8)"
    assert tags["shape.layer2.preactivation"] == "(50, 8) @ (8, 4) -> (50, 4) + (1, 4)"
    for key in ("git.commit", "git.dirty", "numpy.version", "mlflow.version", "hydra.version",
                "compute.dtype", "seed", "data.digest"):
        assert key in tags, key
    assert "blas.library" in tags and int(tags["blas.threads"]) >= 1
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == tags["data.digest"]


def test_same_seed_gives_identical_histories_and_another_seed_does_not(
    compose, store_uri, experiment_name
):
    first = run(compose, store_uri, experiment_name, "optimizer.steps=8")
    second = run(compose, store_uri, experiment_name, "optimizer.steps=8")
    other = run(compose, store_uri, experiment_name, "optimizer.steps=8", "seed=1")
    client = MlflowClient(tracking_uri=store_uri)
    a, b, c = (histories(client, o.run_id) for o in (first, second, other))
    assert a == b
    assert a["train/loss"] != c["train/loss"]


def test_sqlite_uris_map_to_their_database_file(tmp_path, monkeypatch):
    from backprop_lab.tracking import sqlite_path

    assert str(sqlite_path("sqlite:////abs/dir/mlflow.db")) == "/abs/dir/mlflow.db"
    monkeypatch.chdir(tmp_path)
    assert sqlite_path("sqlite:///rel.db") == tmp_path / "rel.db"
    assert sqlite_path("http://127.0.0.1:5000") is None


def test_error_gist_drops_sqlalchemy_statements_and_stays_short():
    from backprop_lab.tracking import _first_line

    noisy = RuntimeError("(sqlite3.OperationalError) database is locked [SQL: INSERT INTO "
                         "metrics VALUES (?)] [parameters: " + "(1.0), " * 1000 + "]\nmore")
    assert _first_line(noisy) == "(sqlite3.OperationalError) database is locked"
    assert len(_first_line(RuntimeError("x" * 5000))) == 200


def test_background_batches_in_flight_stay_bounded_and_all_arrive(compose, store_uri):
    from backprop_lab import tracking

    client, experiment_id = tracking.open_experiment(store_uri, "bounded-writer")
    run_id = client.create_run(experiment_id).info.run_id
    recorder = tracking.MlflowRecorder(client, run_id, chunk=10)
    most_in_flight = 0
    for step in range(400):
        recorder.metrics(step, {"train/loss": 1.0 / (step + 1), "x/a": float(step)})
        most_in_flight = max(most_in_flight, len(recorder._sending))
    recorder.finish("FINISHED")
    assert most_in_flight <= tracking.MAX_BATCHES_IN_FLIGHT
    history = client.get_metric_history(run_id, "x/a")
    assert sorted(m.step for m in history) == list(range(400))


def test_curves_for_pictures_stay_bounded_on_long_runs(monkeypatch, store_uri):
    from backprop_lab import tracking

    monkeypatch.setattr(tracking, "MAX_CURVE_POINTS", 100)
    client, experiment_id = tracking.open_experiment(store_uri, "bounded-curves")
    recorder = tracking.MlflowRecorder(client, client.create_run(experiment_id).info.run_id)
    for step in range(1000):
        recorder.metrics(step, {"train/loss": float(step)})
    recorder.finish("FINISHED")
    steps = [s for s, _ in recorder.losses]
    assert len(steps) <= 101 and steps[0] == 0 and steps[-1] == 999
    assert steps == sorted(steps)


def test_parallel_jobs_filing_the_same_dataset_all_succeed(tmp_path):
    """Jobs of a sweep on the same data log the same dataset at once; none may fail."""
    import threading

    from backprop_lab import tracking
    from backprop_lab.data import gaussian

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = tracking.open_experiment(uri, "same-data")
    dataset = gaussian(20, 3, rng=np.random.default_rng(0), dtype=np.float64)
    start, errors = threading.Barrier(6), []

    def job():
        recorder = tracking.MlflowRecorder(
            client, client.create_run(experiment_id).info.run_id)
        start.wait()
        try:
            recorder.dataset(dataset)
        except Exception as error:  # collected, so the assertion names it
            errors.append(error)
        recorder.finish("FINISHED")

    threads = [threading.Thread(target=job) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    runs = client.search_runs([experiment_id])
    assert len(runs) == 6
    digests = {r.inputs.dataset_inputs[0].dataset.digest for r in runs}
    assert len(digests) == 1
