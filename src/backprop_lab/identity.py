"""The identity of a configuration: a short hash of every setting that decides a run's result.

Two runs with the same hash trained the same network on the same data the same way, so
their metric histories should match bit for bit; the report can group runs by it.
The hash is taken over the validated Settings rather than the raw config text, so `lr: 1`
and `lr: 1.0`, or a default written out versus left implicit, name the same configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from .config import Settings

HASH_TAG = "config.hash"  # the run tag that carries the hash

# Groups that only say where and how a run is recorded (store, experiment, run name,
# parent run, logging cadence): changing them never changes a number the run computes.
RESULT_NEUTRAL_GROUPS = ("tracking",)


def identity(settings: Settings) -> dict:
    """The settings that decide the result, as plain JSON-ready values."""
    tree = dataclasses.asdict(settings)
    return {k: v for k, v in tree.items() if k not in RESULT_NEUTRAL_GROUPS}


def config_hash(settings: Settings) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of `identity(settings)`."""
    text = json.dumps(identity(settings), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
