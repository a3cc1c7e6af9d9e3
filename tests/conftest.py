"""Shared fixtures: a real SQLite MLflow store in a temporary folder, and composed configs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every subprocess and composed config resolves output folders against the checkout.
os.environ.setdefault("BACKPROP_LAB_ROOT", str(ROOT))


def run_through_door(store: str, experiment: str, *overrides: str) -> str:
    """One run composed by Hydra as `python -m backprop_lab` would, recorded in `store`;
    returns its run id."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from backprop_lab.cli import execute
    from backprop_lab.config import to_plain, validate

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[
            f"tracking.uri={store}", f"tracking.experiment={experiment}", *overrides])
    return execute(validate(cfg), to_plain(cfg), ROOT).run_id


@pytest.fixture(scope="session")
def store_uri(tmp_path_factory) -> str:
    """One SQLite store for the session (creating one costs seconds); tests use own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def experiment_name(request) -> str:
    """A fresh experiment name, so runs of different tests never mix."""
    return f"{request.node.name[:60]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def compose():
    """compose(*overrides) -> the DictConfig Hydra would build for those overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))

    return _compose
