"""Command-line overrides checked against the schema before Hydra composes anything.

Hydra refuses a misspelt key on its own, but its message suggests appending the key with
`+` and never says which keys exist. This check names the key and its value, offers the
nearest real key, and lists what the group takes; for a config group it lists the options.
Anything it does not recognise (hydra/..., `+`, `~`, syntax errors) is left to Hydra.
"""

from __future__ import annotations

import difflib
from dataclasses import fields, is_dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from .config import TOP_LEVEL, ConfigError, Settings


def candidates(argv: list[str]) -> list[str]:
    """The command-line words that are overrides (key=value, +key=value, ~key)."""
    return [w for w in argv if not w.startswith("-") and ("=" in w or w.startswith("~"))]


def section_keys() -> dict[str, list[str]]:
    """{section: its keys} for every group of the schema, e.g. {'optimizer': ['lr', ...]}."""
    defaults = Settings()
    return {f.name: sorted(g.name for g in fields(getattr(defaults, f.name)))
            for f in fields(Settings) if is_dataclass(getattr(defaults, f.name))}


def group_options(conf_dir: Path) -> dict[str, list[str]]:
    """{group: option names} for each config group folder under conf/ (hydra's own excluded)."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml"))
            for d in sorted(conf_dir.iterdir()) if d.is_dir() and d.name != "hydra"}


def check(argv: list[str], conf_dir: Path) -> None:
    """Raise ConfigError for the first override naming an unknown key or group option."""
    sections, groups = section_keys(), group_options(conf_dir)
    parser = OverridesParser.create()
    for word in candidates(argv):
        try:
            (override,) = parser.parse_overrides([word])
        except HydraException:
            continue  # Hydra reports its own syntax errors
        if override.type.name != "CHANGE" or override.package is not None:
            continue
        key = override.key_or_group
        if key in groups:
            _check_option(key, override, groups[key])
        else:
            _check_key(key, word, sections)


def _check_option(group: str, override, options: list[str]) -> None:
    try:
        chosen = list(override.sweep_string_iterator()) if override.is_sweep_override() \
            else [override.value()]
    except (HydraException, TypeError, ValueError):
        return  # a range or glob sweep: Hydra expands and checks it
    for option in chosen:
        if option is not None and str(option) not in options:
            raise ConfigError(f"{group}={option} is unknown; choose one of: {', '.join(options)}")


def _check_key(key: str, word: str, sections: dict[str, list[str]]) -> None:
    head, _, rest = key.partition(".")
    if key.startswith("hydra") or "/" in key or "[" in key:
        return  # Hydra's own settings, nested groups and list items: Hydra checks those
    if head not in TOP_LEVEL:
        raise ConfigError(f"unknown key {word}{_nearest(head, sorted(TOP_LEVEL))}; "
                          f"top-level keys are: {', '.join(sorted(TOP_LEVEL - {'hydra'}))}")
    if rest and head in sections and rest not in sections[head]:
        keys = sections[head]
        raise ConfigError(f"unknown key {word}{_nearest(rest, keys, head + '.')}; "
                          f"{head} takes: {', '.join(keys)}")


def _nearest(name: str, known: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""
