"""Test-session set-up."""

from __future__ import annotations

import os

import torch

# Under pytest-xdist every worker is its own process: with torch's default of one intra-op thread per core,
# two workers on two cores run four busy threads and the slowest tests took 15x longer. One thread per
# worker keeps the cores busy without oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
