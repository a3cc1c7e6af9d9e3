"""`reproduce` against a real SQLite MLflow store: identical reruns pass, any change is named."""

import uuid

import pytest
from conftest import run_through_door
from mlflow import MlflowClient
from mlflow.entities import Metric
from omegaconf import OmegaConf

from backprop_lab import records
from backprop_lab.identity import HASH_TAG
from backprop_lab.paths import project_root
from backprop_lab.reproduce import (
    EXIT_DIFFERENT,
    EXIT_IDENTICAL,
    EXIT_USER_ERROR,
    REPRODUCTION_TAG,
    VERDICT_TAG,
    main,
    reproduce,
)
from backprop_lab.runner import Diverged

TINY = ["optimizer.steps=8", "gradcheck.max_entries=4", "tracking.log_arrays=false"]


EXPERIMENT = f"reproduce-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def store(store_uri):
    return store_uri


def run(store, *overrides: str) -> str:
    return run_through_door(store, EXPERIMENT, *TINY, *overrides)


def copy_run(client, run_id, folder, config=None, perturb=None) -> str:
    """A new run holding `run_id`'s config (or `config`) and metrics, one metric perturbed."""
    original = client.get_run(run_id)
    copy = client.create_run(original.info.experiment_id, run_name="copy").info.run_id
    path = folder / "config.yaml"
    OmegaConf.save(OmegaConf.create(config or records.recorded_config(client, run_id)), path)
    client.log_artifact(copy, str(path))
    metrics = []
    for key, points in records.metric_histories(client, run_id).items():
        for step, value in points:
            if perturb and (key, step) == perturb[:2]:
                value += perturb[2]
            metrics.append(Metric(key, value, 0, step))
    for start in range(0, len(metrics), 1000):
        client.log_batch(copy, metrics=metrics[start:start + 1000])
    client.set_terminated(copy)
    return copy


@pytest.fixture(scope="module")
def original(store):
    return run(store, "seed=7")


def test_reproducing_a_run_is_identical_and_tags_the_new_run(store, original, capsys):
    assert main([original, "--uri", store]) == EXIT_IDENTICAL
    out = capsys.readouterr().out
    assert "IDENTICAL" in out and "bit for bit" in out
    client = MlflowClient(store)
    reruns = client.search_runs([client.get_run(original).info.experiment_id],
                                filter_string=f"tags.{REPRODUCTION_TAG} = '{original}'")
    assert len(reruns) == 1
    rerun = reruns[0]
    assert rerun.info.run_id in out and rerun.info.status == "FINISHED"
    assert rerun.data.tags[VERDICT_TAG] == "identical"
    assert rerun.data.tags[HASH_TAG] == client.get_run(original).data.tags[HASH_TAG]


def test_an_altered_config_is_named_at_its_first_differing_step(store, original, tmp_path,
                                                                capsys):
    client = MlflowClient(store)
    altered = records.recorded_config(client, original)
    altered["optimizer"]["lr"] = 0.2
    copy = copy_run(client, original, tmp_path, config=altered)
    assert main([copy, "--uri", store]) == EXIT_DIFFERENT
    out = capsys.readouterr().out
    # At step 0 nothing has moved yet; only the update ratio, lr x |gradient| / |weights|,
    # already depends on the learning rate.
    assert "DIFFERENT: first at step 0, metric update/layer1.weights/ratio" in out


def test_a_perturbed_metric_is_named_with_its_step_and_size(store, original, tmp_path, capsys):
    client = MlflowClient(store)
    copy = copy_run(client, original, tmp_path, perturb=("train/loss", 5, 1e-12))
    assert main([copy, "--uri", store]) == EXIT_DIFFERENT
    out = capsys.readouterr().out
    assert "first at step 5, metric train/loss" in out
    assert "difference 1e-12" in out  # original minus reproduced
    assert main([copy, "--uri", store, "--tolerance", "1e-9"]) == EXIT_IDENTICAL
    assert "IDENTICAL within tolerance" in capsys.readouterr().out


def test_unknown_run_or_store_is_one_clear_message(store, tmp_path, capsys):
    assert main(["0" * 32, "--uri", store]) == EXIT_USER_ERROR
    assert f"no run '{'0' * 32}'" in capsys.readouterr().err
    assert main(["abc", "--uri", f"sqlite:///{tmp_path / 'none.db'}"]) == EXIT_USER_ERROR
    assert "no tracking store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["abc", "--tolerance", "-1"])


def test_a_sweep_is_reproduced_child_by_child_under_a_new_parent(store, capsys):
    client = MlflowClient(store)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parent = client.create_run(experiment_id, run_name="sweep").info.run_id
    children = [run(store, f"seed={seed}", f"tracking.parent_run_id={parent}")
                for seed in (1, 2)]
    # A grid value the door refused is filed as a FAILED child with a reason and no config.
    refused = client.create_run(experiment_id, run_name="refused", tags={
        "mlflow.parentRunId": parent, "failure.reason": "ConfigError: optimizer.lr=-1"}).info
    client.set_terminated(refused.run_id, "FAILED")
    client.set_terminated(parent)
    results = reproduce(parent, store, project_root())
    assert [r.original.run_id for r in results] == children
    assert all(r.identical for r in results)
    new_parent = {r.reproduction.tags["mlflow.parentRunId"] for r in results}
    assert len(new_parent) == 1 and parent not in new_parent
    new_parent_run = client.get_run(new_parent.pop())
    tags = new_parent_run.data.tags
    assert tags[REPRODUCTION_TAG] == parent
    assert tags[VERDICT_TAG] == "2 of 2 identical, 1 refused before training"
    assert new_parent_run.info.status == "FINISHED"
    out = capsys.readouterr().out
    assert f"run {refused.run_id} (refused): refused before training, not rerun" in out
    assert "2 of 2 identical, 1 refused before training; new parent run" in out


def test_a_stopped_run_is_refused_with_the_step_it_stopped_at(store, original, tmp_path, capsys):
    client = MlflowClient(store)
    stopped = copy_run(client, original, tmp_path)
    client.set_tag(stopped, "failure.step", "5")
    client.set_terminated(stopped, "KILLED")
    assert main([stopped, "--uri", store]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "KILLED" in err and "step 5" in err


def test_a_diverged_run_reproduces_by_diverging_at_the_same_step(store, capsys):
    with pytest.raises(Diverged):
        run(store, "objective=half_sum_squares", "optimizer.lr=100", "optimizer.steps=60",
            "model.init_scale=1", "gradcheck.enabled=false")
    client = MlflowClient(store)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    failed = client.search_runs([experiment_id], "attributes.status = 'FAILED'")[0].info.run_id
    assert main([failed, "--uri", store]) == EXIT_IDENTICAL
    out = capsys.readouterr().out
    assert "IDENTICAL" in out and "both runs FAILED" in out and "diverged at step" in out
