"""Sweeps end to end: Hydra multiruns through the real door into a real SQLite store.

Each sweep runs in this process through `cli.main()` with a patched argv, as
`python -m backprop_lab -m ...` would; the joblib and submitit launchers start their own
worker processes. Grids are tiny (20 samples, a handful of steps) to keep the suite fast.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from backprop_lab import cli, report
from backprop_lab.sweeps import ROLE_TAG

SMALL = ["dataset.n_samples=20", "optimizer.steps=6"]
GRID = ["optimizer.lr=0.01,0.05", "model.widths=[2],[4,3]"]


def multirun(store: str, experiment: str, sweep_dir: Path, *overrides: str):
    """Run `python -m backprop_lab -m <overrides>` in-process into experiment `experiment`
    of the store at URI `store`; return (client, id of the sweep's parent run)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    argv = ["backprop_lab", "-m", f"tracking.uri={store}", f"tracking.experiment='{experiment}'",
            f"hydra.sweep.dir={sweep_dir}", *overrides]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        try:
            cli.main()
        finally:
            GlobalHydra.instance().clear()  # leave no Hydra state behind for other tests
            HydraConfig.instance().cfg = None
    client = MlflowClient(tracking_uri=store)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               f"tags.`{ROLE_TAG}` = 'parent'")
    assert len(found) == 1, "the sweep should open exactly one parent run"
    return client, found[0].info.run_id


def children(client: MlflowClient, parent_id: str) -> list:
    return report.sweep_children(client, parent_id)


def grid_point(run) -> tuple[str, str]:
    return run.data.params["optimizer.lr"], run.data.params["model.widths"]


def histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
            for k in keys}


def artifact_paths(client: MlflowClient, run_id: str, folder: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, folder):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory):
    """The 2 x 2 grid with Hydra's basic launcher, run once for several tests, in a store of
    its own so that it is the latest sweep there."""
    tmp = tmp_path_factory.mktemp("basic")
    return multirun(f"sqlite:///{tmp / 'mlflow.db'}", "grid", tmp / "multirun", *GRID, *SMALL)


@pytest.fixture
def sweep_into(store_uri, experiment_name, tmp_path):
    """sweep_into(*overrides): a sweep in the session's store, in an experiment of its own."""
    return lambda *overrides: multirun(store_uri, experiment_name, tmp_path / "multirun",
                                       *overrides)


# ---- one sweep, one parent run -------------------------------------------------------------

def test_grid_gives_one_parent_and_a_finished_child_per_point(basic_sweep):
    client, parent_id = basic_sweep
    parent = client.get_run(parent_id)
    jobs = children(client, parent_id)

    assert parent.data.tags[ROLE_TAG] == "parent" and parent.info.status == "FINISHED"
    assert len(jobs) == 4
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert sorted(grid_point(r) for r in jobs) == sorted(
        (lr, widths) for lr in ("0.01", "0.05") for widths in ("[2]", "[4, 3]"))
    assert all(r.data.params["tracking.parent_run_id"] == parent_id for r in jobs)
    assert parent.data.params["sweep.optimizer.lr"] == "0.01,0.05"
    assert parent.data.params["sweep.n_jobs"] == "4"
    assert parent.data.metrics["sweep/n_finished"] == 4
    assert parent.data.metrics["sweep/n_failed"] == 0


def test_parent_holds_the_table_the_plots_and_the_best_job(basic_sweep, tmp_path):
    client, parent_id = basic_sweep
    parent = client.get_run(parent_id)
    jobs = children(client, parent_id)

    assert artifact_paths(client, parent_id) >= {
        "report/sweep_table.csv", "report/sweep_table.md", "report/sweep_table.html",
        "plots/final_loss_by_optimizer.lr.png", "plots/final_loss_by_model.widths.png",
        "plots/loss_curves.png", "sweep/multirun.yaml", "sweep/overrides.yaml"}
    final = {r.info.run_id: histories(client, r.info.run_id)["train/loss"][-1][1] for r in jobs}
    best_id = min(final, key=final.get)
    assert parent.data.tags["best.run_id"] == best_id
    assert float(parent.data.tags["best.final_loss"]) == final[best_id]
    assert parent.data.tags["best.optimizer.lr"] == str(float(
        client.get_run(best_id).data.params["optimizer.lr"]))

    csv = Path(client.download_artifacts(parent_id, "report/sweep_table.csv", str(tmp_path)))
    assert sorted(csv.read_text().splitlines()[1:]) == sorted(
        report.sweep_table(client, parent_id).to_csv(index=False).splitlines()[1:])
    overrides = Path(client.download_artifacts(parent_id, "sweep/overrides.yaml", str(tmp_path)))
    assert "optimizer.lr=0.01,0.05" in overrides.read_text()
    assert "parent_run_id" not in overrides.read_text()  # the record holds what was typed


def test_report_numbers_equal_the_runs_metric_histories(basic_sweep):
    client, parent_id = basic_sweep
    table = report.sweep_table(client, parent_id, fraction=0.5).set_index("run_id")

    for run in children(client, parent_id):
        row = table.loc[run.info.run_id]
        h = histories(client, run.info.run_id)
        steps = [s for s, _ in h["train/loss"]]
        losses = [v for _, v in h["train/loss"]]
        assert steps == list(range(6))  # one point per step: nothing was lost on the way
        assert row["final_loss"] == losses[-1]
        assert row["best_loss"] == min(losses)
        reached = [s for s, v in h["train/loss"] if v <= 0.5 * losses[0]]
        assert row["steps_to_50pct"] == reached[0]  # this grid halves its loss within 6 steps
        widths = [int(w) for w in run.data.params["model.widths"].strip("[]").split(",")]
        dead = [h[f"relu/layer{i}/dead_fraction"][-1][1] for i in range(1, len(widths) + 1)]
        assert row["dead_relu"] == pytest.approx(np.dot(dead, widths) / sum(widths), rel=1e-12)
        norms = [v[-1][1] for k, v in h.items() if k.startswith("grad/") and k.endswith("/norm")]
        assert len(norms) == 2 * len(widths)  # dweights and dbiases of every layer
        assert row["grad_norm"] == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-12)


def test_make_report_prints_the_latest_sweep_or_a_given_one(basic_sweep, capsys):
    client, parent_id = basic_sweep
    uri = client.tracking_uri

    assert report.main(["--uri", uri]) == 0
    latest = capsys.readouterr().out
    assert parent_id in latest and latest.count("FINISHED") == 4
    assert report.main(["--uri", uri, "--sweep", parent_id]) == 0
    assert capsys.readouterr().out == latest
    assert report.main(["--uri", uri, "--sweep", "no-such-run"]) == 2
    assert "no-such-run" in capsys.readouterr().err
    child = children(client, parent_id)[0].info.run_id  # an ordinary run, not a parent
    assert report.main(["--uri", uri, "--sweep", child]) == 2
    assert "is it a sweep's parent run?" in capsys.readouterr().err

def test_report_on_a_missing_store_says_so_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "none" / "mlflow.db"
    assert report.main(["--uri", f"sqlite:///{missing}"]) == 2
    assert f"no tracking store at {missing}" in capsys.readouterr().err
    assert not missing.exists()


# ---- failures, parallel and other launchers ------------------------------------------------

def test_a_sweep_whose_store_cannot_be_reached_stops_before_any_job(tmp_path):
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SystemExit) as stopped:
        multirun(f"http://127.0.0.1:{port}", "unreached", tmp_path / "multirun",
                 "optimizer.lr=0.1,0.2")
    assert stopped.value.code == 2
    assert not (tmp_path / "multirun" / "0").exists()  # no job was launched


def test_a_diverging_and_a_rejected_job_fail_and_the_sweep_goes_on(sweep_into):
    client, parent_id = sweep_into("optimizer.lr=0.01,1e6,-1", "model.widths=[2]",
                                   "objective=half_sum_squares", "optimizer.steps=30")
    by_lr = {r.data.params["optimizer.lr"]: r for r in children(client, parent_id)}

    assert {lr: r.info.status for lr, r in by_lr.items()} == {
        "0.01": "FINISHED", "1000000.0": "FAILED", "-1": "FAILED"}
    assert "diverged" in by_lr["1000000.0"].data.tags["failure.reason"]
    assert "optimizer.lr=-1" in by_lr["-1"].data.tags["failure.reason"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/n_failed"] == 2
    assert parent.data.tags["best.run_id"] == by_lr["0.01"].info.run_id
    table = report.sweep_table(client, parent_id).set_index("optimizer.lr")
    assert table.loc[1e6, "final_loss"] == math.inf  # MLflow stores inf as the largest float
    assert table.loc[-1, "status"] == "FAILED" and math.isnan(table.loc[-1, "final_loss"])
    assert "report/sweep_table.csv" in artifact_paths(client, parent_id, "report")


def test_joblib_launcher_gives_the_same_metrics_job_for_job(basic_sweep, sweep_into, tmp_path):
    client, parent_id = sweep_into("launcher=joblib", "hydra.launcher.n_jobs=2", *GRID, *SMALL)
    basic_client, basic_parent = basic_sweep
    parallel = {grid_point(r): r for r in children(client, parent_id)}
    serial = {grid_point(r): r for r in children(basic_client, basic_parent)}

    assert client.get_run(parent_id).data.tags["sweep.launcher"] == "JoblibLauncher"
    assert parallel.keys() == serial.keys() and len(parallel) == 4
    for point, run in parallel.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["blas.threads"] == "1"  # the cap in force in the worker
        got = histories(client, run.info.run_id)
        want = histories(basic_client, serial[point].info.run_id)
        assert got.keys() == want.keys()
        for key in want:
            assert [s for s, _ in got[key]] == [s for s, _ in want[key]], key  # none lost
            np.testing.assert_allclose([v for _, v in got[key]], [v for _, v in want[key]],
                                       rtol=1e-12, atol=0, err_msg=key)

    # The same worker processes (joblib keeps them) now race to create a store from nothing.
    # Each task waits at a barrier of files until both have arrived, so the two opens really
    # come from two processes at the same moment, however slowly the workers start.
    from joblib import Parallel, delayed

    def open_together(barrier: str, uri: str):
        import os
        import time
        from pathlib import Path

        from backprop_lab.tracking import open_experiment

        (Path(barrier) / str(os.getpid())).touch()
        deadline = time.time() + 120
        while len(list(Path(barrier).iterdir())) < 2:
            if time.time() > deadline:
                raise TimeoutError("the second worker never arrived")
            time.sleep(0.01)
        return os.getpid(), open_experiment(uri, "raced")[1]

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    fresh = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    same_pool = Parallel(n_jobs=2, max_nbytes=None, mmap_mode="r")  # as the launcher asks
    opened = same_pool(delayed(open_together)(str(barrier), fresh) for _ in range(2))
    assert len({pid for pid, _ in opened}) == 2  # two processes really raced
    assert len({experiment_id for _, experiment_id in opened}) == 1


def test_submitit_local_launcher_records_children_of_one_parent(sweep_into):
    client, parent_id = sweep_into("launcher=submitit_local", "optimizer.lr=0.03", *SMALL)
    (job,) = children(client, parent_id)  # one job in its own process: enough to carry the id
    assert client.get_run(parent_id).data.tags["sweep.launcher"] == "LocalLauncher"
    assert job.data.params["optimizer.lr"] == "0.03" and job.info.status == "FINISHED"
    assert job.data.tags["mlflow.parentRunId"] == parent_id
