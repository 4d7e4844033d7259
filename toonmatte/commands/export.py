"""``python -m toonmatte export onnx --out FILE``: the inference graph as an ONNX file; or
``python -m toonmatte export ROOT --to-hub OWNER/NAME``: a dataset published on the Hub
(``toonmatte.commands.publish_dataset``).

The file takes ``image`` (N x 3 x H x W float32, normalized) and gives ``logits`` (N x 1 x H x W);
N is dynamic. Before the file is moved into place it is checked with ``onnx.checker`` and run with
ONNX Runtime against the torch model on the golden input; the command prints how far apart they are.
See ``toonmatte.model.onnx_export``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from toonmatte.errors import ToonmatteError
from toonmatte.model.zoo import DEFAULT_MODEL, ZOO, get_spec

FORMATS = ("onnx",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from toonmatte.commands import publish_dataset
    from toonmatte.model.onnx_export import DEFAULT_OPSET, PRECISIONS

    parser.add_argument("format", metavar="onnx|ROOT",
                        help="onnx: the model's graph; or a dataset folder to publish with --to-hub")
    parser.add_argument("--out", type=Path, help="with onnx: the file to write (replaced atomically)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"the model whose graph and default size to use: {', '.join(ZOO)} "
                             f"(default {DEFAULT_MODEL})")
    parser.add_argument("--weights", help="checkpoint file of the ToonOut/BiRefNet architecture (.pth or .safetensors) "
                                          "instead of the Hugging Face Hub (also $TOONMATTE_WEIGHTS)")
    parser.add_argument("--size", type=size_argument,
                        help="input height x width, multiples of 32, such as 1024x1024 (default: the model's own)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32, or fp16 weights and activations for GPUs (input and output stay float32)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    publish_dataset.add_arguments(parser)


def size_argument(text: str) -> tuple[int, int]:
    """``"1024x768"`` (height x width) or ``"1024"`` -> (height, width), both multiples of 32."""
    parts = text.lower().split("x")
    sizes = [int(part) for part in parts if part.strip().isdigit()]
    if len(sizes) != len(parts) or len(sizes) not in (1, 2) or any(size < 32 or size % 32 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1024x1024 (height x width, multiples of 32)")
    return sizes[0], sizes[-1]


def run(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        from toonmatte.commands import publish_dataset

        return publish_dataset.run(args, args.format)
    if args.out is None:
        raise ToonmatteError("export onnx writes a file: add --out FILE.")
    from toonmatte.model.onnx_export import export_onnx
    from toonmatte.pipeline import Matter

    spec = get_spec(args.model)
    if args.size is not None:
        size = args.size
    elif spec.resolution is not None:
        size = (spec.resolution, spec.resolution)
    else:
        raise ToonmatteError(f"{spec.title} runs at each image's own size; pass --size HxW.")
    matter = Matter(args.model, weights=args.weights, device="cpu", precision="fp32", allow_fallback=False)
    net, weights_path = matter.torch_model, matter.weights_path
    assert net is not None and weights_path is not None  # the torch backend, and no fallback allowed
    result = export_onnx(net, args.out, size, precision=args.precision, opset=args.opset, source=weights_path.name)
    megabytes = result.path.stat().st_size / 2**20
    print(f"wrote {result.path} ({megabytes:.0f} MB; {args.precision}, opset {args.opset}; input image Nx3x"
          f"{size[0]}x{size[1]}, output logits Nx1x{size[0]}x{size[1]}) in {result.seconds:.0f} s; "
          f"ONNX Runtime vs torch on the golden input: max |logit delta| {result.max_delta:.1e}")
    return 0
