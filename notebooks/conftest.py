"""nbval runs each example notebook in a kernel started from this interpreter. The kernels inherit
this environment: a throwaway workspace, so the notebooks never touch a user's own. At the end of
the run its computes' agents are stopped (one with ``idle_time_before_scale_down`` would otherwise
outlive the tests by that long) and the workspace is removed."""

import os
import shutil
import tempfile

WORKSPACE = tempfile.mkdtemp(prefix="batchnb-nbval-ws-")
os.environ["BATCHNB_WORKSPACE"] = WORKSPACE


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    from batchnb import BatchClient

    if os.path.exists(os.path.join(WORKSPACE, "batchnb.db")):
        client = BatchClient(WORKSPACE)
        for compute in client.computes.list():
            client.computes.stop(compute["name"])
    shutil.rmtree(WORKSPACE, ignore_errors=True)
