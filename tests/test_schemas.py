"""Azure's batch YAML: defaults, the legacy form, accepted spellings, refused typos, names, references.

The defaults asserted here are Azure's (azure-batch-contract.md §1.3), not batchnb's choices.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from batchnb.errors import InvalidNameError, UsageError, ValidationError
from batchnb.schemas import (
    BatchEndpointSpec,
    ModelBatchDeploymentSpec,
    PipelineComponentBatchDeploymentSpec,
    check_name,
    parse_deployment,
    validate_spec,
)
from batchnb.specfile import (
    apply_set,
    is_asset_ref,
    load_yaml,
    parse_asset_ref,
    parse_datastore_uri,
    parse_set,
)

MINIMAL = {
    "name": "blue",
    "endpoint_name": "heart",
    "model": "azureml:heart-model@latest",
    "code_configuration": {"code": "code", "scoring_script": "score.py"},
}

AZURE_DEFAULT_SETTINGS = {
    "max_concurrency_per_instance": 1,
    "mini_batch_size": 10,
    "error_threshold": -1,
    "retry_settings": {"max_retries": 3, "timeout": 30},
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "logging_level": "info",
    "environment_variables": {},
}

RULE = "3 to 32 characters: letters, digits and hyphens, starting with a letter"


def _settings(spec: ModelBatchDeploymentSpec) -> dict:
    return {k: v for k, v in spec.to_yaml_dict()["settings"].items() if k in AZURE_DEFAULT_SETTINGS}


# --- model deployments: defaults and the three forms ---------------------------------------------


@pytest.mark.parametrize("form", ["typed", "legacy"])
def test_minimal_model_deployment_gets_azures_defaults(form: str) -> None:
    data = {**MINIMAL, "type": "model"} if form == "typed" else dict(MINIMAL)
    spec = parse_deployment(data, "deployment.yml")
    assert isinstance(spec, ModelBatchDeploymentSpec)
    assert spec.type == "model"
    assert _settings(spec) == AZURE_DEFAULT_SETTINGS
    assert spec.resources.instance_count == 1


def test_model_deployment_round_trips_through_yaml() -> None:
    first = parse_deployment({**MINIMAL, "type": "model"}, "deployment.yml")
    text = yaml.safe_dump(first.to_yaml_dict(), sort_keys=False)
    second = parse_deployment(yaml.safe_load(text), "deployment.yml")
    assert second.to_yaml_dict() == first.to_yaml_dict()
    # Written back, the file keeps Azure's key names and layout.
    written = yaml.safe_load(text)
    assert written["settings"]["retry_settings"] == {"max_retries": 3, "timeout": 30}
    assert written["resources"] == {"instance_count": 1}
    assert "$schema" not in written  # not given, not invented


def test_legacy_form_parses_into_the_same_settings_as_the_typed_form() -> None:
    settings = {
        "max_concurrency_per_instance": 4,
        "mini_batch_size": 3,
        "output_action": "summary_only",
        "output_file_name": "scores.csv",
        "retry_settings": {"max_retries": 5, "timeout": 90},
        "error_threshold": 7,
        "logging_level": "debug",
        "environment_variables": {"FOO": "bar"},
    }
    typed = parse_deployment({**MINIMAL, "type": "model", "settings": settings}, "typed.yml")
    legacy = parse_deployment({**MINIMAL, **settings}, "legacy.yml")
    assert isinstance(legacy, ModelBatchDeploymentSpec)
    assert legacy.type == "model"
    assert legacy.settings == typed.settings
    assert _settings(legacy) == settings


def test_environment_variable_values_are_kept_as_strings() -> None:
    spec = parse_deployment({**MINIMAL, "environment_variables": {"N": 3, "FLAG": True, "EMPTY": None}}, "d.yml")
    assert spec.settings.environment_variables == {"N": "3", "FLAG": "True", "EMPTY": ""}


def test_azure_only_keys_are_accepted_and_kept() -> None:
    data = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json",
        **MINIMAL,
        "type": "model",
        "compute": "azureml:batch-cluster",
        "environment": {
            "name": "batch-env",
            "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest",
            "conda_file": "environment/conda.yaml",
        },
        "resources": {"instance_count": 2, "instance_type": "Standard_DS3_v2"},
    }
    kept = parse_deployment(data, "deployment.yml").to_yaml_dict()
    assert kept["$schema"] == data["$schema"]
    assert kept["compute"] == "azureml:batch-cluster"
    assert kept["environment"] == data["environment"]
    assert kept["resources"] == {"instance_count": 2, "instance_type": "Standard_DS3_v2"}


def test_settings_instance_count_is_resources_instance_count() -> None:
    spec = parse_deployment({**MINIMAL, "type": "model", "settings": {"instance_count": 4}}, "d.yml")
    assert spec.resources.instance_count == 4


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({**MINIMAL, "type": "model", "settings": {"mini_batch_sise": 5}}, "settings.mini_batch_sise"),
        ({**MINIMAL, "mini_batch_sise": 5}, "mini_batch_sise"),  # legacy form: the typo sits at the root
        ({**MINIMAL, "type": "model", "settings": {"retry_settings": {"max_retry": 2}}}, "retry_settings.max_retry"),
    ],
)
def test_a_typo_in_the_settings_is_refused_naming_the_key(data: dict, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_deployment(data, "deployment.yml")
    message = info.value.message
    assert message.startswith("deployment.yml: ")
    assert where in message
    assert "unknown key" in message
    assert info.value.field is not None and info.value.field.endswith(where)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("append_row", "append_row"),
        ("AppendRow", "append_row"),
        ("APPEND_ROW", "append_row"),
        ("summary_only", "summary_only"),
        ("SummaryOnly", "summary_only"),
    ],
)
def test_output_action_spellings(given: str, stored: str) -> None:
    spec = parse_deployment({**MINIMAL, "type": "model", "settings": {"output_action": given}}, "d.yml")
    assert spec.settings.output_action == stored


def test_unknown_output_action_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"settings\.output_action"):
        parse_deployment({**MINIMAL, "type": "model", "settings": {"output_action": "append_rows"}}, "d.yml")


@pytest.mark.parametrize(
    ("given", "seconds"), [("PT1M", 60), ("PT30S", 30), ("PT1H", 3600), ("PT1M30S", 90), ("pt2m", 120), (45, 45)]
)
def test_retry_timeout_accepts_seconds_and_iso_durations(given: object, seconds: int) -> None:
    spec = parse_deployment({**MINIMAL, "retry_settings": {"timeout": given}}, "d.yml")
    assert spec.settings.retry_settings.timeout == seconds
    assert spec.settings.retry_settings.max_retries == 3


@pytest.mark.parametrize("given", ["PT", "PT1.5S", "one minute", 0])
def test_bad_retry_timeout_is_refused_naming_the_field(given: object) -> None:
    with pytest.raises(ValidationError, match=r"retry_settings\.timeout"):
        parse_deployment({**MINIMAL, "retry_settings": {"timeout": given}}, "d.yml")


def test_logging_level_is_case_insensitive_and_checked() -> None:
    assert parse_deployment({**MINIMAL, "logging_level": "DEBUG"}, "d.yml").settings.logging_level == "debug"
    with pytest.raises(ValidationError, match="logging_level"):
        parse_deployment({**MINIMAL, "logging_level": "verbose"}, "d.yml")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"mini_batch_size": 0}, "mini_batch_size"),
        ({"mini_batch_size": "64MB"}, "mini_batch_mode: tabular"),  # a size needs tabular mode
        ({"max_concurrency_per_instance": 0}, "max_concurrency_per_instance"),
        ({"error_threshold": -2}, "error_threshold"),
        ({"output_file_name": "sub/predictions.csv"}, "output_file_name"),
        # A mistyped extra zero: refused with the range, not forked or overflowed later.
        ({"max_concurrency_per_instance": 1_000_000_000}, "max_concurrency_per_instance: must be between 1 and 1024"),
        ({"instance_count": 0}, "instance_count: must be between 1 and 1024 \\(got 0\\)"),
        ({"retry_settings": {"timeout": 10_000_000_000}}, "timeout: must be between 1 and 259200"),
        ({"retry_settings": {"timeout": "PT100H"}}, "timeout: must be between 1 and 259200 \\(got 360000\\)"),
        ({"retry_settings": {"max_retries": 1000}}, "max_retries: must be between 0 and 100"),
        ({"mini_batch_size": 2**31}, "mini_batch_size: must be between 1 and 2147483647"),
        ({"instance_count": 64, "max_concurrency_per_instance": 32}, "2048 worker processes; at most 1024"),
    ],
)
def test_out_of_range_settings_are_refused(settings: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        parse_deployment({**MINIMAL, "type": "model", "settings": settings}, "d.yml")


def test_mini_batch_size_given_as_text() -> None:
    assert parse_deployment({**MINIMAL, "mini_batch_size": "20"}, "d.yml").settings.mini_batch_size == 20
    settings = {"mini_batch_size": "64MB", "mini_batch_mode": "tabular"}
    tabular = parse_deployment({**MINIMAL, "type": "model", "settings": settings}, "d.yml")
    assert tabular.settings.mini_batch_size == "64MB"


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"mini_batch_size": "64MB"}, "settings.mini_batch_size", "'64MB' is a size, which only tabular mode"),
        ({"lineage_columns": True}, "settings.lineage_columns", "true needs a Parquet output"),
    ],
)
def test_a_rule_across_fields_names_the_field_that_breaks_it(settings: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_deployment({**MINIMAL, "type": "model", "settings": settings}, "d.yml")
    assert info.value.message.startswith(f"d.yml: {field}: {message}")
    assert info.value.field == field


def test_missing_required_key_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        parse_deployment({"name": "blue", "type": "model"}, "deployment.yml")
    assert "model: required key is missing" in info.value.message


def test_inline_model_is_accepted() -> None:
    spec = parse_deployment({**MINIMAL, "model": {"name": "heart-model", "path": "model"}}, "d.yml")
    assert spec.model.path == "model"  # type: ignore[union-attr]
    assert spec.model.type == "custom_model"  # type: ignore[union-attr]


def test_unknown_deployment_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="'online' is not a batch deployment type"):
        parse_deployment({**MINIMAL, "type": "online"}, "d.yml")


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"d\.yml: expected a mapping"):
        parse_deployment(["name", "blue"], "d.yml")


# --- pipeline deployments ------------------------------------------------------------------------


def test_pipeline_deployment_is_validated() -> None:
    data = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineComponentBatchDeployment.schema.json",
        "name": "hello-batch-dpl",
        "endpoint_name": "hello-pipeline-batch",
        "type": "pipeline",
        "component": "hello-component/hello.yml",
        "settings": {"default_compute": "batch-cluster", "continue_on_step_failure": True},
    }
    spec = parse_deployment(data, "deployment.yml")
    assert isinstance(spec, PipelineComponentBatchDeploymentSpec)
    kept = spec.to_yaml_dict()
    assert kept["component"] == "hello-component/hello.yml"
    assert kept["settings"]["default_compute"] == "batch-cluster"
    assert kept["settings"]["continue_on_step_failure"] is True
    assert kept["settings"]["force_rerun"] is False
    assert kept["$schema"] == data["$schema"]


def test_pipeline_deployment_from_a_job_definition() -> None:
    spec = parse_deployment({"name": "from-job", "type": "pipeline", "job_definition": "azureml:job-1"}, "d.yml")
    assert spec.job_definition == "azureml:job-1"  # type: ignore[union-attr]


def test_pipeline_deployment_needs_a_component_or_a_job() -> None:
    with pytest.raises(ValidationError, match="needs 'component' or 'job_definition'"):
        parse_deployment({"name": "pipe-dep", "type": "pipeline"}, "d.yml")


def test_pipeline_deployment_refuses_model_keys() -> None:
    with pytest.raises(ValidationError, match="model: unknown key"):
        parse_deployment({"name": "pipe-dep", "type": "pipeline", "component": "c.yml", "model": "m"}, "d.yml")


# --- endpoints -----------------------------------------------------------------------------------


def test_endpoint_defaults() -> None:
    spec = validate_spec(BatchEndpointSpec, {"name": "heart-classifier"}, "endpoint.yml")
    assert spec.auth_mode == "aad_token"
    assert spec.defaults.deployment_name is None
    assert spec.to_yaml_dict() == {
        "name": "heart-classifier",
        "tags": {},
        "properties": {},
        "auth_mode": "aad_token",
        "defaults": {},
    }


def test_endpoint_only_supports_aad_token_auth() -> None:
    with pytest.raises(ValidationError, match="auth_mode"):
        validate_spec(BatchEndpointSpec, {"name": "heart", "auth_mode": "key"}, "endpoint.yml")


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["endpoint", "deployment"])
@pytest.mark.parametrize("name", ["../x", "a", "ab", "1abc", "abc_def", "a" * 33, "abc-", "ab c", "", "héllo"])
def test_bad_endpoint_and_deployment_names_are_refused_stating_the_rule(kind: str, name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(kind, name)
    assert RULE in info.value.message
    assert repr(name) in info.value.message
    assert info.value.field == "name"


@pytest.mark.parametrize("name", ["abc", "a" * 32, "heart-classifier", "Blue2", "a-1-b"])
def test_good_endpoint_and_deployment_names(name: str) -> None:
    assert check_name("endpoint", name) == name
    assert check_name("deployment", name) == name


def test_a_bad_name_in_a_spec_is_an_invalid_name_error() -> None:
    with pytest.raises(InvalidNameError) as info:
        validate_spec(BatchEndpointSpec, {"name": "abc_def"}, "endpoint.yml")
    assert info.value.message.startswith("endpoint.yml: name: invalid endpoint name 'abc_def': an endpoint name")
    assert RULE in info.value.message
    with pytest.raises(InvalidNameError, match=f"a deployment name must be {RULE}"):
        parse_deployment({**MINIMAL, "name": "1abc"}, "deployment.yml")


@pytest.mark.parametrize(("kind", "name"), [("asset", "../model"), ("asset", "a/b"), ("version", "1/2")])
def test_asset_names_cannot_escape_a_folder(kind: str, name: str) -> None:
    with pytest.raises(InvalidNameError):
        check_name(kind, name)


# --- files, --set and references -----------------------------------------------------------------


def test_load_yaml_returns_the_folder_relative_paths_resolve_against(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    file = tmp_path / "sub" / "endpoint.yml"
    file.write_text("name: heart\n")
    data, base = load_yaml(file)
    assert data == {"name": "heart"}
    assert base == (tmp_path / "sub").resolve()


def test_load_yaml_names_the_line_of_a_syntax_error(tmp_path: Path) -> None:
    file = tmp_path / "deployment.yml"
    file.write_text("name: blue\nmodel: azureml:m:1\nsettings: a: b\n")
    with pytest.raises(ValidationError) as info:
        load_yaml(file)
    assert str(file) in info.value.message
    assert "line 3" in info.value.message
    assert "invalid YAML" in info.value.message


def test_load_yaml_refuses_a_missing_file_and_a_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"nope\.yml: no such file"):
        load_yaml(tmp_path / "nope.yml")
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    with pytest.raises(ValidationError, match="expected a YAML mapping"):
        load_yaml(tmp_path / "list.yml")


def test_set_values_are_yaml_scalars_and_nest() -> None:
    pairs = parse_set(["settings.mini_batch_size=5", "defaults.deployment_name=blue", "description=", "flag=true"])
    assert pairs == [
        ("settings.mini_batch_size", 5),
        ("defaults.deployment_name", "blue"),
        ("description", ""),
        ("flag", True),
    ]
    original = {"name": "e", "settings": {"mini_batch_size": 10}}
    changed = apply_set(original, pairs)
    assert changed["settings"]["mini_batch_size"] == 5
    assert changed["defaults"] == {"deployment_name": "blue"}
    assert original["settings"]["mini_batch_size"] == 10  # a copy, not an edit


def test_set_refuses_malformed_assignments() -> None:
    with pytest.raises(UsageError, match="expected key=value"):
        parse_set(["defaults.deployment_name"])
    with pytest.raises(UsageError, match="not a mapping"):
        apply_set({"name": "e"}, [("name.sub", 1)])


@pytest.mark.parametrize(
    ("ref", "name", "version", "label"),
    [
        ("azureml:heart:2", "heart", "2", None),
        ("azureml:heart@latest", "heart", None, "latest"),
        ("heart:2", "heart", "2", None),
        ("heart@latest", "heart", None, "latest"),
        ("heart", "heart", None, "latest"),
        ("/subscriptions/s/resourceGroups/g/providers/x/workspaces/w/models/heart/versions/4", "heart", "4", None),
    ],
)
def test_asset_reference_forms(ref: str, name: str, version: str | None, label: str | None) -> None:
    parsed = parse_asset_ref(ref)
    assert (parsed.name, parsed.version, parsed.label) == (name, version, label)


def test_registry_references_are_refused() -> None:
    with pytest.raises(ValidationError, match="registry references"):
        parse_asset_ref("azureml://registries/azureml/models/heart/versions/1")


def test_datastore_uris() -> None:
    assert parse_datastore_uri("azureml://datastores/workspaceblobstore/paths/x") == ("workspaceblobstore", "x")
    assert parse_datastore_uri("azureml://datastores/ds/paths/a/b/") == ("ds", "a/b/")
    assert parse_datastore_uri("azureml:heart@latest") is None
    assert is_asset_ref("azureml:heart@latest")
    assert not is_asset_ref("azureml://datastores/ds/paths/x")


def test_legacy_form_also_takes_batchnbs_own_settings_at_the_root() -> None:
    spec = parse_deployment(
        {**MINIMAL, "mini_batch_mode": "tabular", "recursive": True, "mini_batch_size": "64MB"}, "d.yml"
    )
    assert spec.settings.mini_batch_mode == "tabular"
    assert spec.settings.recursive is True
    assert spec.settings.mini_batch_size == "64MB"


def test_max_retries_zero_is_accepted_as_azure_accepts_it() -> None:
    spec = parse_deployment({**MINIMAL, "type": "model", "settings": {"retry_settings": {"max_retries": 0}}}, "d.yml")
    assert spec.settings.retry_settings.max_retries == 0
    with pytest.raises(ValidationError, match=r"retry_settings\.max_retries"):
        parse_deployment({**MINIMAL, "type": "model", "settings": {"retry_settings": {"max_retries": -1}}}, "d.yml")
