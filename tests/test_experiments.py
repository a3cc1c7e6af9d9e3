"""Every named experiment runs, and every point of every sweep in experiments/ is valid."""

from __future__ import annotations

import itertools
import math

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow import MlflowClient

from backprop_lab.cli import execute
from backprop_lab.config import to_plain, validate
from backprop_lab.paths import project_root

EXPERIMENTS = sorted(p.stem for p in (project_root() / "experiments").glob("*.yaml"))


def test_the_named_studies_are_there():
    assert {"founding", "lr_sweep", "width_sweep", "size_sweep", "lr_search"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_for_two_steps(name, compose, store_uri, experiment_name):
    cfg = compose(f"experiment={name}", "optimizer.steps=2", f"tracking.uri={store_uri}",
                  f"tracking.experiment='{experiment_name}'")
    text = (project_root() / "experiments" / f"{name}.yaml").read_text().splitlines()
    assert text[0] == "# @package _global_"
    assert any(line.startswith("# Question:") for line in text)
    assert any(line.startswith("# Run: make") for line in text)
    outcome = execute(validate(cfg), to_plain(cfg), project_root(), run_name=name)
    run = MlflowClient(tracking_uri=store_uri).get_run(outcome.run_id)
    assert run.info.status == "FINISHED" and math.isfinite(outcome.result.final_loss)


def _points(params) -> list[list[str]]:
    """Every grid point of a sweep's params; an interval contributes its two ends."""
    choices = []
    for override in OverridesParser.create().parse_overrides(
            [f"{k}={v}" for k, v in params.items()]):
        key = override.key_or_group
        if override.is_discrete_sweep():
            values = list(override.sweep_string_iterator())
        else:
            sweep = override.value()
            values = [repr(sweep.start), repr(sweep.end)]
        choices.append([f"{key}={value}" for value in values])
    return [list(point) for point in itertools.product(*choices)]


def _sweeper_params(name: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={name}"],
                      return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params")
    return OmegaConf.to_container(params) if params else {}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_point_of_a_sweep_validates(name, compose):
    params = _sweeper_params(name)
    for point in _points(params):
        validate(compose(f"experiment={name}", *point))  # raises ConfigError on a bad point
    if name.endswith(("_sweep", "_search")):
        assert params, f"{name} names no sweep in hydra.sweeper.params"


def test_lr_search_is_a_seeded_optuna_study(store_uri, experiment_name, tmp_path):
    import optuna
    from test_sweeps import children, multirun

    client, parent_id = multirun(store_uri, experiment_name, tmp_path / "multirun",
                                 "experiment=lr_search", "hydra.sweeper.n_trials=3",
                                 "optimizer.steps=3")
    parent = client.get_run(parent_id)
    assert parent.data.tags["sweep.sweeper"] == "OptunaSweeper"
    assert parent.data.params["sweep.n_jobs"] == "3"
    jobs = children(client, parent_id)
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert (tmp_path / "multirun" / "optimization_results.yaml").is_file()

    # The same seeded sampler, asked directly, draws the learning rates the sweep ran.
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    expected = []
    for _ in jobs:
        trial = study.ask()
        expected.append(trial.suggest_float("optimizer.lr", 0.00001, 2.0, log=True))
        study.tell(trial, 1.0)
    assert [float(r.data.params["optimizer.lr"]) for r in jobs] == pytest.approx(expected)
