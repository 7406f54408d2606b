"""Integration runs share one CPU precision per test session.

``trainer=cpu`` chooses bf16 or fp32 per machine (``training/precision.py``: the CPU flags, and
where they allow bf16 a probe cached per CPU model and torch version). It is chosen once here and
every CLI run of the session inherits the choice (and its reason) through ``$YOLOV7_CPU_PRECISION``,
as the ranks of one DDP job do, so the tests that compare two runs (resume, compile) compare runs
of one precision.
"""

import os

import pytest

from yolov7_lightning.training.precision import ENV, REASON_ENV, auto_cpu_precision


@pytest.fixture(scope="session", autouse=True)
def one_cpu_precision():
    before = {name: os.environ.get(name) for name in (ENV, REASON_ENV)}
    auto_cpu_precision()
    yield os.environ[ENV]
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def walkthrough(tmp_path_factory):
    """The own-data walkthrough of ``docs/own_data.md`` run once (``tests/integration/walkthrough.py``):
    (data folder, working folder, steps). Its checkpoint, ONNX file and predictions serve the
    walkthrough test and the Python API's comparisons with ``yolov7-predict``."""
    from tests.integration import walkthrough as w

    return w.run(tmp_path_factory.mktemp("walkthrough"))
