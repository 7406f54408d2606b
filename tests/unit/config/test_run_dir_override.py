"""The run folder a command is given, read before Hydra starts (``cli/app.py``)."""

from yolov7_lightning.cli.app import _run_dir_override


def test_plain_and_quoted_run_dirs_name_the_same_folder():
    # Lightning's DDP launcher starts the other ranks with hydra.run.dir="<folder>" (quoted)
    for arg in ("hydra.run.dir=/tmp/a b/run", 'hydra.run.dir="/tmp/a b/run"', "hydra.run.dir='/tmp/a b/run'"):
        assert _run_dir_override(["seed=1", arg]) == "/tmp/a b/run"


def test_interpolations_and_flags_are_left_to_hydra():
    assert _run_dir_override(["hydra.run.dir=runs/${now:%H}"]) is None
    assert _run_dir_override(["-m", "hydra.run.dir=/tmp/x"]) is None
    assert _run_dir_override(["seed=1"]) is None
