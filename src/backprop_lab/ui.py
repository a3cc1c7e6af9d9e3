"""`make ui`: serve the MLflow UI over the project's store, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import os
import sys

from omegaconf import OmegaConf

from .paths import conf_dir, project_root
from .tracking import ARTIFACTS_DIR, experiment_ids, resolve_uri, sqlite_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backprop_lab.ui",
        description="Serve the MLflow UI over backprop-lab's tracking store.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; the default keeps the UI on this machine. "
                             "Binding 0.0.0.0 exposes every run to the network: opt in knowingly.")
    parser.add_argument("--port", type=int, default=5000, help="port to serve on (default 5000)")
    parser.add_argument("--uri", default=None,
                        help="tracking store; default $MLFLOW_TRACKING_URI, else the project's "
                             "mlflow.db")
    return parser.parse_args(argv)


def command(uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The `mlflow ui` command line for `uri`, with artifacts served from beside the database.

    One worker process serves one person browsing well; MLflow's default of four costs a
    Python process each.
    """
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", host, "--port", str(port), "--workers", str(workers)]
    db = sqlite_path(uri)
    if db is not None:
        cmd += ["--default-artifact-root", str(db.parent / ARTIFACTS_DIR)]
    return cmd


def server_env() -> dict[str, str]:
    """The environment `mlflow ui` runs in: MLflow's job runner off unless asked for.

    The job runner executes GenAI evaluation jobs, which these runs never queue, and starts
    a handful of extra Python processes to do it.
    """
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def runs_address(base: str, experiment_id: str) -> str:
    """The experiment's runs table. MLflow 3 otherwise opens its GenAI view, where these runs
    do not show."""
    return f"{base}#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _browser_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"  # bound everywhere: this machine reaches it on loopback
    return f"[{host}]" if ":" in host else host


def addresses(uri: str, host: str, port: int) -> list[str]:
    """Lines naming where to click: each experiment's runs table, the project's first."""
    base = f"http://{_browser_host(host)}:{port}/"
    experiments = experiment_ids(uri)
    if not experiments:
        return [f"no runs recorded yet (make run); open {base}"]
    project = OmegaConf.load(conf_dir() / "tracking" / "mlflow.yaml").experiment
    names = sorted(experiments, key=lambda name: name != project)  # stable: oldest next
    return [f"runs of {name}: {runs_address(base, experiments[name])}" for name in names]


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def binding_note(host: str) -> str:
    """One line saying who can reach the UI bound to `host`."""
    if host in LOCAL_HOSTS:
        return (f"bound to {host} only: reachable from this machine alone "
                "(`make ui HOST=0.0.0.0` exposes it to the network)")
    return f"warning: bound to {host}: every run in the store is visible beyond this machine"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    uri = resolve_uri(args.uri, project_root())
    print(binding_note(args.host), file=sys.stderr if args.host not in LOCAL_HOSTS else sys.stdout)
    print(f"MLflow UI over {uri}")
    for line in addresses(uri, args.host, args.port):
        print(line)
    print("(Ctrl-C stops it)", flush=True)
    cmd = command(uri, args.host, args.port)
    os.execve(cmd[0], cmd, server_env())


if __name__ == "__main__":
    main()
