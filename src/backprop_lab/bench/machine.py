"""The facts a reader needs to judge the numbers: libraries, BLAS and its threads, CPUs, load."""

from __future__ import annotations

import os
import platform

import numpy as np
from threadpoolctl import threadpool_info

from . import torchstep
from .table import Table


def blas_threads() -> int:
    """Threads of the first BLAS numpy uses (what PyTorch is matched to)."""
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return int(pools[0]["num_threads"]) if pools else 1


def facts() -> Table:
    table = Table("Machine", ["fact", "value"])
    table.add("python", platform.python_version())
    table.add("numpy", np.__version__)
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            library = f"{pool.get('internal_api')} {pool.get('version')}"
            table.add("BLAS", f"{library} ({pool.get('architecture', '?')}), "
                              f"{pool.get('num_threads')} threads")
    table.add("CPUs", f"{os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})")
    table.add("load average at start", load())
    table.add("torch", torchstep.version() or "not installed (pip install -e '.[bench]')")
    return table


def load() -> str:
    """The 1, 5 and 15 minute load averages: above the CPU count, others share the machine."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
