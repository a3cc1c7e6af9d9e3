"""The comparison table of a sweep (or of any set of runs), built with pandas from MLflow.

One row per run: the swept parameters, then what the run's own records say:

    final_loss      train/loss at the last recorded step
    best_loss       the lowest train/loss recorded
    steps_to_<P>pct the first recorded step whose loss is at most P% of the step-0 loss
    dead_relu       the share of all ReLU outputs that were zero at the last recorded step
    grad_norm       the global gradient norm at the last recorded step (all arrays together)
    status          FINISHED, FAILED, KILLED or RUNNING

`make report` prints the latest sweep's table; `make report SWEEP=<parent run id>` a given
one; `python -m backprop_lab.report --runs ID ID ...` any saved runs side by side.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run

from .sweeps import KEYS_TAG, ROLE_TAG

LOSS = "train/loss"
PAGE = 1000  # runs fetched per search request


# ---- fetching runs -------------------------------------------------------------------------

def _search(client: MlflowClient, experiment_ids: list[str], filter_string: str,
            order_by: list[str] | None = None, limit: int | None = None) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=PAGE,
                                  order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token or (limit is not None and len(runs) >= limit):
            return runs[:limit] if limit is not None else runs


def _all_experiments(client: MlflowClient) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def sweep_children(client: MlflowClient, parent_run_id: str) -> list[Run]:
    """Every job of a sweep, oldest first."""
    parent = client.get_run(parent_run_id)
    return _search(client, [parent.info.experiment_id],
                   f"tags.mlflow.parentRunId = '{parent_run_id}'",
                   order_by=["attributes.start_time ASC"])


def latest_sweep(client: MlflowClient) -> str | None:
    """The run id of the most recently started sweep parent in any experiment, or None."""
    found = _search(client, _all_experiments(client), f"tags.`{ROLE_TAG}` = 'parent'",
                    order_by=["attributes.start_time DESC"], limit=1)
    return found[0].info.run_id if found else None


def _stored(value: float) -> float:
    """MLflow stores an infinite metric as the largest float; read it back as infinity."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def loss_histories(client: MlflowClient, runs: Iterable[Run]) -> dict[str, list[tuple]]:
    """run id -> [(step, train/loss), ...] in step order, read from each run's history."""
    histories = {}
    for run in runs:
        metrics = client.get_metric_history(run.info.run_id, LOSS)
        ordered = sorted(metrics, key=lambda m: (m.step, m.timestamp))
        histories[run.info.run_id] = [(m.step, _stored(m.value)) for m in ordered]
    return histories


def swept_keys(parent: Run, runs: Sequence[Run]) -> list[str]:
    """The parent's record of the swept keys, else the params that differ between runs."""
    recorded = parent.data.tags.get(KEYS_TAG) if parent is not None else None
    if recorded:
        return recorded.split(",")
    return varying_params(runs)


def varying_params(runs: Sequence[Run]) -> list[str]:
    """Params whose values are not the same in every run (the parent id excluded)."""
    keys = sorted({k for run in runs for k in run.data.params})
    values = {k: {run.data.params.get(k) for run in runs} for k in keys}
    return [k for k in keys if len(values[k]) > 1 and k != "tracking.parent_run_id"]


# ---- numbers from the records --------------------------------------------------------------

def steps_to_fraction(points: Sequence[tuple], fraction: float) -> float:
    """First recorded step whose loss <= fraction x the first loss; NaN if none or if the
    first loss is not positive (a fraction of it would mean nothing)."""
    if not points or not points[0][1] > 0:
        return math.nan
    target = fraction * points[0][1]
    return next((float(step) for step, loss in points if loss <= target), math.nan)


def dead_relu(metrics: Mapping[str, float], widths: str | None) -> float:
    """Share of all ReLU outputs that were zero: per-layer fractions weighted by width."""
    fractions = []
    layer = 1
    while f"relu/layer{layer}/dead_fraction" in metrics:
        fractions.append(metrics[f"relu/layer{layer}/dead_fraction"])
        layer += 1
    if not fractions:
        return math.nan
    try:
        weights = [float(w) for w in ast.literal_eval(widths or "")]
    except (ValueError, SyntaxError, TypeError):
        weights = []
    if len(weights) != len(fractions):
        weights = [1.0] * len(fractions)  # widths unknown: every layer counts the same
    return sum(f * w for f, w in zip(fractions, weights, strict=True)) / sum(weights)


def grad_norm(metrics: Mapping[str, float]) -> float:
    """The norm of all gradients as one vector: sqrt of the sum of each array's norm^2."""
    norms = [v for k, v in metrics.items() if k.startswith("grad/") and k.endswith("/norm")]
    return math.sqrt(sum(n * n for n in norms)) if norms else math.nan


def _param(text: str | None):
    """An MLflow param (always text) as a number where it is one, so columns sort and plot."""
    if text is None:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def _column(fraction: float) -> str:
    return f"steps_to_{fraction * 100:g}pct"


def _row(run: Run, points: Sequence[tuple], keys: Sequence[str], fraction: float) -> dict:
    params = run.data.params
    metrics = {key: _stored(value) for key, value in run.data.metrics.items()}
    losses = [loss for _, loss in points]
    row = {"run_name": run.info.run_name}
    row.update({key: _param(params.get(key, params.get(f"{key}.name"))) for key in keys})
    row["final_loss"] = losses[-1] if losses else math.nan
    row["best_loss"] = min(losses) if losses else math.nan
    row[_column(fraction)] = steps_to_fraction(points, fraction)
    row["dead_relu"] = dead_relu(metrics, params.get("model.widths"))
    row["grad_norm"] = grad_norm(metrics)
    row["status"] = run.info.status
    row["run_id"] = run.info.run_id
    return row


def runs_table(runs: Sequence[Run], histories: Mapping[str, list], keys: Sequence[str],
               fraction: float = 0.1) -> pd.DataFrame:
    """One row per run, columns as in this module's docstring, in the order of `runs`."""
    rows = [_row(run, histories.get(run.info.run_id, []), keys, fraction) for run in runs]
    columns = ["run_name", *keys, "final_loss", "best_loss", _column(fraction), "dead_relu",
               "grad_norm", "status", "run_id"]
    table = pd.DataFrame(rows, columns=columns)
    table[_column(fraction)] = table[_column(fraction)].astype("Int64")  # NaN -> <NA>
    return table


def best_row(table: pd.DataFrame) -> pd.Series | None:
    """The FINISHED run with the lowest final loss, or None when none finished."""
    finished = table[(table["status"] == "FINISHED") & table["final_loss"].notna()]
    if finished.empty:
        return None
    return finished.loc[finished["final_loss"].idxmin()]


def sweep_table(client: MlflowClient, parent_run_id: str, fraction: float = 0.1) -> pd.DataFrame:
    """The comparison table of one sweep's jobs."""
    runs = sweep_children(client, parent_run_id)
    keys = swept_keys(client.get_run(parent_run_id), runs)
    return runs_table(runs, loss_histories(client, runs), keys, fraction)


def runs_by_id(client: MlflowClient, run_ids: Sequence[str], fraction: float = 0.1):
    """The comparison table of any saved runs, keyed on the params that differ."""
    runs = [client.get_run(run_id) for run_id in run_ids]
    return runs_table(runs, loss_histories(client, runs), varying_params(runs), fraction)


# ---- rendering -----------------------------------------------------------------------------

def as_text(table: pd.DataFrame) -> str:
    """The table for a terminal."""
    with pd.option_context("display.max_columns", None, "display.width", 200,
                           "display.float_format", "{:.6g}".format):
        return table.to_string(index=False)


def as_markdown(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (pandas' own needs the optional tabulate package)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        return "" if value is pd.NA else str(value).replace("|", "\\|")

    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def renderings(table: pd.DataFrame) -> dict[str, str]:
    """File name -> content for the parent's artifacts: CSV, Markdown and HTML."""
    return {"sweep_table.csv": table.to_csv(index=False),
            "sweep_table.md": as_markdown(table),
            "sweep_table.html": table.to_html(index=False, float_format="{:.6g}".format,
                                              na_rep="", border=0)}


# ---- the command ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m backprop_lab.report",
                                     description="Compare a sweep's runs, or any saved runs.")
    parser.add_argument("--sweep", default=None,
                        help="parent run id of the sweep; default the latest sweep")
    parser.add_argument("--runs", nargs="+", default=None, help="compare these run ids instead")
    parser.add_argument("--fraction", type=float, default=0.1,
                        help="steps_to_<P>pct counts steps to this fraction of the first loss")
    parser.add_argument("--uri", default=None,
                        help="tracking store; default $MLFLOW_TRACKING_URI, else the project's "
                             "mlflow.db")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit code 2 with one line of advice when there is nothing to show."""
    from mlflow.exceptions import MlflowException

    from .paths import project_root
    from .records import RecordError, open_store
    from .tracking import resolve_uri

    args = parse_args(argv)
    if not 0 < args.fraction < 1:
        print(f"--fraction={args.fraction} must lie between 0 and 1, e.g. 0.1", file=sys.stderr)
        return 2
    uri = resolve_uri(args.uri, project_root())
    try:
        client = open_store(uri)  # never creates an empty store just to report on it
    except RecordError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        table = _table_for(client, args)
    except MlflowException as error:
        print(f"cannot read the runs asked for from {uri}: {error.message}; check the run id "
              "(make ui lists them)", file=sys.stderr)
        return 2
    if table is None:
        print(f"no sweep recorded in {uri} yet; start one with: make sweep EXP=lr_sweep",
              file=sys.stderr)
        return 2
    if table.empty:
        asked = f"run {args.sweep} has" if args.sweep else "the runs asked for have"
        print(f"{asked} no jobs to compare: is it a sweep's parent run? `make report` with no "
              "SWEEP takes the latest sweep", file=sys.stderr)
        return 2
    print(as_text(table.drop(columns="run_name")))  # the swept columns already name each run
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _table_for(client: MlflowClient, args: argparse.Namespace) -> pd.DataFrame | None:
    if args.runs:
        return runs_by_id(client, args.runs, args.fraction)
    sweep = args.sweep or latest_sweep(client)
    if sweep is None:
        return None
    print(f"sweep {sweep} ({client.get_run(sweep).info.run_name})")
    return sweep_table(client, sweep, args.fraction)


if __name__ == "__main__":
    raise SystemExit(main())
