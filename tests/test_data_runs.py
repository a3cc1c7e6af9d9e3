"""Whole runs on labelled data: config checks, the named experiments, the MLflow record."""

import logging

import numpy as np
import pytest
from mlflow import MlflowClient
from threadpoolctl import threadpool_limits

from backprop_lab.cli import EXIT_USER_ERROR, execute, run_from_config
from backprop_lab.config import ConfigError, to_plain, validate
from backprop_lab.paths import project_root
from backprop_lab.runner import MemoryRecorder, build, train


@pytest.fixture(autouse=True)
def one_blas_thread():
    # These networks are tiny; on a busy machine extra BLAS threads only wait for each other.
    with threadpool_limits(limits=1):
        yield


@pytest.mark.parametrize("overrides, message", [
    (["objective=softmax_cross_entropy"], r"needs class labels, but dataset gaussian has none"),
    (["objective=mse"], r"needs numeric targets, but dataset gaussian"),
    (["dataset=csv", "dataset.path=data/sine.csv", "objective=mse"], r"set dataset.target"),
    (["dataset=iris", "objective=mse"], r"dataset iris has class labels"),
    (["dataset=csv"], r"dataset.path=None: dataset=csv needs the CSV file's path"),
    (["dataset=csv", "dataset.path=nowhere.csv"], r"dataset.path='nowhere.csv': no file at"),
    (["dataset=iris", "+dataset.n_features=3"], r"dataset.n_features does nothing with "
                                                r"dataset.name='iris' \(it is read by gaussian"),
    (["optimizer=adam", "+optimizer.momentum=0.9"], r"optimizer.momentum does nothing"),
    (["optimizer.batch_size=0"], r"optimizer.batch_size=0 is too small"),
    (["dataset=spiral", "dataset.n_samples=2"], r"dataset.n_samples=2 gives some of the "
                                                 r"dataset.n_classes=3 spiral arms no points"),
    (["optimizer.momentum=1.0"], r"optimizer.momentum=1.0 is not allowed"),
    (["dataset=iris", "dataset.validation_fraction=1"], r"dataset.validation_fraction=1"),
])
def test_impossible_combinations_are_config_errors(compose, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(*overrides))


def test_a_label_mismatch_stops_before_any_run_opens(compose, tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose(f"tracking.uri={uri}", "objective=softmax_cross_entropy")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        run_from_config(cfg)
    assert stop.value.code == EXIT_USER_ERROR
    assert "dataset gaussian has none" in caplog.text
    assert not (tmp_path / "mlflow.db").exists()


STATED = {  # the accuracies each experiment file states for seed 0
    "spiral_classifier": {"train/accuracy": 0.95, "val/accuracy": 0.85},
    "iris": {"val/accuracy": 0.93},
}


@pytest.mark.parametrize("name", sorted(STATED))
def test_classification_experiments_reach_their_stated_accuracy(compose, name):
    recorder = MemoryRecorder()
    result = train(validate(compose(f"experiment={name}")), recorder)
    for key, floor in STATED[name].items():
        assert result.evaluation[key] >= floor, (key, result.evaluation)
    assert result.gradcheck_error is not None and result.gradcheck_error < 1e-6
    assert {"train/accuracy", "val/accuracy", "val/loss"} <= set(recorder.history)
    assert recorder.dataset_contexts == ["training", "validation"]


def test_sine_regression_reads_the_csv_and_fits_the_curve(compose):
    result = train(validate(compose("experiment=sine_regression")), MemoryRecorder())
    assert result.evaluation["val/loss"] < 1e-4  # y itself has variance 0.5
    assert result.initial_loss > 0.3


@pytest.mark.parametrize("experiment", ["iris", "spiral_classifier"])
def test_mini_batch_runs_reproduce_by_seed(compose, experiment):
    overrides = [f"experiment={experiment}", "optimizer.steps=30", "optimizer.batch_size=16",
                 "tracking.log_every=1"]
    first, second = MemoryRecorder(), MemoryRecorder()
    train(validate(compose(*overrides)), first)
    train(validate(compose(*overrides)), second)
    assert first.history == second.history
    other = MemoryRecorder()
    train(validate(compose(*overrides, "seed=1")), other)
    assert other.history["train/loss"] != first.history["train/loss"]


def test_batch_size_and_split_leave_data_and_weights_alone(compose):
    whole = build(validate(compose("dataset=spiral", "objective=softmax_cross_entropy",
                                   "dataset.validation_fraction=0")))
    batched = build(validate(compose("dataset=spiral", "objective=softmax_cross_entropy",
                                     "dataset.validation_fraction=0.5",
                                     "optimizer.batch_size=7")))
    for a, b in zip(whole.network.parameters(), batched.network.parameters(), strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    rows = np.concatenate([batched.train.inputs, batched.validation.inputs])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, whole.train.inputs))


def test_mlflow_records_both_datasets_with_targets_and_accuracies(compose, store_uri,
                                                                  experiment_name):
    cfg = compose(f"tracking.uri={store_uri}", f"tracking.experiment={experiment_name}",
                  "experiment=iris", "optimizer.steps=5", "tracking.log_every=1")
    outcome = execute(validate(cfg), to_plain(cfg), project_root(), run_name="iris")
    client = MlflowClient(tracking_uri=store_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
              for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation"}
    assert inputs["training"].name == "iris" and "load_iris" in inputs["training"].source
    assert "[120, 4]" in inputs["training"].profile and "[30, 4]" in inputs["validation"].profile
    tags = run.data.tags
    assert tags["data.digest"] == inputs["training"].digest
    assert tags["data.validation.shape"] == "(30, 4)" and tags["data.targets_shape"] == "(120,)"
    assert tags["data.classes"] == "setosa,versicolor,virginica"
    history = client.get_metric_history(outcome.run_id, "val/accuracy")
    assert [m.step for m in history] == [0, 1, 2, 3, 4, 5]  # every step, then after the last
    assert history[-1].value == pytest.approx(outcome.result.evaluation["val/accuracy"])


def test_bad_csv_values_fail_the_run_with_the_cell_named(compose, tmp_path, caplog, store_uri,
                                                         experiment_name):
    table = tmp_path / "bad.csv"
    table.write_text("a,b,label\n1,2,x\n3,four,y\n")
    cfg = compose(f"tracking.uri={store_uri}", f"tracking.experiment={experiment_name}",
                  "dataset=csv", f"dataset.path={table}", "dataset.target=label",
                  "objective=softmax_cross_entropy")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        run_from_config(cfg)
    assert stop.value.code == EXIT_USER_ERROR
    assert "column 'b', row 2: 'four' is not a number" in caplog.text
    client = MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert "DataError" in run.data.tags["failure.reason"]
