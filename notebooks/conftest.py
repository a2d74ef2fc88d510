"""nbval runs each example notebook in a kernel started from this interpreter. The kernels inherit
this environment: a throwaway workspace, so the notebooks never touch a user's own."""

import os
import tempfile

os.environ["BATCHNB_WORKSPACE"] = tempfile.mkdtemp(prefix="batchnb-nbval-ws-")
