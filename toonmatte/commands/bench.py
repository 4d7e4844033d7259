"""``python -m toonmatte bench``: how fast this machine runs the pieces that matter.

Prints the model's forward time and peak memory (random weights: speed does not depend on
their values), the machine's measured GEMM throughput and the share of it the model
achieves, and foreground estimation time. Run it on a quiet machine; compare ratios.
"""
from __future__ import annotations

import argparse
import platform
import resource
import time
from typing import Callable

import numpy as np
import torch

TOONOUT_FORWARD_FLOP = 2.28e12  # one 1024x1024 forward pass of the ToonOut graph


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--size", type=int, default=1024, help="model input side (default 1024)")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions after one warm-up")
    parser.add_argument("--tiny", action="store_true", help="bench the tiny test variant instead of ToonOut's graph")
    parser.add_argument("--skip-model", action="store_true", help="skip the model forward (the slow part on a CPU)")


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def gemm_throughput(device: torch.device, dtype: torch.dtype, n: int = 4096, repeats: int = 3) -> float:
    """FLOP/s of an n x n x n matrix multiply."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = best_time(lambda: torch.mm(a, b), repeats, synchronizer(device))
    return 2 * n ** 3 / seconds


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bench_model(args: argparse.Namespace, device: torch.device, precision: str) -> tuple[float, int]:
    from toonmatte.birefnet import BiRefNetConfig, build_model
    from toonmatte.pipeline import PRECISIONS

    net = build_model(BiRefNetConfig.tiny() if args.tiny else None).to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=PRECISIONS[precision],
                                                    enabled=precision != "fp32"):
            return net(x)

    seconds = best_time(forward, args.repeats, synchronizer(device))
    return seconds, peak_memory_bytes(device)


def bench_foreground(device: torch.device, size: int = 2048, repeats: int = 3) -> dict[str, float]:
    from toonmatte.foreground import estimate_foreground, estimate_foreground_torch

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (size, size), dtype=np.uint8)
    results = {"cpu (OpenCV)": best_time(lambda: estimate_foreground(image, alpha), repeats, lambda: None)}
    if device.type == "cuda":
        img_t = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255
        alpha_t = torch.from_numpy(alpha).to(device)[None, None].float() / 255
        results[f"{device} (torch)"] = best_time(lambda: estimate_foreground_torch(img_t, alpha_t), repeats,
                                                 synchronizer(device))
    return results


def run(args: argparse.Namespace) -> int:
    from toonmatte.pipeline import PRECISIONS, pick_device, pick_precision

    device = pick_device(args.device)
    precision = pick_precision(args.precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")

    gemm32 = gemm_throughput(device, torch.float32)
    print(f"GEMM 4096^3 fp32: {gemm32 / 1e9:.0f} GFLOP/s")
    gemm_prec = gemm32 if precision == "fp32" else gemm_throughput(device, PRECISIONS[precision])
    if precision != "fp32":
        print(f"GEMM 4096^3 {precision}: {gemm_prec / 1e9:.0f} GFLOP/s")

    if not args.skip_model:
        seconds, peak = bench_model(args, device, precision)
        graph = "tiny test graph" if args.tiny else "ToonOut graph"
        print(f"model forward ({graph}, random weights, {args.batch}x3x{args.size}x{args.size}, {precision}): "
              f"{seconds * 1000:.0f} ms ({seconds * 1000 / args.batch:.0f} ms/image), peak memory {peak / 2**30:.2f} GiB")
        if not args.tiny:
            flop = TOONOUT_FORWARD_FLOP * args.batch * (args.size / 1024) ** 2
            achieved = flop / seconds
            print(f"achieved {achieved / 1e9:.0f} GFLOP/s = {achieved / gemm_prec:.2f} x the {precision} GEMM throughput"
                  f" (forward = {flop / 1e12:.2f} TFLOP)")

    for where, seconds in bench_foreground(device).items():
        print(f"foreground estimation 2048x2048, {where}: {seconds * 1000:.0f} ms")
    return 0
