"""Pydantic v2 models of Azure ML's batch YAML, shared by every front end.

The models accept Azure's files unchanged: ``batchEndpoint``, ``modelBatchDeployment`` (and the
legacy form with its settings at the root), ``pipelineComponentBatchDeployment``, and the model,
data, environment, datastore and compute assets. Defaults are Azure's (see
``shared/reference/azure-batch-contract.md`` §1.3). Keys that only matter on Azure (``$schema``,
``compute``, ``environment.image``, ``resources.instance_type``, ...) are accepted and kept in the
stored spec; unknown keys in the settings blocks are refused, since there they are nearly always
typos (``mini_batch_sise``) that Azure would also refuse.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import InvalidNameError, ValidationError

# --- names ------------------------------------------------------------------------------------

# Each pattern must match the whole name (``fullmatch``: with ``match``, ``$`` also matches before a
# trailing newline, so "name\n" would pass). ASCII classes only, so lookalike letters are refused.
_NAME_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "endpoint": (
        re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]"),
        "3 to 32 characters: letters, digits and hyphens, starting with a letter and not ending with a hyphen",
    ),
    "deployment": (
        re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]"),
        "3 to 32 characters: letters, digits and hyphens, starting with a letter and not ending with a hyphen",
    ),
    "asset": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}"),
        "1 to 255 characters: letters, digits, '-', '_' and '.', starting with a letter or digit",
    ),
    "version": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"),
        "1 to 100 characters: letters, digits, '-', '_' and '.', starting with a letter or digit",
    ),
    "compute": (
        re.compile(r"[A-Za-z][A-Za-z0-9-]{1,31}"),
        "2 to 32 characters: letters, digits and hyphens, starting with a letter",
    ),
    "datastore": (
        re.compile(r"[A-Za-z0-9_]{1,255}"),
        "1 to 255 characters: letters, digits and underscores",
    ),
    "job": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}"),
        "1 to 255 characters: letters, digits, '-' and '_', starting with a letter or digit",
    ),
}


def _name_message(kind: str, value: object) -> str:
    article = "an" if kind[0] in "aeiou" else "a"
    return f"invalid {kind} name {value!r}: {article} {kind} name must be {_NAME_RULES[kind][1]}"


class _NameRuleError(ValueError):
    """A name that breaks its rule, inside a pydantic model: :func:`validate_spec` turns it into
    :class:`InvalidNameError`."""


class _FieldRuleError(ValueError):
    """A rule across fields (a model validator's), broken by ``field``: :func:`validate_spec` names
    that field, as it names the field of a rule on one field, rather than the model as a whole."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid ``kind`` name, else raise :class:`InvalidNameError` stating the rule.

    The rules are Azure's; they also guarantee that a name can never escape a folder.
    """
    pattern, _ = _NAME_RULES[kind]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidNameError(_name_message(kind, value), field="name")
    return value


def _name_validator(kind: str) -> Any:
    def check(value: str) -> str:
        pattern, _ = _NAME_RULES[kind]
        if not pattern.fullmatch(value):
            raise _NameRuleError(_name_message(kind, value))
        return value

    return pydantic.AfterValidator(check)


EndpointName = Annotated[str, _name_validator("endpoint")]
DeploymentName = Annotated[str, _name_validator("deployment")]
AssetName = Annotated[str, _name_validator("asset")]
ComputeName = Annotated[str, _name_validator("compute")]
DatastoreName = Annotated[str, _name_validator("datastore")]


class _Spec(BaseModel):
    """Base of the Azure specs: unknown keys refused, ``$schema`` accepted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    schema_url: str | None = Field(default=None, alias="$schema")

    def to_yaml_dict(self) -> dict[str, Any]:
        """The spec as Azure writes it: aliases (``$schema``), no unset optional keys."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _OpenSpec(_Spec):
    """A spec whose extra keys are Azure-only settings: kept as given."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- endpoints ----------------------------------------------------------------------------------


class EndpointDefaults(_Spec):
    """``defaults`` of a batch endpoint."""

    deployment_name: str | None = None


class BatchEndpointSpec(_Spec):
    """``batchEndpoint.schema.json``."""

    name: EndpointName
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    auth_mode: Literal["aad_token"] = "aad_token"
    defaults: EndpointDefaults = Field(default_factory=EndpointDefaults)
    location: str | None = None


# --- model deployments --------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """Parse a size such as ``64MB`` or ``1GiB`` into bytes; raise ``ValueError`` otherwise."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size such as '64MB' or '1GiB'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


# Bounds on the numbers a deployment or a job may set, so that a typo (an extra three zeros) is
# refused up front with its range instead of forking without end or overflowing a timer later.
# Azure's own ranges where it states one: error_threshold is an int32; a parallel job's timeout is at
# most 259200 s (3 days). The worker bounds are batchnb's: every worker is a process on this machine
# (or a Dask worker process on a host), and more than 1024 of them is a mistake, not a workload.
MAX_INSTANCE_COUNT = 1024
MAX_CONCURRENCY_PER_INSTANCE = 1024
MAX_WORKERS = 1024
MAX_TIMEOUT_SECONDS = 259_200
MAX_RETRIES = 100
INT32_MAX = 2**31 - 1


def check_workers(instance_count: int, max_concurrency_per_instance: int) -> None:
    """Refuse ``instance_count x max_concurrency_per_instance`` past :data:`MAX_WORKERS` processes.

    Raises:
        ValueError: naming both settings (pydantic and :func:`validate_spec` add the source).
    """
    if instance_count * max_concurrency_per_instance > MAX_WORKERS:
        raise ValueError(
            f"instance_count ({instance_count}) x max_concurrency_per_instance ({max_concurrency_per_instance}) "
            f"is {instance_count * max_concurrency_per_instance} worker processes; at most {MAX_WORKERS} are allowed"
        )


class RetrySettings(_Spec):
    """``settings.retry_settings``. ``max_retries`` is the total number of attempts per mini-batch,
    as PRS's ``run_max_try`` (0 is accepted, as Azure accepts it, and means a single attempt);
    ``timeout`` bounds one ``run()`` call, in seconds (1 to 259200, three days)."""

    max_retries: int = Field(default=3, ge=0, le=MAX_RETRIES)
    timeout: int = Field(default=30, ge=1, le=MAX_TIMEOUT_SECONDS)

    @field_validator("timeout", mode="before")
    @classmethod
    def _iso_duration(cls, value: Any) -> Any:
        # The REST form of the timeout is an ISO-8601 duration such as PT30S or PT1M.
        if isinstance(value, str) and value.upper().startswith("PT"):
            match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", value.upper())
            if not match or not any(match.groups()):
                raise ValueError(f"{value!r} is not a duration in seconds or ISO-8601 (PT30S)")
            h, m, s = (int(g or 0) for g in match.groups())
            return h * 3600 + m * 60 + s
        return value


class ModelDeploymentSettings(_Spec):
    """``settings`` of a model batch deployment, with Azure's defaults.

    ``mini_batch_mode``, ``recursive``, ``lineage_columns`` and ``max_auto_resumes`` are batchnb's:
    ``tabular`` cuts Parquet and CSV inputs into row chunks (``mini_batch_size`` rows, or a size such
    as ``64MB`` cut along Parquet row groups) and passes ``run()`` a pandas DataFrame; ``recursive``
    lists input folders recursively; ``lineage_columns`` adds each output row's source file, row and
    mini-batch (unset: on for a Parquet output; a text output, Azure's format, cannot have them);
    ``max_auto_resumes`` is how many times the compute's agent resumes a job by itself after losing
    it (the agent or the machine died); ``isolate_failures`` splits a mini-batch whose attempts all
    failed in halves, down to single items, so that only the items that really fail are counted
    failed (see docs/scoring-loop.md).
    """

    max_concurrency_per_instance: int = Field(default=1, ge=1, le=MAX_CONCURRENCY_PER_INSTANCE)
    mini_batch_size: int | str = 10
    instance_count: int | None = Field(default=None, ge=1, le=MAX_INSTANCE_COUNT)
    output_action: Literal["append_row", "summary_only"] = "append_row"
    output_file_name: str = "predictions.csv"
    retry_settings: RetrySettings = Field(default_factory=RetrySettings)
    error_threshold: int = Field(default=-1, ge=-1, le=INT32_MAX)
    logging_level: Literal["warning", "info", "debug"] = "info"
    environment_variables: dict[str, str] = Field(default_factory=dict)
    mini_batch_mode: Literal["file", "tabular"] = "file"
    recursive: bool = False
    max_auto_resumes: int = Field(default=3, ge=0, le=100)
    lineage_columns: bool | None = None
    isolate_failures: bool = True

    @field_validator("output_action", "logging_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # Azure's SDK writes AppendRow / SummaryOnly, YAML writes append_row / summary_only.
        if isinstance(value, str):
            return {"appendrow": "append_row", "summaryonly": "summary_only"}.get(value.lower(), value.lower())
        return value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("output_file_name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"{value!r} must be a plain file name, without folders")
        return value

    @field_validator("mini_batch_size")
    @classmethod
    def _size(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            if value.strip().isdigit():
                value = int(value)
            else:
                parse_size(value)
                return value.strip()
        if not 1 <= value <= INT32_MAX:
            raise ValueError(f"must be between 1 and {INT32_MAX} (got {value})")
        return value

    @model_validator(mode="after")
    def _lineage_needs_parquet(self) -> ModelDeploymentSettings:
        parquet = self.output_file_name.lower().endswith((".parquet", ".pqt"))
        if self.lineage_columns and not (parquet and self.output_action == "append_row"):
            raise _FieldRuleError(
                "lineage_columns",
                "true needs a Parquet output (append_row with an output_file_name ending "
                f"in .parquet; got {self.output_action} {self.output_file_name!r}): a text output keeps "
                "Azure's fields",
            )
        return self

    @model_validator(mode="after")
    def _size_needs_tabular(self) -> ModelDeploymentSettings:
        if isinstance(self.mini_batch_size, str) and self.mini_batch_mode != "tabular":
            raise _FieldRuleError(
                "mini_batch_size",
                f"{self.mini_batch_size!r} is a size, which only tabular mode "
                "understands: set mini_batch_mode: tabular, or give a number of files",
            )
        return self


class CodeConfiguration(_Spec):
    """``code_configuration``: the scoring script folder and file."""

    code: str
    scoring_script: str


class Resources(_OpenSpec):
    """``resources``: only ``instance_count`` matters locally."""

    instance_count: int = Field(default=1, ge=1, le=MAX_INSTANCE_COUNT)
    instance_type: str | None = None


class InlineModel(_OpenSpec):
    """A model given inline in a deployment: ``{name, path}``, registered on create."""

    name: AssetName | None = None
    path: str
    version: str | None = None
    type: Literal["custom_model", "mlflow_model", "triton_model"] = "custom_model"
    description: str | None = None


class ModelBatchDeploymentSpec(_Spec):
    """``modelBatchDeployment.schema.json`` (``type: model``)."""

    name: DeploymentName
    endpoint_name: str | None = None
    type: Literal["model"] = "model"
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    model: str | InlineModel
    code_configuration: CodeConfiguration | None = None
    environment: str | dict[str, Any] | None = None
    compute: str | None = None
    resources: Resources = Field(default_factory=Resources)
    settings: ModelDeploymentSettings = Field(default_factory=ModelDeploymentSettings)
    job_definition: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _instance_count_alias(self) -> ModelBatchDeploymentSpec:
        # The SDK's settings.instance_count is "equivalent to resources.instance_count".
        if self.settings.instance_count is not None:
            self.resources.instance_count = self.settings.instance_count
        check_workers(self.resources.instance_count, self.settings.max_concurrency_per_instance)
        return self


class PipelineDeploymentSettings(_OpenSpec):
    """``settings`` of a pipeline component deployment (and of a pipeline job). ``max_auto_resumes``
    is batchnb's: how many times a job whose runner was lost is started again by itself (see
    :mod:`batchnb.pipelines.auto_resume`)."""

    default_compute: str | None = None
    default_datastore: str | None = None
    continue_on_step_failure: bool = False
    force_rerun: bool = False
    max_auto_resumes: int = Field(default=3, ge=0, le=100)


class PipelineComponentBatchDeploymentSpec(_Spec):
    """``pipelineComponentBatchDeployment.schema.json`` (``type: pipeline``), run by :mod:`batchnb.pipelines`."""

    name: DeploymentName
    endpoint_name: str | None = None
    type: Literal["pipeline"] = "pipeline"
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    component: str | dict[str, Any] | None = None
    job_definition: str | None = None
    settings: PipelineDeploymentSettings = Field(default_factory=PipelineDeploymentSettings)

    @model_validator(mode="after")
    def _needs_component(self) -> PipelineComponentBatchDeploymentSpec:
        if self.component is None and self.job_definition is None:
            raise _FieldRuleError("component", "a pipeline deployment needs 'component' or 'job_definition'")
        return self


DeploymentSpec = ModelBatchDeploymentSpec | PipelineComponentBatchDeploymentSpec

# Keys of the legacy form (no ``type``) that sit at the root instead of under ``settings``.
LEGACY_SETTINGS_KEYS = (
    "max_concurrency_per_instance",
    "mini_batch_size",
    "output_action",
    "output_file_name",
    "retry_settings",
    "error_threshold",
    "logging_level",
    "environment_variables",
    "mini_batch_mode",
    "recursive",
)


# --- assets -------------------------------------------------------------------------------------


class ModelSpec(_OpenSpec):
    """``model.schema.json``."""

    name: AssetName
    version: str | None = None
    path: str
    type: Literal["custom_model", "mlflow_model", "triton_model"] = "custom_model"
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)


class DataSpec(_OpenSpec):
    """``data.schema.json``: a pointer to a file or folder; nothing is copied."""

    name: AssetName
    version: str | None = None
    path: str
    type: Literal["uri_file", "uri_folder"] = "uri_folder"
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class EnvironmentSpec(_OpenSpec):
    """``environment.schema.json``: recorded for checks and reports, never provisioned."""

    name: AssetName
    version: str | None = None
    image: str | None = None
    conda_file: str | dict[str, Any] | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class DatastoreSpec(_OpenSpec):
    """A named root for data and outputs: a local folder or an fsspec URL (``path``), or a container
    or bucket in cloud storage (``type: azure_blob``, ``azure_data_lake_gen2``, ``s3`` or ``gcs``;
    see :mod:`batchnb.cloud.datastores`)."""

    name: DatastoreName
    type: str = "local"
    path: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    # Azure's azure_blob and azure_data_lake_gen2.
    account_name: str | None = None
    container_name: str | None = None
    filesystem: str | None = None
    endpoint: str | None = None
    protocol: str | None = None
    # batchnb's s3 and gcs.
    bucket: str | None = None
    endpoint_url: str | None = None
    # A mapping of one kind's fields, or "none"; kept apart from the store (cloud.secrets).
    credentials: Any = None


class ComputeSpec(_OpenSpec):
    """A compute target. ``local`` and ``amlcompute`` both run on this machine's loky pool; ``ssh`` is
    a Dask cluster over SSH hosts (see :mod:`batchnb.compute.ssh`); ``dask`` is a Dask cluster that
    already runs, reached at its scheduler's ``address`` (see :mod:`batchnb.compute.dask`)."""

    name: ComputeName
    type: Literal["local", "amlcompute", "ssh", "dask"] = "local"
    max_workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    min_instances: int = Field(default=0, ge=0)
    max_instances: int = Field(default=1, ge=1)
    size: str | None = None
    idle_time_before_scale_down: int | None = Field(default=None, ge=0)
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    # type: ssh. No secret is ever stored: keys are named by path (or come from the SSH agent).
    hosts: list[str] = Field(default_factory=list)
    workers_per_host: int = Field(default=1, ge=1, le=MAX_CONCURRENCY_PER_INSTANCE)
    python: str | None = None
    ssh_user: str | None = None
    ssh_key: str | None = None
    ssh_port: int = Field(default=22, ge=1, le=65535)
    known_hosts: str | None = None
    # type: dask. The scheduler's address, and TLS files by path (their contents are never stored).
    address: str | None = None
    tls_ca_file: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    # types ssh and dask: how long a job waits for a cluster with no workers (an adaptive one may
    # have scaled to zero) before it fails, in seconds; None: the default of batchnb.compute.dask.
    no_workers_timeout: int | None = Field(default=None, ge=1)

    @field_validator("hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):  # --hosts h1,h2
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @model_validator(mode="after")
    def _ssh_needs_hosts(self) -> ComputeSpec:
        if self.type == "ssh" and not self.hosts:
            raise _FieldRuleError("hosts", "an ssh compute needs hosts (--hosts h1,h2)")
        if self.type != "ssh" and self.hosts:
            raise _FieldRuleError("hosts", f"only apply to type ssh, not {self.type}")
        if self.type == "dask" and not self.address:
            raise _FieldRuleError("address", "a dask compute needs its scheduler's address (--address tcp://host:8786)")
        if self.type != "dask" and self.address:
            raise _FieldRuleError("address", f"only applies to type dask, not {self.type}")
        if self.no_workers_timeout is not None and self.type not in ("ssh", "dask"):
            raise _FieldRuleError("no_workers_timeout", f"only applies to types ssh and dask, not {self.type}")
        if self.address and "://" not in self.address:
            raise _FieldRuleError(
                "address", f"{self.address!r}: give the scheduler as tcp://host:port or tls://host:port"
            )
        for key in ("password", "passphrase", "private_key"):
            if key in (self.model_extra or {}):
                raise _FieldRuleError(key, "batchnb stores no secrets; give ssh_key as a path or use an SSH agent")
        return self


# --- validation boundary ------------------------------------------------------------------------


def _where(loc: tuple[Any, ...]) -> str:
    # A key with spaces, dots or control characters is quoted, so the path stays one readable line.
    return ".".join(
        part if isinstance(part, str) and part.isidentifier() else repr(part) if isinstance(part, str) else str(part)
        for part in loc
        if not str(part).startswith("function-")
    )


def _allowed_range(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """``between 1 and 1024`` for the bounded number field at ``loc`` of ``model``, else None."""
    field = None
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            return None
        field = fields[part]
        current = field.annotation
    if field is None:
        return None
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    return f"must be at least {low}" if low is not None else None


def validate_spec(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate ``data`` as ``model``; turn pydantic's errors into one :class:`ValidationError`.

    The message names the source (a file name or "request"), the field and the offending value.
    """
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except InvalidNameError as exc:
        raise InvalidNameError(f"{source}: {exc.message}", field="name") from None
    except pydantic.ValidationError as exc:
        lines = []
        first_field = None
        for err in exc.errors():
            rule = err.get("ctx", {}).get("error")
            loc = (*err["loc"], rule.field) if isinstance(rule, _FieldRuleError) else err["loc"]
            where = _where(loc) or "(top level)"
            first_field = first_field or where
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against Azure's schema)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            elif err["type"] in ("greater_than_equal", "less_than_equal"):
                msg = f"{_allowed_range(model, err['loc']) or msg} (got {err['input']!r})"
            elif not isinstance(err.get("input"), dict | list) and "input" in err and repr(err["input"]) not in msg:
                msg = f"{msg} (got {err['input']!r})"
            lines.append(f"{where}: {msg}")
        errors = exc.errors()
        names_only = all(isinstance(e.get("ctx", {}).get("error"), _NameRuleError) for e in errors)
        error_class = InvalidNameError if names_only else ValidationError
        raise error_class(f"{source}: " + "; ".join(lines), field=first_field) from None


def parse_deployment(data: Any, source: str) -> DeploymentSpec:
    """Validate a batch deployment in any of Azure's three forms: ``type: model``, ``type: pipeline``,
    or the legacy form with no ``type`` and the model settings at the root."""
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
    data = dict(data)
    kind = data.get("type")
    if kind == "pipeline":
        return validate_spec(PipelineComponentBatchDeploymentSpec, data, source)  # type: ignore[no-any-return]
    if kind is None:
        settings = data.get("settings") or {}
        if isinstance(settings, dict):  # else the model refuses it, naming the key
            settings = dict(settings)
            for key in LEGACY_SETTINGS_KEYS:
                if key in data:
                    settings[key] = data.pop(key)
            if settings:
                data["settings"] = settings
        data["type"] = "model"
    elif kind != "model":
        raise ValidationError(
            f"{source}: type: {kind!r} is not a batch deployment type (model or pipeline)", field="type"
        )
    return validate_spec(ModelBatchDeploymentSpec, data, source)  # type: ignore[no-any-return]
