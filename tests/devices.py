"""Cross-device checks: a renderer run on CUDA copies of its inputs gives the CPU's outputs and gradients
(skipped without CUDA; CI has none, a lent GPU machine runs them).

``GRADIANCE_OTHER_DEVICE`` names another device to compare with the CPU ("cpu" itself checks the tests'
plumbing on a machine without a GPU)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor

OTHER = os.environ.get("GRADIANCE_OTHER_DEVICE", "cuda")
CUDA = pytest.mark.skipif(OTHER == "cuda" and not torch.cuda.is_available(), reason="needs CUDA")

Render = Callable[[Sequence[Tensor], str], dict[str, Tensor]]


def _run(render: Render, leaves: Sequence[Tensor], device: str) -> tuple[dict[str, Tensor], list[Tensor]]:
    """Outputs of ``render`` on copies of ``leaves`` on ``device`` and the gradients of a fixed random
    weighting of every floating output (the same weights on both devices, so each output's gradient path
    is exercised)."""
    xs = [x.detach().to(device).requires_grad_(x.is_floating_point()) for x in leaves]
    outs = render(xs, device)
    g = torch.Generator().manual_seed(0)
    loss = sum(
        (out * torch.rand(out.shape, generator=g, dtype=out.dtype).to(device)).sum()
        for out in outs.values()
        if out.is_floating_point() and out.requires_grad
    )
    wrt = [x for x in xs if x.requires_grad]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True) if wrt else ()
    return outs, [torch.zeros_like(x) if gr is None else gr for x, gr in zip(wrt, grads, strict=True)]


def assert_same_on_cuda(render: Render, leaves: Sequence[Tensor], atol: float = 1e-9) -> None:
    """``render(leaves, device)`` returns named outputs; on ``"cuda"`` they, and the gradients with respect
    to every floating leaf, must equal the CPU's within ``atol`` (relative to the largest CPU value), and
    integer outputs (ids, counts) must be equal."""
    cpu, cpu_grads = _run(render, leaves, "cpu")
    gpu, gpu_grads = _run(render, leaves, OTHER)
    assert cpu.keys() == gpu.keys()
    for name, ref in cpu.items():
        got = gpu[name]
        assert got.device.type == torch.device(OTHER).type, f"{name} was computed on {got.device}"
        if ref.is_floating_point():
            scale = max(1.0, float(ref.detach().abs().max())) if ref.numel() else 1.0
            torch.testing.assert_close(got.detach().cpu(), ref.detach(), atol=atol * scale, rtol=0, msg=name)
        else:
            assert torch.equal(got.cpu(), ref), f"{name} differs between CPU and CUDA"
    for i, (ref_g, got_g) in enumerate(zip(cpu_grads, gpu_grads, strict=True)):
        assert got_g.device.type == torch.device(OTHER).type
        scale = max(1.0, float(ref_g.abs().max())) if ref_g.numel() else 1.0
        torch.testing.assert_close(got_g.cpu(), ref_g, atol=atol * scale, rtol=0, msg=f"gradient of leaf {i}")
