"""Datastores in cloud storage: Azure's ``azure_blob`` and ``azure_data_lake_gen2``, and ``s3`` and ``gcs``.

Each is read from Azure's datastore YAML (``account_name``, ``container_name`` or ``filesystem``,
``endpoint``, ``protocol``, ``credentials``) or batchnb's own for S3 and GCS (``bucket``,
``endpoint_url``, ``credentials``), and reached through the fsspec package the field trusts: adlfs
(``batchnb[azure-storage]``), s3fs (``batchnb[s3]``) or gcsfs (``batchnb[gcs]``).

The credentials a YAML gives are split off at registration (see :mod:`batchnb.cloud.secrets`):
the store keeps only their kind. The kinds:

==================  ===========================================================================
account_key         Azure: the storage account's key
sas_token           Azure: a shared access signature
connection_string   Azure: a connection string (an emulator such as Azurite, a private endpoint)
service_principal   Azure: ``tenant_id``, ``client_id`` and ``client_secret``
access_key          S3: ``access_key_id``, ``secret_access_key`` (and ``session_token``)
token               GCS: a service account key (its JSON text, or the path of its file)
none                a public container or bucket, read anonymously (``credentials: none``)
environment         no ``credentials``: as the library finds them (``AZURE_STORAGE_CONNECTION_STRING``,
                    an Azure identity; ``AWS_*`` and ``~/.aws``; ``GOOGLE_APPLICATION_CREDENTIALS``)
==================  ===========================================================================

A path in such a datastore has one URL that names its place, whoever reads it:
``wasbs://<container>@<account>.blob.<endpoint>/<path>`` (``wasb://`` over http),
``abfss://<filesystem>@<account>.dfs.<endpoint>/<path>``, ``s3://<bucket>/<path>`` or
``gs://<bucket>/<path>``. :mod:`batchnb.remote` finds the datastore that holds a URL and opens it
with that datastore's credentials.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ValidationError

AZURE_TYPES = {"azure_blob": "container_name", "azure_data_lake_gen2": "filesystem"}
BUCKET_TYPES = ("s3", "gcs")
CLOUD_TYPES = (*AZURE_TYPES, *BUCKET_TYPES)
# fsspec's protocol and batchnb's extra for each type.
PROTOCOLS = {"azure_blob": "az", "azure_data_lake_gen2": "abfs", "s3": "s3", "gcs": "gs"}
EXTRAS = {"az": ("adlfs", "azure-storage"), "abfs": ("adlfs", "azure-storage"), "s3": ("s3fs", "s3")}
EXTRAS["gs"] = EXTRAS["gcs"] = ("gcsfs", "gcs")
DEFAULT_ENDPOINT = "core.windows.net"

# The credential kinds, by the fields that make each (the first field named decides).
_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "azure": {
        "account_key": ("account_key",),
        "sas_token": ("sas_token",),
        "connection_string": ("connection_string",),
        "service_principal": ("tenant_id", "client_id", "client_secret"),
    },
    "s3": {"access_key": ("access_key_id", "secret_access_key", "session_token")},
    "gcs": {"token": ("token",)},
}
_REQUIRED = {
    "service_principal": ("tenant_id", "client_id", "client_secret"),
    "access_key": _KINDS["s3"]["access_key"][:2],
}
ENVIRONMENT = "environment"
NONE = "none"


def _family(ds_type: str) -> str:
    return "azure" if ds_type in AZURE_TYPES else ds_type


def split_credentials(name: str, ds_type: str, credentials: Any) -> tuple[str, dict[str, str]]:
    """The credential kind and the secret fields of a datastore YAML's ``credentials``.

    Args:
        name: The datastore's name, for messages.
        ds_type: Its type (one of :data:`CLOUD_TYPES`).
        credentials: ``credentials`` as written: absent (None) or an empty mapping for the
            environment's, ``none`` for anonymous access, or a mapping of one kind's fields.

    Raises:
        ValidationError: an unknown field, fields of two kinds, or a kind missing a field.
    """
    if credentials is None or credentials == {}:
        return ENVIRONMENT, {}
    if isinstance(credentials, str) and credentials.lower() == NONE:
        return NONE, {}
    kinds = _KINDS[_family(ds_type)]
    known = sorted({f for fields in kinds.values() for f in fields})
    if not isinstance(credentials, dict):
        raise ValidationError(
            f"datastore {name}: credentials must be a mapping of {', '.join(known)}, or 'none'", field="credentials"
        )
    unknown = sorted(set(credentials) - set(known))
    if unknown:
        raise ValidationError(
            f"datastore {name}: credentials.{unknown[0]} is not a {ds_type} credential; use {', '.join(known)}",
            field=f"credentials.{unknown[0]}",
        )
    found = [kind for kind, fields in kinds.items() if set(fields) & set(credentials)]
    if len(found) > 1:
        raise ValidationError(
            f"datastore {name}: credentials mixes {found[0]} and {found[1]}; give one kind", field="credentials"
        )
    kind = found[0]
    for field in _REQUIRED.get(kind, kinds[kind][:1]):
        if not isinstance(credentials.get(field), str) or not credentials[field].strip():
            raise ValidationError(
                f"datastore {name}: credentials.{field} is required for {kind} (a non-empty string)",
                field=f"credentials.{field}",
            )
    return kind, {k: str(v) for k, v in credentials.items() if v is not None}


def make_record(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The record the store keeps for a cloud datastore, and the secrets kept apart from it.

    Args:
        spec: The validated datastore YAML as a mapping (``type`` one of :data:`CLOUD_TYPES`).

    Raises:
        ValidationError: a required field is missing, a field of another type is given, or the
            credentials are malformed; naming the field.
    """
    name, ds_type = spec["name"], spec["type"]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    if ds_type in AZURE_TYPES:
        required, optional = ("account_name", AZURE_TYPES[ds_type]), ("endpoint", "protocol")
    else:
        required, optional = ("bucket",), ("endpoint_url",)
    allowed = {"name", "type", "description", "tags", "credentials", "$schema", *required, *optional}
    for field in required:
        value = spec.get(field)
        if not isinstance(value, str) or not value.strip() or "/" in value:
            raise ValidationError(f"datastore {name}: {field} is required for type {ds_type}", field=field)
    for field in spec:
        if field not in allowed:
            raise ValidationError(
                f"datastore {name}: {field} is not a field of a {ds_type} datastore "
                f"(its fields: {', '.join(sorted(allowed - {'$schema'}))})",
                field=field,
            )
    protocol = spec.get("protocol", "https")
    if ds_type in AZURE_TYPES and protocol not in ("https", "http"):
        raise ValidationError(f"datastore {name}: protocol must be https or http, not {protocol!r}", field="protocol")
    kind, secret = split_credentials(name, ds_type, spec.get("credentials"))
    record = {k: v for k, v in spec.items() if k not in ("credentials", "$schema")}
    if ds_type in AZURE_TYPES:
        record.setdefault("endpoint", DEFAULT_ENDPOINT)
        record.setdefault("protocol", "https")
    record["credential_kind"] = kind
    record["path"] = location_url(record, "")
    return record, secret


def location_url(record: dict[str, Any], rel: str) -> str:
    """The URL of ``rel`` (a path inside the datastore, no leading slash) in a cloud datastore."""
    rel = rel.strip("/")
    tail = "/" + rel if rel else ""
    ds_type = record["type"]
    if ds_type in BUCKET_TYPES:
        return f"{PROTOCOLS[ds_type]}://{record['bucket']}{tail}"
    endpoint = record.get("endpoint") or DEFAULT_ENDPOINT
    if "://" in endpoint:  # an emulator's or private endpoint's URL: the name keeps Azure's form
        endpoint = DEFAULT_ENDPOINT
    secure = record.get("protocol", "https") == "https"
    root = record[AZURE_TYPES[ds_type]]
    if ds_type == "azure_blob":
        return f"{'wasbs' if secure else 'wasb'}://{root}@{record['account_name']}.blob.{endpoint}{tail}"
    return f"{'abfss' if secure else 'abfs'}://{root}@{record['account_name']}.dfs.{endpoint}{tail}"


def blob_endpoint(record: dict[str, Any]) -> str:
    """The blob service URL of an Azure datastore: ``<protocol>://<account>.blob.<endpoint>``, or
    ``endpoint`` itself where it is a URL (an emulator such as Azurite, a private endpoint)."""
    endpoint = record.get("endpoint") or DEFAULT_ENDPOINT
    if "://" in endpoint:
        return str(endpoint).rstrip("/")
    return f"{record.get('protocol', 'https')}://{record['account_name']}.blob.{endpoint}"


def storage_options(record: dict[str, Any], secret: dict[str, str]) -> dict[str, Any]:
    """The fsspec options (adlfs, s3fs or gcsfs keyword arguments) that open a cloud datastore."""
    kind = record.get("credential_kind", ENVIRONMENT)
    ds_type = record["type"]
    if ds_type == "s3":
        options: dict[str, Any] = {"endpoint_url": record["endpoint_url"]} if record.get("endpoint_url") else {}
        if kind == NONE:
            return {**options, "anon": True}
        if kind == "access_key":
            options.update(key=secret["access_key_id"], secret=secret["secret_access_key"])
            if secret.get("session_token"):
                options["token"] = secret["session_token"]
        return options
    if ds_type == "gcs":
        options = {"endpoint_url": record["endpoint_url"]} if record.get("endpoint_url") else {}
        if kind == NONE:
            return {**options, "token": "anon"}
        if kind == "token":
            token = secret["token"].strip()
            options["token"] = json.loads(token) if token.startswith("{") else token
        return options
    account = record["account_name"]
    endpoint = blob_endpoint(record)
    if kind == "connection_string":
        return {"connection_string": secret["connection_string"]}
    if kind == "account_key":
        protocol = endpoint.split("://", 1)[0]
        return {
            "connection_string": f"DefaultEndpointsProtocol={protocol};AccountName={account};"
            f"AccountKey={secret['account_key']};BlobEndpoint={endpoint};"
        }
    if kind == "sas_token":
        return {"connection_string": f"BlobEndpoint={endpoint};SharedAccessSignature={secret['sas_token'].lstrip('?')}"}
    options = {"account_name": account}
    host = endpoint.split("://", 1)[1]
    if host != f"{account}.blob.{DEFAULT_ENDPOINT}":
        options["account_host"] = host
    if kind == "service_principal":
        options.update(
            tenant_id=secret["tenant_id"], client_id=secret["client_id"], client_secret=secret["client_secret"]
        )
    elif kind == NONE:
        options["anon"] = True
    return options


def describe_credentials(record: dict[str, Any]) -> str:
    """What ``datastore show`` says of the credentials: their kind and where they are kept."""
    kind = record.get("credential_kind", ENVIRONMENT)
    if kind == NONE:
        return "none (anonymous access to a public container or bucket)"
    if kind == ENVIRONMENT:
        where = {
            "azure": "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_* or an Azure identity",
            "s3": "AWS_* variables or ~/.aws",
            "gcs": "GOOGLE_APPLICATION_CREDENTIALS or the gcloud login",
        }[_family(record["type"])]
        return f"environment (found by the library where the job runs: {where})"
    return f"{kind} (kept in the workspace's private secrets file)"


def masked(record: dict[str, Any], secret: dict[str, str]) -> dict[str, str] | str | None:
    """The ``credentials`` to show: every field present, each value replaced by asterisks."""
    kind = record.get("credential_kind", ENVIRONMENT)
    if kind == NONE:
        return NONE
    if not secret:
        return None
    return {field: "********" for field in sorted(secret)}
