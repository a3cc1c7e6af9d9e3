"""`make ui`: the command it runs and the addresses it prints."""

from backprop_lab import ui
from backprop_lab.tracking import open_experiment


def test_addresses_lead_to_each_experiments_runs_table_the_projects_first(
    store_uri, experiment_name
):
    _, other = open_experiment(store_uri, experiment_name)
    _, project = open_experiment(store_uri, "backprop-lab")  # the name conf/tracking gives
    lines = ui.addresses(store_uri, "127.0.0.1", 5123)
    assert lines[0] == (f"runs of backprop-lab: http://127.0.0.1:5123/#/experiments/{project}"
                        "/runs?workflowType=machine_learning")
    assert (f"runs of {experiment_name}: http://127.0.0.1:5123/#/experiments/{other}/runs"
            "?workflowType=machine_learning") in lines[1:]
    first = ui.addresses(store_uri, "::1", 80)[0]
    assert first.startswith("runs of backprop-lab: http://[::1]:80/#")


def test_an_empty_place_says_so_and_is_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert ui.addresses(uri, "0.0.0.0", 5000) == [
        "no runs recorded yet (make run); open http://127.0.0.1:5000/"]
    assert not (tmp_path / "mlflow.db").exists()


def test_the_server_command_serves_artifacts_from_beside_the_store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = ui.command(uri, "127.0.0.1", 5001)
    assert cmd[cmd.index("--default-artifact-root") + 1] == str(tmp_path / "mlartifacts")
    assert cmd[cmd.index("--workers") + 1] == "1"
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert ui.server_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")  # a user's choice stands
    assert ui.server_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
