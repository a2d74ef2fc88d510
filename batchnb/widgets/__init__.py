"""ipywidgets front ends: the live job display, forms, and the job table.

Imported only in a kernel, on first display; never by workers or by ``import batchnb``.
"""

from .forms import DeploymentForm, EndpointForm, JobTable, ModelForm
from .progress import JobProgress, show_job

__all__ = ["DeploymentForm", "EndpointForm", "JobProgress", "JobTable", "ModelForm", "show_job"]
