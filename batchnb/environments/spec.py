"""What an environment asks for, resolved into one build specification.

Three sources give the same :class:`BuildSpec`: an environment's ``conda_file`` (its ``pip:``
section, its conda packages under their names on the package index, its ``python=X.Y``), a pip
requirements file, and an MLflow model's own ``requirements.txt`` (or ``conda.yaml``), which Azure
installs for a model deployed without an environment. Paths in it are made absolute when it is
read, so a spec means the same thing later and from anywhere (:mod:`.build` names a build by it).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ValidationError

# Conda packages published on the package index under another name.
CONDA_TO_INDEX = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "py-lightgbm": "lightgbm",
    "tensorflow-cpu": "tensorflow",
    "msgpack-python": "msgpack",
    "pillow-simd": "pillow",
    "matplotlib-base": "matplotlib",
    "libopencv": "opencv-python",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "pytables": "tables",
}
# Conda packages with nothing to install from the package index: compilers, system tools, CUDA
# and math libraries (wheels carry their own).
CONDA_ONLY = re.compile(
    r"^(cudatoolkit|cudnn|cuda(-.*)?|nccl|mkl|mkl-include|intel-openmp|blas|"
    r"openblas|libblas|liblapack|libgcc(-ng)?|libstdcxx(-ng)?|_libgcc_mutex|_openmp_mutex|ca-certificates|"
    r"openssl|nodejs|gcc|gxx|compilers|cxx-compiler|c-compiler|git|ffmpeg|cpuonly)$"
)
# What batchnb itself provides, so a pin of it is not installed again: MLflow (batchnb's copy, which
# its MLflow driver is written against, stays visible through the layer) and Azure's runtime
# packages (azureml-core, azureml-mlflow, ...), whose part batchnb plays locally.
BATCHNB_PROVIDES = re.compile(r"^(mlflow|mlflow-skinny|azureml-.*)$")
# Options whose value is a path, resolved against the file that names it.
PATH_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-f", "--find-links", "-e", "--editable")


@dataclass(frozen=True)
class BuildSpec:
    """What an environment asks for, with paths made absolute and conda names mapped.

    Attributes:
        requirements: Lines of a pip requirements file (options such as ``--find-links`` too).
        python: The ``X.Y`` version asked for, or None for batchnb's own.
        notes: What was left out and why (a conda-only package, batchnb's own MLflow).
        source: Where the spec came from, for messages.
    """

    requirements: tuple[str, ...]
    python: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False)


def from_conda(conda: dict[str, Any], base_dir: Path | None, source: str = "conda_file") -> BuildSpec:
    """Resolve a conda environment file: its ``pip:`` lines as given, its conda packages under
    their index names, its ``python=X.Y``.

    Raises:
        ValidationError: ``dependencies`` is not a list, or an entry is neither text nor ``{pip: [...]}``.
    """
    deps = conda.get("dependencies") or []
    if not isinstance(deps, list):
        raise ValidationError(f"{source}: 'dependencies' must be a list", field="conda_file")
    requirements: list[str] = []
    notes: list[str] = []
    python: str | None = None
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            requirements += pip_lines([str(x) for x in dep["pip"] or []], base_dir)
            continue
        if not isinstance(dep, str):
            raise ValidationError(
                f"{source}: dependency {dep!r} is neither a conda package nor a 'pip:' list", field="conda_file"
            )
        name, constraint = _conda_match_spec(dep)
        if name == "python":
            # Only a pin is honoured; a range (python>=3.8) is met by batchnb's own interpreter.
            match = re.match(r"^==(\d+\.\d+)", constraint)
            python = match.group(1) if match else None
        elif name in ("pip", "setuptools", "wheel"):
            continue  # uv installs without them
        elif CONDA_ONLY.match(name):
            notes.append(f"conda package {name} has no package-index equivalent: not installed")
        else:
            requirements.append(CONDA_TO_INDEX.get(name, name) + constraint)
    return _without_batchnb_own(requirements, python, notes, source)


def from_requirements(text: str, base_dir: Path | None, source: str = "requirements") -> BuildSpec:
    """Resolve a pip requirements file's text; paths in it resolve against ``base_dir``."""
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith("#")]
    return _without_batchnb_own(pip_lines(kept, base_dir), None, [], source)


def from_mlflow_model(model_dir: Path) -> BuildSpec | None:
    """The requirements of an MLflow model folder (``requirements.txt``, else ``conda.yaml``), or
    None when it declares none. Its ``python_env.yaml`` gives the Python version, as on Azure."""
    import yaml

    folder = next((p.parent for p in sorted(model_dir.rglob("MLmodel"))), None)
    if folder is None:
        return None
    python = None
    python_env = folder / "python_env.yaml"
    if python_env.is_file():
        saved = str((yaml.safe_load(python_env.read_text()) or {}).get("python") or "")
        python = ".".join(saved.split(".")[:2]) or None
    source = f"MLflow model {folder.name}"
    if (folder / "requirements.txt").is_file():
        spec = from_requirements((folder / "requirements.txt").read_text(), folder, source)
        return BuildSpec(spec.requirements, python, spec.notes, source)
    if (folder / "conda.yaml").is_file():
        return from_conda(yaml.safe_load((folder / "conda.yaml").read_text()) or {}, folder, source)
    return None


def pip_lines(lines: list[str], base_dir: Path | None) -> list[str]:
    """Requirement lines with the paths they name (a wheel, a folder, ``-r``/``--find-links``
    targets) made absolute against ``base_dir``, so the spec means the same from anywhere."""
    out = []
    for line in lines:
        option = re.match(r"^(-[-\w]+)[ =]\s*(\S.*)$", line)  # "-f wheels" and "--find-links=wheels"
        if option is not None and option.group(1) in PATH_OPTIONS:
            out.append(f"{option.group(1)} {_absolute(option.group(2).strip(), base_dir)}")
        elif line.startswith(("./", "../")) or line.endswith((".whl", ".tar.gz")):
            out.append(_absolute(line, base_dir))
        else:
            out.append(line)
    return out


def unmet_requirements(lines: list[str]) -> list[str]:
    """The requirement lines this interpreter's installed distributions do not satisfy, each as
    ``name (current: X, required: LINE)``. Paths, URLs and options are not checked; a package
    missing as a distribution but importable as a module (mlflow from mlflow-skinny) counts as met."""
    found = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        verdict = _check(text) if text and not text.startswith("-") else None
        if verdict:
            found.append(verdict)
    return found


def is_met(line: str) -> bool:
    """Whether this interpreter already satisfies one requirement line (never a path, URL or option)."""
    return not line.startswith("-") and _check(line) == ""


def _check(text: str) -> str | None:
    """``""`` if ``text`` is met here, what differs if not, None if it is no plain requirement."""
    import importlib.metadata
    import importlib.util

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    if req.url:
        return None
    if req.marker is not None and not req.marker.evaluate():
        return ""
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        if importlib.util.find_spec(req.name.replace("-", "_")) is None:
            return f"{req.name} (current: uninstalled, required: {text})"
        return ""
    if req.specifier and not req.specifier.contains(installed, prereleases=True):
        return f"{req.name} (current: {installed}, required: {text})"
    return ""


def this_python() -> str:
    """batchnb's own interpreter version, ``X.Y``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _conda_match_spec(dep: str) -> tuple[str, str]:
    """``channel::name=1.2=build`` to ``(name, "==1.2.*")``: conda's single ``=`` is a prefix match."""
    text = dep.split("::", 1)[-1].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", text)
    if match is None:
        raise ValidationError(f"conda dependency {dep!r} is not a package name", field="conda_file")
    name, rest = match.group(1).lower(), match.group(2).strip()
    if not rest:
        return name, ""
    if rest[0].isdigit():  # "numpy 1.21" (space-separated)
        rest = "=" + rest
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=", 1)[0].strip()  # a build string after a second "=" is dropped
        return name, f"=={version.rstrip('.*')}.*" if version else ""
    return name, rest.replace(" ", "")


def _without_batchnb_own(requirements: list[str], python: str | None, notes: list[str], source: str) -> BuildSpec:
    from packaging.requirements import InvalidRequirement, Requirement

    kept = []
    for line in requirements:
        try:
            name = Requirement(line).name.lower()
        except InvalidRequirement:
            name = ""
        if BATCHNB_PROVIDES.match(name):
            notes.append(f"{line}: not installed; batchnb provides {name} locally")
        else:
            kept.append(line)
    return BuildSpec(tuple(kept), python, tuple(notes), source)


def _absolute(value: str, base_dir: Path | None) -> str:
    if "://" in value or base_dir is None or Path(value).is_absolute():
        return value
    return str((base_dir / value).resolve())
