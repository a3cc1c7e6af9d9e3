"""`make ui`: serve the MLflow UI over the project's store, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import os
import sys

from .paths import project_root
from .tracking import ARTIFACTS_DIR, resolve_uri, sqlite_path


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


def command(uri: str, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line for `uri`, with artifacts served from beside the database."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", host, "--port", str(port)]
    db = sqlite_path(uri)
    if db is not None:
        cmd += ["--default-artifact-root", str(db.parent / ARTIFACTS_DIR)]
    return cmd


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    uri = resolve_uri(args.uri, project_root())
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host} exposes the UI beyond this machine", file=sys.stderr)
    print(f"MLflow UI over {uri}")
    print(f"open http://{args.host}:{args.port}/  (Ctrl-C stops it)", flush=True)
    cmd = command(uri, args.host, args.port)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
