"""The doors as users type them: `make run ARGS=...` and `python -m backprop_lab`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def env_with(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
    env.update(extra)
    return env


def only_run(uri):
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=10
    )
    assert len(runs) == 1
    return runs[0]


def test_make_run_passes_a_list_override_through_make_and_the_shell(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A file that the bracket pattern would match if the shell globbed the override.
    (tmp_path / "model.widths=8").touch()
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "run",
         "ARGS=model.widths=[8,4] optimizer.steps=3 dataset.n_samples=20"],
        cwd=tmp_path, env=env_with(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = only_run(uri)
    assert run.data.params["model.widths"] == "[8, 4]"
    assert run.data.params["dataset.n_samples"] == "20"
    assert run.info.status == "FINISHED"
    assert "make ui" in done.stdout


def test_module_run_from_an_unrelated_directory_lands_in_the_project_store(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "conf", project / "conf", symlinks=True)
    shutil.copytree(ROOT / "experiments", project / "experiments")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "backprop_lab", "optimizer.steps=2"],
        cwd=elsewhere, env=env_with(BACKPROP_LAB_ROOT=str(project)),
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert only_run(f"sqlite:///{project / 'mlflow.db'}").info.status == "FINISHED"
    assert (project / "mlartifacts").is_dir() and (project / "outputs").is_dir()
    assert list(elsewhere.iterdir()) == []  # nothing written where the command was typed


def test_help_and_cfg_job_work():
    help_text = subprocess.run(
        [sys.executable, "-m", "backprop_lab", "--help"], capture_output=True, text=True,
        timeout=120, env=env_with(),
    )
    assert help_text.returncode == 0
    assert "optimizer" in help_text.stdout and "model" in help_text.stdout
    job = subprocess.run(
        [sys.executable, "-m", "backprop_lab", "--cfg", "job", "model.widths=[8,4]"],
        capture_output=True, text=True, timeout=120, env=env_with(),
    )
    assert job.returncode == 0
    assert "widths:\n  - 8\n  - 4" in job.stdout
