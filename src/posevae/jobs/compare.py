"""``posevae compare``: one run per KL annealing strategy (or named configuration), same seed and budget,
then the report (:mod:`posevae.report.write`).

Layout of ``OUT``::

    runs/<name>/     one training run each (config.json, metrics.csv, checkpoints/, ...)
    runs/<name>/test/  ``posevae test`` of its best checkpoint, when the dataset has DR/test/test_gt
    figures/, media/, table.md, table.csv, index.html   the report

A configuration is a strategy name (``None``, ``Monotonic``, ``Cyclical``, ``FuCyclical``) or
``name:field=value,field=value`` with TrainConfig fields, e.g.
``Cyclical:kl_anneal_cycle=2,kl_anneal_ratio=0.25`` or ``cyc140:kl_anneal_type=Cyclical,num_epoch=140``
(tuples such as milestones as ``2/5``). A name that is a
strategy sets ``kl_anneal_type`` unless the overrides set it. Everything else (seed, data, model, budget)
is the base config's, so the runs differ only where the configurations say.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posevae.config import KL_ANNEAL_TYPES, RunConfig, TrainConfig
from posevae.errors import UserError

DEFAULT_STRATEGIES = ("None", "Monotonic", "Cyclical")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def parse_configuration(entry: str) -> tuple[str, dict[str, Any]]:
    """'name' or 'name:field=value,...' -> (name, TrainConfig overrides with typed values)."""
    name, _, rest = entry.partition(":")
    name = name.strip()
    if not name or not set(name) <= _NAME_CHARS or name.startswith("."):
        raise UserError(f"Configuration {entry!r}: its name {name!r} must be a folder name (letters, digits, "
                        "'_', '-', '.'), e.g. 'Cyclical' or "
                        "'cyc2:kl_anneal_type=Cyclical,kl_anneal_cycle=2'.")
    hints = typing.get_type_hints(TrainConfig)
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in hints:
            raise UserError(f"Configuration {entry!r}: {item!r} is not field=value with a training option "
                            f"({', '.join(sorted(hints))}).")
        if key == "save_root":
            raise UserError(f"Configuration {entry!r}: save_root is chosen by compare (OUT/runs/{name}).")
        overrides[key] = _convert(hints[key], value.strip(), f"Configuration {entry!r}: {key}")
    if name in KL_ANNEAL_TYPES:
        overrides.setdefault("kl_anneal_type", name)
    return name, overrides


def _convert(hint: Any, value: str, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if origin is tuple:
            return tuple(int(v) for v in value.split("/"))
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if origin is typing.Literal and value not in args:
            raise ValueError
        return value
    except ValueError:
        literal = origin is typing.Literal
        expected = " / ".join(map(str, args)) if literal else getattr(hint, "__name__", str(hint))
        raise UserError(f"{where}={value!r} is not a valid {expected}.") from None


def run_configs(base: RunConfig, out: Path, strategies: Sequence[str]) -> dict[str, RunConfig]:
    """{name: the config of OUT/runs/<name>}: base with the configuration's overrides and its save_root."""
    configs: dict[str, RunConfig] = {}
    for entry in strategies:
        name, overrides = parse_configuration(entry)
        if name in configs:
            raise UserError(f"Two configurations are named {name!r}: give each its own name (name:options).")
        train = dataclasses.replace(base.train, **overrides, save_root=str(out / "runs" / name))
        configs[name] = dataclasses.replace(base, train=train)
    return configs


def has_test_truth(DR: str | Path) -> bool:
    gt = Path(DR) / "test" / "test_gt"
    return gt.is_dir() and any(p.is_dir() for p in gt.iterdir())


def compare(base: RunConfig, out: Path, strategies: Sequence[str] = DEFAULT_STRATEGIES, progress: bool = True,
            *, gifs: bool = True) -> Path:
    """Train one run per configuration into OUT/runs/<name>, test each, and write the report; returns the
    path of OUT/index.html.

    Every run gets the same seed and budget (only its configuration's overrides differ). The runs go one
    after another, not in parallel: each run already uses every CPU core (or the whole GPU), so parallel
    runs would only contend for them, and the table's training times would no longer be comparable.
    Resumable: a finished run is skipped, an interrupted one resumed
    (:func:`posevae.training.reuse.train_or_reuse`), and a test output newer than its best checkpoint is
    reused, so running the same command again after an interruption continues where it stopped.
    """
    from posevae.evaluation.predict import predict_test_split
    from posevae.report.write import write_report
    from posevae.run_folder import RunFolder
    from posevae.training.reuse import train_or_reuse

    if not base.data.DR:
        raise UserError("posevae compare needs --DR DATASET_ROOT (the lab layout).")
    if not strategies:
        raise UserError("posevae compare needs at least one configuration (--strategies).")
    out = Path(out)
    configs = run_configs(base, out, strategies)
    test_truth = has_test_truth(base.data.DR)
    for i, (name, cfg) in enumerate(configs.items(), start=1):
        if progress:
            print(f"[{i}/{len(configs)}] {name}: {cfg.train.kl_anneal_type} KL annealing, "
                  f"{cfg.train.num_epoch} epochs, seed {cfg.train.seed} -> {cfg.train.save_root}",
                  file=sys.stderr)
        what = train_or_reuse(cfg, progress=progress)
        if progress and what == "done":
            print(f"[{i}/{len(configs)}] {name}: already finished, skipped", file=sys.stderr)
        run = RunFolder(cfg.train.save_root)
        test_out = run.root / "test"
        summary = test_out / "summary.json"
        if test_truth and not (summary.is_file() and summary.stat().st_mtime >= run.best.stat().st_mtime):
            predict_test_split(run.best, cfg.data.DR, test_out, seed=cfg.sample.sample_seed,
                               device=cfg.train.device,
                     progress=progress, write_frames=False, cache_dir=cfg.data.cache_dir)
    return write_report([out / "runs" / name for name in configs], out, gifs=gifs)
