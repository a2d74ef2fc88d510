"""Pipeline components and pipeline jobs: Azure's multi-step graphs, run on this machine.

* :mod:`.spec`: the component and pipeline YAML models and the ``${{...}}`` binding language.
* :mod:`.resolve`: files, references and inline mappings → self-contained, checked records.
* :mod:`.submit`: a resolved pipeline + values → a pipeline job and its step (child) jobs.
* :mod:`.runner`: the process that runs a pipeline job's steps (``python -m batchnb.pipelines.runner``).
* :mod:`.operations`: what the job API calls for pipeline and step jobs.
* :mod:`.dsl`: plain Python functions as components (:func:`component`) and pipelines (:func:`pipeline`).
"""
