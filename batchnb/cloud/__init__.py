"""Data where users keep it: cloud datastores, their credentials, and opening storage URLs.

* :mod:`.datastores`: the types ``azure_blob``, ``azure_data_lake_gen2``, ``s3`` and ``gcs``, read
  from Azure's datastore YAML: their records, URLs, credential kinds and fsspec options;
* :mod:`.secrets`: the workspace's private file that keeps their credentials out of the store;
* :mod:`.fs`: from a URL to an fsspec filesystem with the right credentials, in any process.

Light on purpose (no pydantic, no store schema): a job's workers import it to read their files.
"""
