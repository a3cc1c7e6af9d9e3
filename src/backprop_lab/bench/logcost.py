"""Logging: what one metric value costs on our tracking path beside MLflow's own calls.

All three write to one fresh SQLite store in a temporary folder, each into its own run,
interleaved round by round so they meet the same load.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .. import tracking
from ..config import GradcheckSettings, Settings
from ..runner import build, step_metrics
from .table import Table, median, ratio

BATCH = 1000  # values per log_batch call at most, MLflow's limit


def _metric_names() -> dict[str, float]:
    """One step's metrics of the default network: the dict our recorder receives."""
    parts = build(Settings(gradcheck=GradcheckSettings(enabled=False)))
    output = parts.network.forward(parts.train.inputs)  # (N, W_last)
    loss, dvalues = parts.objective_factory()(output, parts.train.targets)
    parts.network.backward(dvalues)
    return step_metrics(parts.network, parts.optimizer, loss, float(output.mean()))


def ours(client, experiment_id: str, values: dict[str, float], steps: int) -> tuple[float, float]:
    """(seconds per value, longest single call) through MlflowRecorder, flush included."""
    recorder = tracking.MlflowRecorder(client, client.create_run(experiment_id).info.run_id)
    longest = 0.0
    start = time.perf_counter()
    for step in range(steps):
        call = time.perf_counter()
        recorder.metrics(step, values)
        longest = max(longest, time.perf_counter() - call)
    recorder.flush()
    total = time.perf_counter() - start
    recorder.finish("FINISHED")
    return total / (steps * len(values)), longest


def per_call(client, experiment_id: str, count: int) -> float:
    """Seconds per value with one log_metric call each."""
    run_id = client.create_run(experiment_id).info.run_id
    start = time.perf_counter()
    for step in range(count):
        client.log_metric(run_id, "train/loss", 1.0 / (step + 1), step=step)
    return (time.perf_counter() - start) / count


def one_batch(client, experiment_id: str, values: dict[str, float], steps: int) -> float:
    """Seconds per value of one log_batch call carrying the values our path sends."""
    run_id = client.create_run(experiment_id).info.run_id
    stamp = int(time.time() * 1000)
    metrics = [tracking.Metric(key, value, stamp, step)
               for step in range(steps) for key, value in values.items()]
    start = time.perf_counter()
    client.log_batch(run_id, metrics=metrics)
    return (time.perf_counter() - start) / len(metrics)


def logging_table(rounds: int = 3, per_call_count: int = 50) -> Table:
    values = _metric_names()
    steps = max(1, BATCH // len(values))
    measured: dict[str, list[float]] = {"ours": [], "stall": [], "per_call": [], "batch": []}
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        client, experiment_id = tracking.open_experiment(uri, "bench-logging")
        one_batch(client, experiment_id, values, steps)  # warm-up: first inserts, caches
        for _ in range(rounds):
            value, stall = ours(client, experiment_id, values, steps)
            measured["ours"].append(value)
            measured["stall"].append(stall)
            measured["per_call"].append(per_call(client, experiment_id, per_call_count))
            measured["batch"].append(one_batch(client, experiment_id, values, steps))
    return _table(measured, steps, len(values))


def _table(measured: dict[str, list[float]], steps: int, width: int) -> Table:
    floor = median(measured["batch"])
    table = Table("Logging: cost per metric value, fresh SQLite store (medians)",
                  ["path", "us per value", "vs log_batch floor"])
    for label, key in ((f"one log_batch of the same {steps * width} values (floor)", "batch"),
                       (f"ours: MlflowRecorder, {steps} steps x {width} metrics", "ours"),
                       ("log_metric, one call per value", "per_call")):
        table.add(label, f"{median(measured[key]) * 1e6:,.1f}", ratio(median(measured[key]),
                                                                      floor))
    table.add("per-call / ours", "", ratio(median(measured["per_call"]), median(measured["ours"])))
    table.add("longest stall of the training loop in one metrics() call (ms)",
              f"{max(measured['stall']) * 1e3:.1f}", "")
    table.notes.append("our recorder buffers values and sends them in log_batch calls of at "
                       "most 1,000; the stall is the step that fills a batch and sends it")
    return table
