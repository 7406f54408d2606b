"""Integration runs share one CPU precision per test session.

``trainer=cpu`` chooses bf16 or fp32 with a ~1 s probe (``training/precision.py``); on a loaded
machine two runs could choose apart, and the tests that compare two runs (resume, compile) would
compare two precisions. The probe runs once here and every CLI run of the session inherits the
choice through ``$YOLOV7_CPU_PRECISION``, as the ranks of one DDP job do.
"""

import os

import pytest

from yolov7_lightning.training.precision import ENV, auto_cpu_precision


@pytest.fixture(scope="session", autouse=True)
def one_cpu_precision():
    before = os.environ.get(ENV)
    auto_cpu_precision()
    yield os.environ[ENV]
    if before is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = before


@pytest.fixture(scope="session")
def walkthrough(tmp_path_factory):
    """The own-data walkthrough of ``docs/own_data.md`` run once (``tests/integration/walkthrough.py``):
    (data folder, working folder, steps). Its checkpoint, ONNX file and predictions serve the
    walkthrough test and the Python API's comparisons with ``yolov7-predict``."""
    from tests.integration import walkthrough as w

    return w.run(tmp_path_factory.mktemp("walkthrough"))
