"""The kernel remembers which job each notebook cell showed last (batchnb.widgets.cells), for a page
that reconnects to it after a reload: a real ipykernel, executions carrying JupyterLab's ``cellId``,
and the ``batchnb.cells`` comm the JupyterLab extension opens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from engine_helpers import reaping
from jupyter_client.manager import start_new_kernel


@pytest.fixture
def kernel() -> Iterator[Any]:
    with reaping():
        manager, client = start_new_kernel(kernel_name="python3")
        try:
            yield client
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)


def _run(client: Any, code: str, cell: str) -> None:
    """Execute ``code`` as JupyterLab runs a cell: with the cell's id in the request's metadata."""
    msg = client.session.msg("execute_request", {"code": code, "silent": False}, metadata={"cellId": cell})
    client.shell_channel.send(msg)
    reply = client.get_shell_msg(timeout=120)
    while reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
        reply = client.get_shell_msg(timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]


def _ask(client: Any) -> dict[str, Any]:
    """Open the comm as the extension does; the kernel answers once and closes it."""
    comm_id = uuid.uuid4().hex
    client.shell_channel.send(
        client.session.msg("comm_open", {"comm_id": comm_id, "target_name": "batchnb.cells", "data": {}})
    )
    while True:
        msg = client.get_iopub_msg(timeout=60)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            return dict(msg["content"]["data"]["cells"])
        assert msg["msg_type"] != "comm_close" or msg["content"]["comm_id"] != comm_id, "closed unanswered"


def test_each_cell_s_last_job_is_remembered_and_forgotten_when_it_runs_again(kernel, client, deploy, csv_inputs):
    deploy("def init():\n    pass\ndef run(mini_batch):\n    return [str(p) for p in mini_batch]\n")
    first = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)["name"]
    second = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2, "more"))).wait(timeout=120)["name"]
    show = f"import batchnb\nbatchnb.BatchClient({str(client.workspace.root)!r}).jobs.get({{name!r}})"

    _run(kernel, show.format(name=first), cell="cell-a")
    _run(kernel, show.format(name=first), cell="cell-b")
    _run(kernel, show.format(name=second), cell="cell-b")  # the same cell, another job: the last one counts
    # An ended job is shown as its summary: no live widget to put back.
    assert _ask(kernel) == {
        "cell-a": {"name": first, "model_id": None},
        "cell-b": {"name": second, "model_id": None},
    }
    _run(kernel, "print('no job here now')", cell="cell-a")  # run again without a job: nothing to restore
    assert _ask(kernel) == {"cell-b": {"name": second, "model_id": None}}
