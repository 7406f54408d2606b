"""The ready ablations (``conf/experiment/``): the sweep each file declares, combined with extra sweep
parameters of the command line (``seed=1,2,3``) the way Hydra's basic sweeper does, and the config
every arm composes to."""

from __future__ import annotations

import pytest
from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser



def sweep_jobs(experiment: str, *cli: str) -> list[list[str]]:
    """The override list of every job of ``yolov7-train -m experiment=<experiment> <cli>``: the file's
    ``hydra.sweeper.params`` then the command line, split as the basic sweeper splits them."""
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(list(cli)) if not o.is_sweep_override()]
    cfg = compose("train", overrides=[f"experiment={experiment}", *fixed], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()]
    overrides = parser.parse_overrides(params + [f"experiment={experiment}", *cli])
    batches = BasicSweeper.split_arguments(overrides, None)
    return [list(job) for batch in batches for job in batch]


def job_cfg(overrides: list[str]):
    return compose("train", overrides=overrides)


ARMS = {
    "ablation_assigner": ("assigner", ["lead_only", "independent", "lead_guided", "coarse_to_fine"]),
    "ablation_coarse_bound": ("loss.coarse_bound", ["none", "decoder", "distance"]),
    "ablation_scaling": ("scaling", ["none", "width", "depth", "compound"]),
    "ablation_repconv": ("model.elan_repconv", ["none", "planned", "identity"]),
}


@pytest.mark.parametrize("experiment", list(ARMS))
def test_sweep_and_seeds_combine(hydra_ctx, experiment):
    key, arms = ARMS[experiment]
    jobs = sweep_jobs(experiment)
    assert [j for j in jobs if f"experiment={experiment}" in j] == jobs
    assert sorted(o.split("=", 1)[1] for j in jobs for o in j if o.startswith(f"{key}=")) == sorted(arms)
    seeded = sweep_jobs(experiment, "seed=1,2,3")
    assert len(seeded) == 3 * len(arms)  # the cartesian product: every arm with every seed
    pairs = {(next(o for o in j if o.startswith(f"{key}=")), next(o for o in j if o.startswith("seed="))) for j in seeded}
    assert len(pairs) == 3 * len(arms)
    cfg = job_cfg(jobs[0])
    assert cfg.model.variant == "yolov7-tiny" and cfg.export.enabled is False and cfg.data.source.kind == "shapes"


def test_assigner_arms(hydra_ctx):
    expected = {"lead_only": (False, "lead_only"), "independent": (True, "independent"),
                "lead_guided": (True, "lead_guided"), "coarse_to_fine": (True, "coarse_to_fine")}
    for job in sweep_jobs("ablation_assigner"):
        arm = next(o.split("=", 1)[1] for o in job if o.startswith("assigner="))
        cfg = job_cfg(job)
        assert (cfg.model.aux_head, cfg.assigner.strategy) == expected[arm], arm
    cfg = job_cfg(["experiment=ablation_coarse_bound", "loss.coarse_bound=distance"])
    assert cfg.model.aux_head is True and cfg.assigner.strategy == "coarse_to_fine"
    assert cfg.loss.coarse_bound == "distance"


def test_restricting_the_arms(hydra_ctx):
    jobs = sweep_jobs("ablation_assigner", "hydra.sweeper.params.assigner='lead_only,coarse_to_fine'", "seed=1,2")
    assert len(jobs) == 4
    jobs = sweep_jobs("ablation_repconv", "hydra.sweeper.params=null", "model.elan_repconv=none,planned")
    assert sorted(o for j in jobs for o in j if o.startswith("model.elan")) == [
        "model.elan_repconv=none", "model.elan_repconv=planned"]


def test_other_arms_compose(hydra_ctx):
    assert job_cfg(["experiment=ablation_scaling", "scaling=compound"]).scaling.mode == "compound"
    assert job_cfg(["experiment=ablation_repconv", "model.elan_repconv=identity"]).model.elan_repconv == "identity"
    assert job_cfg([]).model.elan_repconv == "none"  # the main job is unchanged
    main = job_cfg([])  # ... and records what it runs: yolov7-tiny without aux head, lead-only OTA
    assert (main.model.aux_head, main.assigner.strategy) == (False, "lead_only")
