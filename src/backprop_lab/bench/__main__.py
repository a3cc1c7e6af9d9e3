"""`python -m backprop_lab.bench [--tiny] [--only SECTION ...]`: print the benchmark tables."""

from __future__ import annotations

import argparse
import sys
import time

from threadpoolctl import threadpool_limits

from . import compute, logcost, machine, memory, startup, sweeps

SECTIONS = ("compute", "memory", "logging", "startup", "sweeps")
# Tiny mode shrinks every measurement, keeping every row: it checks the benchmark runs.
QUICK_RUN = ["optimizer.steps=5", "gradcheck.enabled=false"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backprop_lab.bench",
        description="Time backprop-lab's training step, memory, logging, start-up and sweeps, "
                    "each beside its reference, and print markdown tables of medians.")
    parser.add_argument("--tiny", action="store_true",
                        help="every row at toy sizes in seconds: proves the benchmark runs; "
                             "its numbers mean nothing")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to run (default: all)")
    parser.add_argument("--sizes", nargs="+", choices=[s.name for s in compute.SIZES],
                        default=None, help="network sizes of the compute table (default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap BLAS threads (and PyTorch's) at this many; default: as is")
    return parser.parse_args(argv)


def tables(tiny: bool, only: list[str], names: list[str] | None = None):
    """Yield each section's table as soon as it is measured."""
    sizes = compute.TINY_SIZES if tiny else compute.SIZES
    if "compute" in only:
        chosen = [s for s in sizes if names is None or s.name in names]
        yield compute.compute_table(chosen, done=_measured)
    if "memory" in only:
        yield memory.memory_table(sizes[-1], "float32")
    if "logging" in only:
        yield logcost.logging_table(rounds=1 if tiny else 5,
                                    per_call_count=5 if tiny else 50)
    if "startup" in only:
        yield startup.startup_table(repeats=1 if tiny else 3,
                                    overrides=QUICK_RUN if tiny else [])
    if "sweeps" in only:
        yield sweeps.sweeps_table(jobs=2 if tiny else 20, overrides=QUICK_RUN if tiny else [])


def _measured(row: str) -> None:
    print(f"  measured {row}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        print(machine.facts().render(), flush=True)
        for table in tables(args.tiny, args.only, args.sizes):
            print(table.render(), flush=True)
    print(f"load average at the end: {machine.load()}; "
          f"benchmark took {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
