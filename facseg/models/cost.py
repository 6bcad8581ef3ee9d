"""What a net costs: parameters, GFLOPs per image and inference latency, measured the same way for every model."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def used_parameters(net: nn.Module, image_size: int) -> int:
    """The parameters an eval-mode forward pass depends on: what a comparison of sizes counts. A PSPNet's auxiliary
    head (training only), or an encoder stage a net never reaches, is left out."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    params = [p for p in net.parameters() if p.requires_grad]
    output = net(torch.zeros(1, 3, image_size, image_size, device=device))
    grads = torch.autograd.grad(output.sum(), params, allow_unused=True)
    net.train(was_training)
    return sum(p.numel() for p, g in zip(params, grads) if g is not None)


def gflops(net: nn.Module, image_size: int) -> float:
    """10^9 floating-point operations for one image, a multiply-add counting two (PyTorch's FLOP counter).

    Papers that quote "FLOPs" often count multiply-adds: halve this figure to compare with them.
    """
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, image_size, image_size, device=device))
    net.train(was_training)
    return counter.get_total_flops() / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def latency_ms(net: nn.Module, image_size: int, batch: int = 1, warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time of one eval-mode forward pass of `batch` images, in milliseconds."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    for _ in range(warmup):
        net(images)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        net(images)
        _sync(device)
        times.append(time.perf_counter() - start)
    net.train(was_training)
    return 1000 * sorted(times)[len(times) // 2]


def model_cost(net: nn.Module, image_size: int) -> dict:
    """The figures a comparison report shows beside the metrics; the latency is of the device the net is on."""
    device = next(net.parameters()).device
    return {
        "params": used_parameters(net, image_size),
        "params_total": parameters(net),  # with what only training uses (PSPNet's auxiliary head)
        "gflops": gflops(net, image_size),
        "ms_per_image": latency_ms(net, image_size),
        "image_size": image_size,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
    }
