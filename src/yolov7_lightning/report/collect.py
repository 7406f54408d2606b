"""Read the jobs of a Hydra multirun folder: ``metrics.json`` and ``.hydra/{overrides,config}.yaml``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..errors import MissingInputError

log = logging.getLogger(__name__)

METRICS = "metrics.json"


@dataclass
class Job:
    """One job of a multirun: its folder, command-line overrides, ``metrics.json`` and raw config."""

    path: Path
    overrides: list[str]
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seed(self) -> Any:
        if self.metrics.get("seed") is not None:
            return self.metrics["seed"]
        return next((o.split("=", 1)[1] for o in self.overrides if o.split("=", 1)[0].lstrip("+~") == "seed"),
                    self.config.get("seed"))


@dataclass
class Collection:
    """The jobs with a ``metrics.json`` (in job order) and the job folders without one (skipped)."""

    root: Path
    jobs: list[Job]
    skipped: list[Path]


def _order(path: Path) -> tuple:
    parts = path.parts
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _job_dirs(root: Path) -> list[Path]:
    """Folders holding a job: a ``.hydra`` folder or a ``metrics.json`` (W&B run folders excluded)."""
    found = {p.parent for p in root.rglob(".hydra") if p.is_dir()} | {p.parent for p in root.rglob(METRICS)}
    found = {d for d in found if "wandb" not in d.relative_to(root).parts}
    return sorted(found, key=lambda d: _order(d.relative_to(root)))


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # interpolations need Hydra: keep raw


def read_job(path: Path) -> Job | None:
    """The job in ``path``, or None when it has no readable ``metrics.json`` (failed or running)."""
    try:
        metrics = json.loads((path / METRICS).read_text())
    except (OSError, ValueError):
        return None
    overrides = _load_yaml(path / ".hydra" / "overrides.yaml")
    if overrides is None:
        overrides = metrics.get("overrides") or []
    config = _load_yaml(path / ".hydra" / "config.yaml") or {}
    return Job(path=path, overrides=[str(o) for o in overrides], metrics=metrics, config=config)


def collect(root: str | Path) -> Collection:
    """Every job under ``root`` (a multirun folder, or one run folder); jobs without ``metrics.json``
    are skipped, counted and named in a warning."""
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f"no such multirun folder: {root}")
    jobs, skipped = [], []
    for d in _job_dirs(root):
        job = read_job(d)
        if job is None:
            log.warning("skipping %s: no readable %s (failed or unfinished job)", d, METRICS)
            skipped.append(d)
        else:
            jobs.append(job)
    if skipped:
        log.warning("%d of %d jobs skipped (no %s)", len(skipped), len(skipped) + len(jobs), METRICS)
    return Collection(root=root, jobs=jobs, skipped=skipped)
