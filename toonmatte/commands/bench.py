"""``python -m toonmatte bench``: how fast this machine runs the pieces that matter.

For ToonOut's graph (1024x1024 by default), optimized for inference as ``Matter`` runs it:

- fp32 forward time, the FLOP/s it achieves, and their ratio to this machine's fp32 GEMM
  throughput (4096^3 matrix multiplies timed between the forwards of this run, so a busy
  machine weighs on both; the best GEMM is the denominator), and the part of it spent in the
  deformable convolutions;
- peak memory of one forward: on the CPU, the peak RSS of a fresh process that builds the
  model and runs one forward (Python, torch and the weights included) and the
  part the forward adds on top of the loaded model; on CUDA, torch's peak allocation;
- the fast path (``--precision auto``: bf16 where the hardware has it): its forward time,
  its speed-up over fp32 in this run, and how far its matte is from fp32's (mean and max
  |delta alpha| in 8-bit levels, IoU of alpha > 127) on the golden input with the golden
  deterministic weights (``toonmatte.model.golden_fill``; the tiny graph gets seeded random ones), and,
  with ``--golden DIR`` (a folder holding the reference implementation's ``forward.npz``), how far
  fp32 is from the published code's logits;
- with ``--backend onnx``, instead of the above: ONNX Runtime on the model's ONNX export against torch,
  both fp32, forwards alternated in one run, with the peak memory of each (``compare_onnx``);
- foreground estimation at 2048x2048;
- with ``--images DIR``, what a ``predict`` batch costs besides the model (on a GPU, most of it):
  decoding, the cut-out and the PNG encoding per image (with Pillow's defaults for comparison), and
  the batch command's throughput with a ready-made matte standing in for the model.

Each result is printed, and with ``--json PATH`` also written as JSON (the times in seconds,
each derived figure beside the measurements it comes from), for scripts and the docs' tables.
Speed does not depend on the weights' values. Compare ratios, not absolute times, and
run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toonmatte.errors import ToonmatteError

TOONOUT_FORWARD_FLOP = 2.28e12  # one 1024x1024 forward pass of the ToonOut graph


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                        help="the fast path to compare with fp32 (auto: what Matter picks on this device)")
    parser.add_argument("--size", type=int, default=1024, help="model input side (default 1024)")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=2, help="timed forwards per precision after one warm-up")
    parser.add_argument("--tiny", action="store_true", help="bench the tiny test variant instead of ToonOut's graph")
    parser.add_argument("--golden", type=Path, default=None,
                        help="folder with the reference implementation's forward.npz, to compare fp32 with the "
                             "published code's logits (left out when not given)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results to this JSON file (times in seconds)")
    parser.add_argument("--skip-model", action="store_true", help="skip the model (the slow part on a CPU)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--skip-foreground", action="store_true", help="skip foreground estimation")
    parser.add_argument("--images", type=Path,
                        help="folder of images to time predict's CPU stages on, the model taken out")
    parser.add_argument("--batches", type=batch_sizes, default=None,
                        help="batch sizes for the throughput sweep of the fast path, eager and replayed from a "
                             "CUDA graph, e.g. 1,4,8 (default: 1,2,4,8,16 on CUDA, none on the CPU)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the fast path through torch.compile (compiling takes minutes)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                        help="onnx: time ONNX Runtime on the model's ONNX export against torch instead, both fp32, "
                             "alternating in one run, with the peak memory of each")
    parser.add_argument("--onnx", type=Path,
                        help="with --backend onnx, an export of the same graph, weights and size to time (default: "
                             "export one first, which takes minutes)")


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of batch sizes such as 1,4,8")
    return sizes


def synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


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


class Gemm:
    """n x n x n matrix multiplies of one dtype; ``measure`` records FLOP/s, ``best`` is the highest seen."""

    def __init__(self, device: torch.device, dtype: torch.dtype, n: int = 4096) -> None:
        self.a = torch.randn(n, n, device=device).to(dtype)
        self.b = torch.randn(n, n, device=device).to(dtype)
        self.flop = 2 * n ** 3
        self.sync = synchronizer(device)
        self.seen: list[float] = []

    def measure(self) -> float:
        self.seen.append(self.flop / best_time(lambda: torch.mm(self.a, self.b), 2, self.sync))
        return self.seen[-1]

    @property
    def best(self) -> float:
        return max(self.seen)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(tiny: bool, device: torch.device, golden: bool = True) -> torch.nn.Module:
    """ToonOut's graph with the golden deterministic weights (seeded random ones when not ``golden``),
    or the tiny graph with seeded random ones."""
    from toonmatte.model.birefnet import BiRefNetConfig, build_model
    from toonmatte.model.golden_fill import fill_state_dict
    from toonmatte.model.inference import optimize_for_inference

    torch.manual_seed(0)
    net = build_model(BiRefNetConfig.tiny() if tiny else None)
    if golden and not tiny:
        net.load_state_dict(fill_state_dict(net.state_dict()))
    return optimize_for_inference(net).to(device)


def model_input(args: argparse.Namespace, device: torch.device) -> torch.Tensor:
    from toonmatte.model.golden_fill import golden_input

    if not args.tiny:
        x = golden_input(args.size, args.size)
    else:
        x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    return x.expand(args.batch, -1, -1, -1).contiguous().to(device)


def run_forward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, precision: str) -> torch.Tensor:
    """One forward pass as ``Matter`` runs it (inference mode on CUDA, no_grad on the CPU)."""
    from toonmatte.pipeline import PRECISIONS

    grad_off = torch.inference_mode() if x.device.type == "cuda" else torch.no_grad()
    with grad_off, torch.autocast(x.device.type, dtype=PRECISIONS[precision], enabled=precision != "fp32"):
        return net(x).float()


class DeformableTime:
    """Wall time a forward spends inside the decoder's deformable convolutions (offset and
    modulator convolutions included), measured with forward hooks while attached."""

    def __init__(self, net: torch.nn.Module, sync: Callable[[], None]) -> None:
        from toonmatte.model.birefnet import DeformableConv2d
        from toonmatte.model.inference import FusedDeformableConv2d

        self.sync, self.seconds, self._start = sync, 0.0, 0.0
        modules = [m for m in net.modules() if isinstance(m, (DeformableConv2d, FusedDeformableConv2d))]
        self._handles = [m.register_forward_pre_hook(self._enter) for m in modules]
        self._handles += [m.register_forward_hook(self._leave) for m in modules]

    def _enter(self, module: torch.nn.Module, inputs: tuple) -> None:
        self.sync()
        self._start = time.perf_counter()

    def _leave(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.sync()
        self.seconds += time.perf_counter() - self._start

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def time_forward(net: torch.nn.Module, x: torch.Tensor, precision: str, repeats: int,
                 gemm: Gemm) -> tuple[float, float, torch.Tensor]:
    """Best forward time of ``repeats`` after a warm-up, with a GEMM measurement before each one;
    also the time the best run spent in deformable convolutions."""
    sync = synchronizer(x.device)
    logits = run_forward(net, x, precision)
    sync()
    runs = []
    deformable = DeformableTime(net, sync)
    try:
        for _ in range(max(1, repeats)):
            gemm.measure()
            deformable.seconds = 0.0
            start = time.perf_counter()
            logits = run_forward(net, x, precision)
            sync()
            runs.append((time.perf_counter() - start, deformable.seconds))
    finally:
        deformable.close()
    gemm.measure()
    seconds, in_deformable = min(runs)
    return seconds, in_deformable, logits


def agreement(reference: torch.Tensor, fast: torch.Tensor) -> dict[str, float]:
    """How far the fast path's matte is from fp32's, in 8-bit alpha (as ``postprocess`` rounds it)."""
    def alpha(logits: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(logits).mul(255).round().to(torch.int16).cpu().numpy()

    a, b = alpha(reference), alpha(fast)
    delta = np.abs(a - b)
    union = np.logical_or(a > 127, b > 127).sum()
    return {
        "mean_delta": float(delta.mean()),
        "max_delta": int(delta.max()),
        "iou": float(np.logical_and(a > 127, b > 127).sum() / union) if union else 1.0,
        "near_threshold": float((np.abs(a - 127.5) <= 2).mean()),
        "foreground": float((a > 127).mean()),
    }


def golden_file(golden: Path) -> Path:
    """``golden/forward.npz``, or a ToonmatteError saying what ``--golden`` takes."""
    path = golden / "forward.npz"
    if not path.is_file():
        raise ToonmatteError(f"{path} does not exist; --golden takes the folder holding the reference "
                             "implementation's forward.npz.")
    return path


def reference_check(net: torch.nn.Module, golden: Path, device: torch.device) -> dict[str, float]:
    """Largest |logit - reference| of an fp32 forward on this device (golden weights and input) against
    the published code's logits in ``golden/forward.npz`` (256x256 and 384x256; TF32 off)."""
    from toonmatte.model.golden_fill import golden_input

    reference = np.load(golden_file(golden))
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        errors = {}
        for height, width in ((256, 256), (384, 256)):
            logits = run_forward(net, golden_input(height, width).to(device), "fp32").cpu().numpy()
            errors[f"{height}x{width}"] = float(np.abs(logits - reference[f"logits_{height}x{width}"]).max())
        return errors
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def throughput(net: torch.nn.Module, x: torch.Tensor, precision: str, batches: list[int], repeats: int,
               float32_weights: torch.nn.Module | None = None) -> list[dict]:
    """Per batch size: forward time, images per second and peak memory, eager, replayed from a CUDA
    graph of the whole pass (as ``Matter`` runs on CUDA), and with only the backbone replayed from
    graphs (for comparison: what ``Matter`` did before the deformable convolutions could be
    captured); and how far graphs are from eager. ``float32_weights``, the same model before its
    weights were stored in half precision, adds its whole-pass graph for comparison. Returns the rows
    (batch, variant, seconds, images per second, peak bytes on CUDA, max |delta logit| vs eager)."""
    from toonmatte.model.cuda_graphs import GraphedModule

    sync = synchronizer(x.device)
    cuda = x.device.type == "cuda"
    backbone = net.get_submodule("bb")
    rows: list[dict] = []
    print(f"throughput, {precision}, {x.shape[-2]}x{x.shape[-1]} (peak = CUDA peak allocation of that run):")
    if cuda:  # a GPU left idle clocks down; sustained work first, so that small batches are not timed cold
        warm = x[:1].expand(max(batches), -1, -1, -1).contiguous()
        best_time(lambda: run_forward(net, warm, precision), 3, sync)
        del warm
    for batch in batches:
        inputs = x[:1].expand(batch, -1, -1, -1).contiguous()
        reference = run_forward(net, inputs, precision)
        variants = {"eager": lambda t: run_forward(net, t, precision)}
        if cuda:
            whole = GraphedModule(net, max_graphs=1)
            graphed_backbone = GraphedModule(backbone)

            def with_graphed_backbone(t: torch.Tensor, graphed: torch.nn.Module = graphed_backbone) -> torch.Tensor:
                net.bb = graphed
                try:
                    return run_forward(net, t, precision)
                finally:
                    net.bb = backbone

            variants.update({"whole-pass graph": partial(run_forward, whole, precision=precision),
                             "backbone graphs only": with_graphed_backbone})
            if float32_weights is not None:
                whole32 = GraphedModule(float32_weights, max_graphs=1)
                variants["whole-pass graph, float32 weights"] = partial(run_forward, whole32, precision=precision)
        row = []
        for label, forward in variants.items():
            try:
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(x.device)
                seconds = best_time(partial(forward, inputs), repeats, sync)
                measured: dict[str, Any] = {
                    "batch": batch, "variant": label, "seconds": seconds, "images_per_second": batch / seconds,
                    "peak_bytes": torch.cuda.max_memory_allocated(x.device) if cuda else None,
                    "max_delta_logit": None if label == "eager" else (forward(inputs) - reference).abs().max().item()}
                rows.append(measured)
                peak = f", peak {measured['peak_bytes'] / 2**30:.1f} GiB" if cuda else ""
                delta = "" if label == "eager" else f", max |delta logit| vs eager {measured['max_delta_logit']:.1e}"
                rate = measured["images_per_second"]
                row.append(f"{label} {seconds * 1000:.1f} ms = {rate:.1f} images/s{peak}{delta}")
            except RuntimeError as error:  # out of memory, or a graph that cannot be captured
                rows.append({"batch": batch, "variant": label, "failed": str(error).strip().splitlines()[0][:160]})
                row.append(f"{label} failed: {rows[-1]['failed']}")
        print(f"  batch {batch}: " + "; ".join(row))
        del variants, reference
        if cuda:
            torch.cuda.empty_cache()
    return rows


def compiled(net: torch.nn.Module, x: torch.Tensor, precision: str, repeats: int) -> None:
    """Compile time and forward time through ``torch.compile`` (default mode), plain and replayed
    from a CUDA graph, against eager in the same run."""
    from toonmatte.model.cuda_graphs import GraphedForward

    sync = synchronizer(x.device)
    eager = best_time(lambda: run_forward(net, x, precision), repeats, sync)
    start = time.perf_counter()
    net_c = torch.compile(net)
    line = f"torch.compile ({precision}, batch {x.shape[0]}): "
    try:
        reference = run_forward(net, x, precision)
        out = run_forward(net_c, x, precision)
        sync()
        line += f"compiled in {time.perf_counter() - start:.0f} s; "
        seconds = best_time(lambda: run_forward(net_c, x, precision), repeats, sync)
        line += (f"{seconds * 1000:.1f} ms vs eager {eager * 1000:.1f} ms; "
                 f"max |delta logit| vs eager {(out - reference).abs().max().item():.2e}")
        if x.device.type == "cuda":
            graphed = GraphedForward(lambda t: run_forward(net_c, t, precision))
            line += f"; compiled + CUDA graph {best_time(lambda: graphed(x), repeats, sync) * 1000:.1f} ms"
    except Exception as error:  # compilation can fail in many ways; the bench reports it and goes on
        line += f"failed after {time.perf_counter() - start:.0f} s: {str(error).splitlines()[0]}"
    print(line)


def memory_probe(size: int, batch: int, precision: str, tiny: bool, device: str, onnx: str | None = None) -> None:
    """Run in a fresh process: build the optimized model (or open the ``onnx`` export with ONNX Runtime,
    as ``Matter`` does), run one forward, print peak memory as JSON. The process opts into the
    allocator setting as the command line does (``toonmatte.cli``), so its peak is the one a command sees."""
    from toonmatte.model.runtime import keep_freed_memory_on_cpu

    chosen = torch.device(device)
    keep_freed_memory_on_cpu(chosen)
    net: Callable[[torch.Tensor], torch.Tensor]
    if onnx is None:
        net = build(tiny, chosen, golden=False)  # no filled copy of the weights in the peak
    else:
        from toonmatte.model.onnx_backend import OnnxModel, providers_for

        net = OnnxModel(onnx, providers=providers_for(chosen))
    x = torch.randn(batch, 3, size, size, device=chosen)
    before = _rss_bytes()
    if chosen.type == "cuda":
        torch.cuda.reset_peak_memory_stats(chosen)
    run_forward(net, x, precision)
    if chosen.type == "cuda":
        peak, before = torch.cuda.max_memory_allocated(chosen), torch.cuda.memory_allocated(chosen)
    else:
        peak = _peak_rss_bytes()
    print(json.dumps({"peak": peak, "before": before}))


def _peak_rss_bytes() -> int:
    """This process's peak resident set since it started running its program. Linux keeps ``ru_maxrss``
    across ``execve``, so a probe started from a large parent would report the parent's size; the
    memory map's high-water mark (``VmHWM``) starts afresh with the new program."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def peak_memory(args: argparse.Namespace, device: torch.device, precision: str,
                onnx: Path | None = None) -> dict[str, int] | None:
    code = (f"from toonmatte.commands.bench import memory_probe; memory_probe({args.size}, {args.batch}, "
            f"{precision!r}, {args.tiny}, {str(device)!r}, {str(onnx) if onnx else None!r})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"  peak memory ({precision}): the probe process failed: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_foreground(device: torch.device, size: int = 2048, repeats: int = 3) -> dict[str, float]:
    from toonmatte.imaging.foreground import estimate_foreground, estimate_foreground_torch

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (size, size), dtype=np.uint8)
    results = {"cpu (OpenCV + numba)": best_time(lambda: estimate_foreground(image, alpha), repeats, lambda: None)}
    if device.type == "cuda":
        img_t = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255
        alpha_t = torch.from_numpy(alpha).to(device)[None, None].float() / 255
        results[f"{device} (torch)"] = best_time(lambda: estimate_foreground_torch(img_t, alpha_t), repeats,
                                                 synchronizer(device))
    return results


class ReadyMatter:
    """Stands in for ``Matter`` with a matte made without a model (pixels unlike the image's corner
    colour, edges softened), to time what a batch costs besides the forward pass."""

    title = "ready-made mattes"

    def __init__(self) -> None:
        from toonmatte.imaging.imageio import GRAY

        self.background = GRAY

    def predict_batch(self, images: list, batch_size: int = 1) -> list:
        import cv2

        from toonmatte.pipeline import Matte

        mattes = []
        for item in images:
            distance = np.abs(item.rgb.astype(np.int16) - item.rgb[0, 0].astype(np.int16)).sum(axis=2)
            alpha = cv2.GaussianBlur(np.where(distance > 40, 255, 0).astype(np.uint8), (5, 5), 0)
            mattes.append(Matte(alpha, item.rgb, "ready"))
        return mattes


def bench_outputs(folder: Path) -> dict | None:
    """Per image, the median time of each CPU stage of ``predict`` and the PNG sizes against Pillow's; then
    the batch command's rate with the stages overlapped and one after another. None without images."""
    import io
    import tempfile

    from PIL import Image

    from toonmatte.commands.predict import matte_files, save_outputs, unique_stems, writer_threads
    from toonmatte.imaging.foreground import cutout
    from toonmatte.imaging.imageio import collect_inputs, load_image
    from toonmatte.imaging.png import encode_png

    paths = collect_inputs([str(folder)])
    if not paths:
        print(f"batch outputs: no images in {folder}")
        return None

    def pillow(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    stages: dict[str, list[float]] = {"decode": [], "cut-out": [], "PNG encoding": [], "Pillow": []}
    sizes = [0, 0]
    matter = ReadyMatter()
    for path in paths:
        item = load_image(path)
        stages["decode"].append(best_time(partial(load_image, path), 2, lambda: None))
        alpha = matter.predict_batch([item])[0].alpha
        stages["cut-out"].append(best_time(partial(cutout, item.rgb, alpha), 2, lambda: None))
        rgba = cutout(item.rgb, alpha)
        png_both = partial(lambda a, c: (encode_png(a), encode_png(c)), alpha, rgba)
        pillow_both = partial(lambda a, c: (pillow(a), pillow(c)), alpha, rgba)
        stages["PNG encoding"].append(best_time(png_both, 2, lambda: None))
        stages["Pillow"].append(best_time(pillow_both, 1, lambda: None))
        sizes[0] += len(encode_png(alpha)) + len(encode_png(rgba))
        sizes[1] += len(pillow(alpha)) + len(pillow(rgba))
    median = {name: float(np.median(times)) * 1000 for name, times in stages.items()}
    print(f"batch outputs, {len(paths)} images from {folder} (median per image): decode {median['decode']:.0f} ms, "
          f"cut-out {median['cut-out']:.0f} ms, PNG encoding of the alpha and the cut-out "
          f"{median['PNG encoding']:.0f} ms "
          f"(Pillow's defaults: {median['Pillow']:.0f} ms; files {sizes[0] / sizes[1]:.2f} x Pillow's size)")
    jobs = list(zip(paths, unique_stems(paths)))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        for path, stem in jobs:  # the same work, one stage after another
            save_outputs(Path(out), stem, matter.predict_batch([load_image(path)])[0], foreground=True)
        serial = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        matte_files(matter, jobs, Path(out), batch_size=4)
        overlapped = time.perf_counter() - start
    print(f"  predict with the model taken out: {len(jobs) / overlapped:.1f} images/s with the stages overlapped "
          f"({writer_threads()} writer threads), {len(jobs) / serial:.1f} images/s one after another in this run")
    return {"images": len(paths), "median_seconds": {name: value / 1000 for name, value in median.items()},
            "png_bytes": sizes[0], "pillow_bytes": sizes[1], "size_vs_pillow": sizes[0] / sizes[1],
            "overlapped_seconds": overlapped, "serial_seconds": serial,
            "overlapped_images_per_second": len(jobs) / overlapped, "serial_images_per_second": len(jobs) / serial}


def report_memory(args: argparse.Namespace, device: torch.device, precisions: list[str],
                  onnx: Path | None = None) -> dict[str, dict[str, int]]:
    """Peak memory of one forward per precision, in a fresh process each: {label: {"peak", "before"}} in bytes."""
    where = "CUDA peak allocation" if device.type == "cuda" else "peak RSS of a fresh process"
    found = {}
    for precision in precisions:
        memory = peak_memory(args, device, precision, onnx)
        if memory:
            what = f"ONNX Runtime {precision}" if onnx else precision
            found[what] = memory
            print(f"peak memory, one {what} forward ({where}): {memory['peak'] / 2**30:.2f} GiB "
                  f"(before the forward, runtime and weights: {memory['before'] / 2**30:.2f} GiB; the forward adds "
                  f"{(memory['peak'] - memory['before']) / 2**30:.2f} GiB)")
    return found


def compare_onnx(args: argparse.Namespace, device: torch.device, fast: str = "fp32") -> dict:
    """ONNX Runtime on the model's export against torch, both fp32 on ``device``: one warm-up each, then
    ``repeats`` forwards of each, alternated, so that a busy machine weighs on both; peak memory of each
    in a fresh process; how far the two are apart. Exports first (into a temporary folder) unless
    ``--onnx`` names a file. When ``fast`` (the precision ``Matter`` picks on ``device``) is not fp32, torch
    at ``fast`` is alternated too, since that is what ONNX Runtime would replace. Returns the measurements."""
    import tempfile

    from toonmatte.model.onnx_backend import OnnxModel, providers_for
    from toonmatte.model.onnx_export import export_onnx
    from toonmatte.pipeline import model_for_precision

    net = build(args.tiny, torch.device("cpu"))
    x = model_input(args, torch.device("cpu"))
    shape = f"{args.batch}x3x{args.size}x{args.size}"
    with tempfile.TemporaryDirectory() as folder:
        path = args.onnx
        if path is None:
            path = Path(folder) / "model.onnx"
            result = export_onnx(net, path, (args.size, args.size))
            print(f"ONNX export ({'tiny test graph' if args.tiny else 'ToonOut graph'}, {args.size}x{args.size}): "
                  f"{result.seconds:.0f} s, {path.stat().st_size / 2**20:.0f} MB")
        memory = {}
        if not args.skip_memory:
            memory = {**report_memory(args, device, ["fp32"]), **report_memory(args, device, ["fp32"], onnx=path)}
        session = OnnxModel(path, providers=providers_for(device))
        net, x = net.to(device), x.to(device)
        sync = synchronizer(device)
        forwards = {"torch": lambda: run_forward(net, x, "fp32"), "ONNX Runtime": lambda: session(x)}
        if fast != "fp32":
            fast_net = model_for_precision(net, device, fast)
            forwards[f"torch {fast}"] = lambda: run_forward(fast_net, x, fast)
        times: dict[str, list[float]] = {name: [] for name in forwards}
        outputs = {name: forward() for name, forward in forwards.items()}  # the warm-ups
        for _ in range(max(1, args.repeats)):
            for name, forward in forwards.items():
                start = time.perf_counter()
                forward()
                sync()
                times[name].append(time.perf_counter() - start)
    best = {name: min(seconds) for name, seconds in times.items()}
    delta = (outputs["ONNX Runtime"] - outputs["torch"]).abs().max().item()
    print(f"fp32 forward {shape} on {device}, alternated {max(1, args.repeats)} times: "
          + "; ".join(f"{name} {best[name] * 1000:.0f} ms (median {np.median(times[name]) * 1000:.0f})"
                      for name in forwards)
          + f"; ONNX Runtime takes {best['ONNX Runtime'] / best['torch']:.2f} x torch's time"
          + (f" and {best['ONNX Runtime'] / best[f'torch {fast}']:.2f} x torch {fast}'s (Matter's default here)"
             if fast != "fp32" else "")
          + f"; max |delta logit| {delta:.1e}")
    record = {"shape": shape, "seconds": times, "best_seconds": best,
              "onnx_vs_torch_time": best["ONNX Runtime"] / best["torch"], "max_delta_logit": delta, "memory": memory}
    if fast != "fp32":
        record[f"onnx_vs_torch_{fast}_time"] = best["ONNX Runtime"] / best[f"torch {fast}"]
    return record


def run(args: argparse.Namespace) -> int:
    from toonmatte.model.runtime import cpu_supports_bf16
    from toonmatte.pipeline import PRECISIONS, model_for_precision, pick_device, pick_precision

    if args.golden is not None:
        golden_file(args.golden)  # refused now rather than after the timings
    if args.json is not None and not args.json.parent.is_dir():
        raise ToonmatteError(f"The folder of --json {args.json} does not exist; create it or choose another path.")
    device = pick_device(args.device)  # the allocator setting is the command line's (toonmatte.cli), as for predict
    fast = pick_precision(args.precision, device)
    extra = f", bf16 instructions: {'yes' if cpu_supports_bf16() else 'no'}" if device.type == "cpu" else ""
    print(f"device: {device} ({device_name(device)}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{extra}; {time.strftime('%Y-%m-%d %H:%M')}")
    record: dict = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M"),
                    "size": args.size, "batch": args.batch, "graph": "tiny" if args.tiny else "toonout"}

    if not args.skip_model and args.backend == "onnx":
        record["onnx"] = compare_onnx(args, device, fast)
    elif not args.skip_model:
        precisions = ["fp32"] if fast == "fp32" else ["fp32", fast]
        if not args.skip_memory:
            record["memory"] = report_memory(args, device, precisions)
        net = build(args.tiny, device)
        x = model_input(args, device)
        graph = "tiny test graph" if args.tiny else "ToonOut graph"
        weights = "random weights" if args.tiny else "golden deterministic weights"
        shape = f"{args.batch}x3x{args.size}x{args.size}"
        flop = TOONOUT_FORWARD_FLOP * args.batch * (args.size / 1024) ** 2
        results = {}
        record["forward"] = {}
        models = {precision: model_for_precision(net, device, precision) for precision in precisions}  # as Matter
        for precision in precisions:
            gemm = Gemm(device, PRECISIONS[precision])
            seconds, in_deformable, logits = time_forward(models[precision], x, precision, args.repeats, gemm)
            results[precision] = (seconds, logits)
            record["forward"][precision] = {"seconds": seconds, "deformable_seconds": in_deformable,
                                            "deformable_share": in_deformable / seconds,
                                            "gemm_flop_per_second": list(gemm.seen)}
            print(f"{precision} forward ({graph}, {weights}, {shape}): {seconds * 1000:.0f} ms "
                  f"({seconds * 1000 / args.batch:.0f} ms/image); GEMM 4096^3 {precision} in this run: "
                  f"{min(gemm.seen) / 1e9:.0f}-{gemm.best / 1e9:.0f} GFLOP/s")
            print(f"  of which deformable convolutions (offset convolutions included): {in_deformable * 1000:.0f} ms "
                  f"({in_deformable / seconds:.0%})")
            if not args.tiny:
                achieved = flop / seconds
                print(f"  achieved {achieved / 1e9:.0f} GFLOP/s = {achieved / gemm.best:.2f} x the best {precision} "
                      f"GEMM throughput (forward = {flop / 1e12:.2f} TFLOP)")
        checked = None if args.tiny or args.golden is None else reference_check(net, args.golden, device)
        if checked:
            record["reference_max_delta_logit"] = checked
            print(f"fp32 on {device} vs the published code's logits (TF32 off): max |delta logit| "
                  + ", ".join(f"{size}: {error:.1e}" for size, error in checked.items()))
        if fast != "fp32":
            numbers = agreement(results["fp32"][1], results[fast][1])
            record["fast_path"] = {"precision": fast, "speedup": results["fp32"][0] / results[fast][0], **numbers}
            print(f"{fast} fast path: {results['fp32'][0] / results[fast][0]:.2f}x the fp32 speed in this run; "
                  f"matte vs fp32: mean |delta alpha| {numbers['mean_delta']:.3f}/255, max {numbers['max_delta']}/255, "
                  f"IoU(alpha > 127) {numbers['iou']:.4f} (foreground {numbers['foreground']:.1%} of pixels, "
                  f"{numbers['near_threshold']:.1%} within 2 levels of the threshold)")
        batches = args.batches if args.batches is not None else ([1, 2, 4, 8, 16] if device.type == "cuda" else [])
        if batches:
            record["throughput"] = throughput(models[fast], x, fast, batches, max(args.repeats, 3),
                                              float32_weights=net if models[fast] is not net else None)
        if args.compile:
            compiled(models[fast], x, fast, max(args.repeats, 3))

    if not args.skip_foreground:
        record["foreground_seconds"] = bench_foreground(device)
        for where, seconds in record["foreground_seconds"].items():
            print(f"foreground estimation 2048x2048, {where}: {seconds * 1000:.1f} ms")
    if args.images:
        record["outputs"] = bench_outputs(args.images)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        except OSError as error:
            raise ToonmatteError(f"Could not write {args.json} ({error.strerror or error}); "
                                 "choose a writable path for --json.") from None
    return 0
