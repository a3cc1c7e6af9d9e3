"""`make bench`: where a run's time goes, measured side by side on this machine.

Each section compares things timed in the same process, one right after the other, and
reports medians and ratios rather than lone timings, because a shared machine's load moves
every absolute number:

    compute   one training step of the runner beside the matrix products alone and PyTorch
    memory    peak traced memory of a large float32 run beside the arrays it holds
    logging   cost per metric value of our MLflow path beside MLflow's own calls
    start-up  a whole `python -m backprop_lab` process beside importing mlflow and hydra
    sweeps    a sweep with the basic launcher beside the joblib launcher

Run it with `make bench` (or `python -m backprop_lab.bench --help`).
"""
