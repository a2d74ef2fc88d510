"""Inputs that used to crash or hang the CLI: each is now one ``ERROR:`` line with a documented exit
code, and leaves the workspace as it was (the store's rows and its files compared before and after).

Real files throughout: a billion-laughs YAML, random bytes, a real FIFO (``os.mkfifo``), a bound Unix
socket, a real symbolic link loop, a folder holding a link to itself.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib
import yaml
from cli_helpers import error_line, make_project, run_cli, snapshot

from batchnb.specfile import MAX_YAML_BYTES, load_yaml

EP, DEP = "bad-ep", "bad-dep"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a model, a scoring script, three CSV inputs, and a workspace (``ws``) holding
    endpoint bad-ep with deployment bad-dep."""
    deployment = {
        "name": DEP,
        "endpoint_name": EP,
        "type": "model",
        "model": {"name": "bad-model", "path": "model"},
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
    }
    return make_project(tmp_path, EP, deployment)


@pytest.fixture
def unchanged(project: Path) -> Iterator[None]:
    """The test's commands must all be refused: the workspace ends as it began."""
    before = snapshot(project / "ws")
    yield
    assert snapshot(project / "ws") == before


def refused(project: Path, *args: str, needles: tuple[str, ...] = (), code: int = 2) -> str:
    result = run_cli(*args, ws=project / "ws")
    line = error_line(result, *needles)
    assert result[0] == code, line
    return line


# --- YAML that expands, nests or is not text ----------------------------------------------------


def _billion_laughs(path: Path) -> Path:
    """Nine levels of nine aliases each: 9**9 strings once expanded, from 1 KB of YAML."""
    lines = ["name: lol", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ("batch-deployment", "create", "-e", EP, "-f"),
        ("batch-endpoint", "create", "-f"),
        ("batch-endpoint", "update", "-n", EP, "-f"),
        ("batch-endpoint", "invoke", "-n", EP, "-f"),  # the inputs YAML
        ("component", "create", "-f"),
        ("job", "create", "-f"),  # a pipeline job
        ("model", "create", "-f"),
        ("data", "create", "-f"),
        ("environment", "create", "-n", "env", "--conda-file"),
    ],
)
def test_a_billion_laughs_is_refused_at_every_yaml_entry_point(project: Path, unchanged: None, command: tuple) -> None:
    lol = _billion_laughs(project / "lol.yml")
    line = refused(project, *command, str(lol), needles=(str(lol), "line ", "aliases expanded", "100000 values"))
    assert "invalid YAML" in line


def test_anchors_and_merge_keys_that_stay_small_still_work(project: Path) -> None:
    spec = project / "shared.yml"
    spec.write_text(
        "name: anchors-dep\nendpoint_name: bad-ep\ntype: model\nmodel: {name: bad-model, path: model}\n"
        "code_configuration: {code: code, scoring_script: score.py}\n"
        "settings: &s {mini_batch_size: 2, retry_settings: {max_retries: 2, timeout: 60}}\n"
        "tags: {<<: {team: a}, owner: b}\nproperties: {copy: *s}\n"
    )
    code, out, err = run_cli("batch-deployment", "create", "-f", str(spec), "-o", "yaml", ws=project / "ws")
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["settings"]["mini_batch_size"] == 2
    assert shown["tags"] == {"team": "a", "owner": "b"}
    assert shown["properties"]["copy"]["retry_settings"] == {"max_retries": 2, "timeout": 60}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (random.Random(7).randbytes(4096), ("not UTF-8 text", "offset")),
        (b"name: bad\x00dep\n", ("line 1, column 10", "unacceptable character #x0000")),
        ("name: caf\xe9\n".encode("latin-1"), ("not UTF-8 text (byte 0xe9 at offset 9)",)),
        ("name: bad-dep\n".encode("utf-16"), ("not UTF-8 text",)),
        (b"name: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", ("line 1", "nested deeper than 100 levels")),
        (b"a: " + b"{b: " * 10_000 + b"1" + b"}" * 10_000 + b"\n", ("nested deeper than 100 levels",)),
        (b"name: &x [*x]\n", ("line 1", "an alias refers to a node that contains it")),
        (b"name: bad-dep\nx: " + b"9" * 5000 + b"\n", ("line 2", "an integer of 5000 digits is too long")),
        (b"name: bad-dep\n" + b"# padding\n" * (MAX_YAML_BYTES // 10 + 1), ("larger than 1 MiB",)),
    ],
    ids=["random-bytes", "nul-byte", "latin-1", "utf-16", "deep-lists", "deep-maps", "self-alias", "huge-int", "2MiB"],
)
def test_yaml_that_is_not_text_or_nests_too_deep_is_one_error_line(
    project: Path, unchanged: None, content: bytes, needles: tuple[str, ...]
) -> None:
    bad = _write(project / "bad.yml", content)
    refused(project, "batch-deployment", "create", "-e", EP, "-f", str(bad), needles=(str(bad), *needles))


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_a_spec_file_that_is_not_a_regular_file_is_refused_without_reading_it(
    project: Path, unchanged: None, kind: str
) -> None:
    if kind == "fifo":
        path = project / "deployment.fifo"
        os.mkfifo(path)  # no writer: reading it would block for ever
        words = "is a named pipe (FIFO), not a regular file"
    elif kind == "folder":
        path, words = project / "data", "is a folder, not a regular file"
    else:
        path, words = Path("/dev/zero"), "is a character device, not a regular file"
    refused(project, "batch-deployment", "create", "-e", EP, "-f", str(path), needles=(str(path), words))


def test_the_mlflow_and_conda_readers_share_the_bounds(tmp_path: Path) -> None:
    lol = _billion_laughs(tmp_path / "MLmodel")
    from batchnb.engine.drivers import read_mlmodel
    from batchnb.errors import ValidationError

    assert read_mlmodel(tmp_path) == {}  # the driver's reader gives up quietly; MLflow's own load says why
    with pytest.raises(ValidationError, match="aliases expanded"):
        load_yaml(lol)


# --- inputs that are not files or folders -------------------------------------------------------


def test_a_fifo_given_as_a_file_input_is_named_as_one(project: Path, unchanged: None) -> None:
    os.mkfifo(project / "pipe")
    invoke = ("batch-endpoint", "invoke", "-n", EP, "--input", str(project / "pipe"))
    refused(project, *invoke, "--input-type", "uri_file", needles=("is a named pipe (FIFO), not a regular file",))
    refused(project, *invoke, needles=("is a named pipe (FIFO)",))


def test_a_socket_and_a_device_are_refused_as_inputs(project: Path, unchanged: None) -> None:
    path = project / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        refused(project, "batch-endpoint", "invoke", "-n", EP, "--input", str(path), needles=("is a socket",))
    finally:
        server.close()
    refused(project, "batch-endpoint", "invoke", "-n", EP, "--input", "/dev/null", needles=("is a character device",))


@pytest.mark.parametrize("links", [1, 2])
def test_a_symbolic_link_loop_is_refused_as_input_and_output(project: Path, unchanged: None, links: int) -> None:
    names = [project / f"loop{i}" for i in range(links)]
    for i, name in enumerate(names):
        name.symlink_to(names[(i + 1) % links].name)  # loop0 -> loop1 -> ... -> loop0
    loop = str(names[0])
    words = "is a symbolic link loop, which leads to no file or folder"
    refused(project, "batch-endpoint", "invoke", "-n", EP, "--input", loop, needles=(f"input {loop!r}", words))
    data = str(project / "data")
    output = ("--input", data, "--output-path", loop)
    refused(project, "batch-endpoint", "invoke", "-n", EP, *output, needles=(f"output_path {loop!r}", words))
    refused(project, "data", "create", "-n", "loopy", "--path", loop, needles=(words,))


def test_a_model_folder_holding_a_link_to_itself_is_refused_before_copying(project: Path, unchanged: None) -> None:
    folder = project / "cyclic-model"
    folder.mkdir()
    (folder / "weights.json").write_text("{}")
    (folder / "self").symlink_to("../cyclic-model")
    refused(
        project,
        "model",
        "create",
        "-n",
        "cyclic",
        "--path",
        str(folder),
        needles=("self is a symbolic link to a folder that contains it (a loop)",),
    )
    (folder / "self").unlink()
    (folder / "zero").symlink_to("/dev/zero")  # copying it would never end
    refused(project, "model", "create", "-n", "cyclic", "--path", str(folder), needles=("zero is a character device",))


def test_an_input_folder_with_a_link_loop_inside_is_read_without_following_it(project: Path) -> None:
    data = project / "data"
    (data / "self").symlink_to("../data")
    (data / "dangling").symlink_to("dangling")
    code, out, err = run_cli(
        "batch-endpoint", "invoke", "-n", EP, "--input", str(data), "--set", "recursive=true", "--dry-run",
        "--query", "files_in_input", "-o", "tsv", ws=project / "ws",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "3"), err


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "package", "extra"),
    [
        ("s3://bucket/in", "s3fs", "s3"),
        ("gs://bucket/in", "gcsfs", "gcs"),
        ("gcs://bucket/in", "gcsfs", "gcs"),
        ("az://container/in", "adlfs", "azure-storage"),
        ("abfs://container/in", "adlfs", "azure-storage"),
        ("https://acct1.blob.core.windows.net/container/in", "adlfs", "azure-storage"),
        ("wasbs://container@acct1.blob.core.windows.net/in", "adlfs", "azure-storage"),
        ("abfss://fs@acct1.dfs.core.windows.net/in", "adlfs", "azure-storage"),
    ],
)
def test_a_url_whose_package_is_missing_is_refused_naming_it(
    project: Path, unchanged: None, url: str, package: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fsspec.registry import _registry, known_implementations

    # As if the package were not installed (CI installs every storage extra): its import fails,
    # and fsspec forgets any class it imported from it earlier in this process.
    monkeypatch.setitem(sys.modules, package, None)
    for protocol, known in known_implementations.items():
        if str(known.get("class", "")).startswith(package + "."):
            monkeypatch.delitem(_registry, protocol, raising=False)
    hint = f"pip install 'batchnb[{extra}]' (or pip install {package})"
    refused(project, "batch-endpoint", "invoke", "-n", EP, "--input", url, needles=(f"input {url!r}", hint), code=5)
    output = ("--input", str(project / "data"), "--output-path", url)
    refused(project, "batch-endpoint", "invoke", "-n", EP, *output, needles=(f"output_path {url!r}", hint), code=5)


def test_a_url_scheme_fsspec_does_not_know_is_refused(project: Path, unchanged: None) -> None:
    words = "nope:// is not a storage scheme batchnb can use"
    refused(project, "batch-endpoint", "invoke", "-n", EP, "--input", "nope://x/y", needles=(words,))
    output = ("--input", str(project / "data"), "--output-path", "nope://x")
    refused(project, "batch-endpoint", "invoke", "-n", EP, *output, needles=(words,))


def test_the_storage_extras_install_the_packages_fsspec_names() -> None:
    from fsspec.registry import known_implementations

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for protocol, extra in (("s3", "s3"), ("gs", "gcs"), ("az", "azure-storage"), ("abfs", "azure-storage")):
        package = known_implementations[protocol]["class"].split(".")[0]
        assert any(req.startswith(package) for req in extras[extra]), (protocol, extras[extra])


# --- numbers out of range -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--instance-count", "0"), "instance_count: must be between 1 and 1024 (got 0)"),
        (("--instance-count", "5000"), "instance_count: must be between 1 and 1024 (got 5000)"),
        (("--mini-batch-size", "0"), "mini_batch_size: must be between 1 and 2147483647 (got 0)"),
        (("--set", "retry_settings.timeout=10000000000"), "timeout: must be between 1 and 259200"),
        (("--set", "instance_count=abc"), "instance_count: Input should be a valid integer"),
        (("--set", "error_threshold=-5"), "error_threshold: must be between -1 and 2147483647 (got -5)"),
    ],
)
def test_out_of_range_job_settings_are_refused_with_the_range(
    project: Path, unchanged: None, flags: tuple[str, ...], words: str
) -> None:
    invoke = ("batch-endpoint", "invoke", "-n", EP, "--input", str(project / "data"))
    refused(project, *invoke, *flags, needles=("job settings: ", words))


def test_a_deployment_that_would_fork_without_end_is_refused(project: Path, unchanged: None) -> None:
    spec = yaml.safe_load((project / "deployment.yml").read_text())
    spec["settings"] = {"max_concurrency_per_instance": 1_000_000_000}
    (project / "big.yml").write_text(yaml.safe_dump(spec))
    words = "settings.max_concurrency_per_instance: must be between 1 and 1024 (got 1000000000)"
    refused(project, "batch-deployment", "create", "-f", str(project / "big.yml"), needles=(words,))
    spec["settings"] = {"max_concurrency_per_instance": 8}
    spec["resources"] = {"instance_count": 200}
    (project / "big.yml").write_text(yaml.safe_dump(spec))
    words = "instance_count (200) x max_concurrency_per_instance (8) is 1600 worker processes; at most 1024"
    refused(project, "batch-deployment", "create", "-f", str(project / "big.yml"), needles=(words,))


def test_the_worker_bound_counts_a_jobs_own_instance_count(project: Path) -> None:
    spec = yaml.safe_load((project / "deployment.yml").read_text())
    spec.update(name="wide-dep", settings={"max_concurrency_per_instance": 4})
    (project / "wide.yml").write_text(yaml.safe_dump(spec))
    created = run_cli("batch-deployment", "create", "-f", str(project / "wide.yml"), "-o", "none", ws=project / "ws")
    assert created[0] == 0, created
    before = snapshot(project / "ws")
    refused(
        project, "batch-endpoint", "invoke", "-n", EP, "-d", "wide-dep", "--input", str(project / "data"),
        "--instance-count", "300", needles=("instance_count (300) x max_concurrency_per_instance (4) is 1200",),
    )  # fmt: skip
    assert snapshot(project / "ws") == before


# --- found by tests/test_cli_properties.py --------------------------------------------------------


def test_an_error_naming_a_key_with_a_line_break_stays_one_line(project: Path, unchanged: None) -> None:
    spec = yaml.safe_load((project / "deployment.yml").read_text())
    spec["code_configuration"] = {"\r\nscript": None}
    (project / "odd.yml").write_text(yaml.safe_dump(spec))
    refused(project, "batch-deployment", "create", "-f", str(project / "odd.yml"), needles=("code_configuration.",))


def test_a_malformed_query_is_refused_before_the_command_runs(project: Path, unchanged: None) -> None:
    create = ("model", "create", "-n", "never", "--path", str(project / "model"))
    refused(project, *create, "--query", "bad-ep", needles=("--query 'bad-ep'",))


def test_a_dry_run_with_stream_or_wait_succeeds(project: Path) -> None:
    invoke = ("batch-endpoint", "invoke", "-n", EP, "--input", str(project / "data"), "--dry-run")
    for follow in ("--stream", "--wait"):
        code, out, err = run_cli(*invoke, follow, "--query", "n_items", "-o", "tsv", ws=project / "ws")
        assert (code, out.strip()) == (0, "3"), err
