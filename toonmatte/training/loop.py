"""The fine-tuning run: ToonOut's recipe on one or many processes through Hugging Face ``accelerate``.

One optimizer step takes ``batch_size`` images on each of the processes, ``grad_accum`` times
(gradients are synchronized on the last micro-batch only), clips the gradient norm and steps
AdamW. The learning rate is halved after each fifth of the epochs (ToonOut: 20/40/60/80 of 100).
After each epoch the model is scored on val with ToonOut's Pixel Accuracy and MAE at the
training size, ``best.safetensors`` is replaced when val PA improved, a resumable state is
saved, and ``metrics.csv``, ``curves.png`` and ``card.json`` are rewritten. A run stopped by
``max_steps`` does the same mid-epoch (its row is replaced once the epoch is finished).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from toonmatte.dataset import describe_missing
from toonmatte.errors import TrainingError, WeightsError
from toonmatte.launch import use_cpu_without_gpu
from toonmatte.model.birefnet import BiRefNet, BiRefNetConfig
from toonmatte.model.weights import file_sha256
from toonmatte.training.augment import Augmentation
from toonmatte.training.checkpoints import latest_checkpoint, read_progress, save_checkpoint
from toonmatte.training.data import (
    EpochBatches,
    TrainingSet,
    ValidationSet,
    check_sizes,
    data_digest,
    single,
    split_items,
)
from toonmatte.training.loss import GRADIENT_WEIGHT, PIXEL_WEIGHTS, matte_loss
from toonmatte.training.records import versions, write_curves, write_json, write_metrics

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)
T = TypeVar("T")

CONFIGS = {"toonout": BiRefNetConfig(), "tiny": BiRefNetConfig.tiny()}
WEIGHTS, CARD, METRICS, PLOT = "best.safetensors", "card.json", "metrics.csv", "curves.png"
CARD_FORMAT = "toonmatte-finetune/1"
LR_HALVINGS = 4  # the rate is halved after each fifth of the run
LR_FACTOR = 0.5


@dataclass(frozen=True)
class Settings:
    """A run's settings; the defaults are ToonOut's recipe (see docs/training.md)."""

    data: Path
    out: Path
    init: str = "toonout"  # "random", a zoo model or a checkpoint file
    config: str | None = None  # the architecture for --init random ("toonout" unless given)
    size: int = 1024
    epochs: int = 100
    batch_size: int = 2  # per process
    grad_accum: int = 1
    max_steps: int | None = None
    lr: float = 1e-5
    weight_decay: float = 1e-2
    clip: float = 100.0
    precision: str = "auto"  # auto = bf16 on CUDA, fp32 elsewhere
    gradient_checkpointing: bool = False
    augment: bool = True
    recomposite: float = 0.0
    seed: int = 0
    workers: int | None = None
    checkpoint_every: int = 0  # optimizer steps between mid-epoch states; 0 = at the end of each epoch only
    log_with: str | None = None


RESUME_KEYS = ("init", "config", "size", "batch_size", "grad_accum", "lr", "weight_decay", "augment", "recomposite",
               "seed")
"""Settings that shape the weights a run reaches: a resumed run must repeat them."""


def lr_milestones(epochs: int) -> list[int]:
    return sorted({round(epochs * k / (LR_HALVINGS + 1)) for k in range(1, LR_HALVINGS + 1)} - {0, epochs})


def pick_precision(precision: str) -> str:
    """accelerate's mixed-precision name: bf16 on CUDA for "auto" (ToonOut trained in bf16; fp16 gave NaN)."""
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return {"bf16": "bf16", "fp32": "no"}[precision]


def default_workers(processes: int) -> int:
    return max(0, min(8, (os.cpu_count() or 1) // max(1, processes) - 1))


# --------------------------------------------------------------------------- data and model


def load_data(settings: Settings, processes: int) -> tuple[list, list]:
    """The train and val items, checked: one sentence for every way they cannot be trained on."""
    train, train_incomplete = split_items(settings.data, "train")
    val, val_incomplete = split_items(settings.data, "val")
    for split, incomplete in (("train", train_incomplete), ("val", val_incomplete)):
        if incomplete:
            log.warning("%d %s item(s) lack an image or a ground truth and are left out: %s", len(incomplete), split,
                        describe_missing(incomplete, limit=5))
    if not train:
        raise TrainingError(f"The train split of {settings.data} has no image with a ground truth (expected "
                            f"train/<generation>/im/<stem>.png and gt/<stem>.png); save corrections in the studio "
                            f"or run `python -m toonmatte split` first.")
    needed = settings.batch_size * processes * settings.grad_accum
    if len(train) < needed:
        raise TrainingError(f"The train split has {len(train)} image(s) but one optimizer step needs {needed} "
                            f"(--batch-size {settings.batch_size} x {processes} process(es) x --grad-accum "
                            f"{settings.grad_accum}); add images or lower --batch-size or --grad-accum.")
    if not val:
        raise TrainingError(f"The val split of {settings.data} has no image with a ground truth, and each epoch is "
                            f"validated on it; run `python -m toonmatte split` to hold some images out.")
    check_sizes(train + val)
    return train, val


def initial_model(settings: Settings) -> tuple[BiRefNet, dict[str, Any]]:
    """The model to start from and a description of it for the card."""
    if settings.init == "random":
        config = CONFIGS[settings.config or "toonout"]
        torch.manual_seed(settings.seed)
        return BiRefNet(config), {"name": "random", "config": settings.config or "toonout"}
    from toonmatte.model.weights import load_weights, local_weights, read_checkpoint, resolve_weights
    from toonmatte.model.zoo import ZOO, get_spec

    spec = get_spec(settings.init)
    path = resolve_weights(spec)
    state, config = read_checkpoint(path, "pass a BiRefNet or ToonOut checkpoint as --init")
    if settings.config is not None and CONFIGS[settings.config] != config:
        raise WeightsError(f"The --init checkpoint {path.name} is not the {settings.config} architecture; drop "
                           f"--config (the checkpoint decides it) or choose another --init.")
    model = BiRefNet(config)
    load_weights(model, state)  # in place
    info: dict[str, Any] = {"name": settings.init, "path": str(path), "sha256": file_sha256(path)}
    if spec.name in ZOO:
        info.update(repo_id=spec.repo_id, licence=spec.licence)
        if local_weights(spec) is None:  # the Hub file, at the pinned revision
            info["revision"] = spec.revision
    return model, info


def freeze_batch_norm(model: nn.Module) -> None:
    """Keep BatchNorm's running statistics fixed: a batch of one image gives no usable batch statistics
    (and none at all after global pooling)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


# --------------------------------------------------------------------------- the run


class Run:
    """One fine-tuning run in ``settings.out``: fresh or resumed from its last complete state."""

    def __init__(self, settings: Settings) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.settings = settings
        use_cpu_without_gpu()
        self.accelerator = accelerator = Accelerator(mixed_precision=pick_precision(settings.precision),
                                                     log_with=settings.log_with, project_dir=str(settings.out))
        self.main = accelerator.is_main_process
        self.processes = accelerator.num_processes
        set_seed(settings.seed)
        self.train_items, self.val_items = load_data(settings, self.processes)
        self.data_hash = data_digest(self.train_items + self.val_items)
        checkpoint = latest_checkpoint(settings.out)
        if checkpoint is None and (settings.out / CARD).is_file():
            raise TrainingError(f"{settings.out} holds a run (card.json) but no state to resume from; choose a new "
                                f"--out or delete that folder.")
        progress = read_progress(checkpoint) if checkpoint is not None else None
        if progress is not None:
            self.check_resumable(progress)
        if progress is None:
            model, init = initial_model(settings)
            progress = self.fresh_progress(model.config, init)
        else:
            model = self.architecture(progress)
        if settings.gradient_checkpointing:
            model.bb.gradient_checkpointing()
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, lr_milestones(settings.epochs), LR_FACTOR)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(self.scheduler)
        self.progress = progress
        if self.main:
            try:
                settings.out.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise TrainingError(f"The run folder {settings.out} cannot be created ({error.strerror}); choose "
                                    f"another --out.") from None
        accelerator.wait_for_everyone()
        if checkpoint is not None:
            try:
                accelerator.load_state(str(checkpoint))
            except Exception as error:  # noqa: BLE001 - a damaged or foreign state: say so in one sentence
                raise TrainingError(f"The saved state {checkpoint} cannot be loaded ({type(error).__name__}); delete "
                                    f"that folder to resume from an earlier one, or choose a new --out.") from None
            log.info("resuming %s from epoch %d, step %d", settings.out, self.progress["epoch"] + 1,
                     self.progress["global_step"])
        self.checkpoint = checkpoint
        self.sampler = EpochBatches(len(self.train_items), settings.batch_size, self.processes,
                                    accelerator.process_index, settings.grad_accum, settings.seed)
        workers = default_workers(self.processes) if settings.workers is None else settings.workers
        augmentation = Augmentation(recomposite=settings.recomposite) if settings.augment else None
        self.loader = DataLoader(TrainingSet(self.train_items, settings.size, augmentation, settings.seed),
                                 batch_sampler=self.sampler, num_workers=workers, persistent_workers=workers > 0,
                                 pin_memory=accelerator.device.type == "cuda",
                                 generator=torch.Generator())  # keeps the global RNG out of the loader's seeding
        self.workers = workers

    # ----------------------------------------------------------------- resuming

    def fresh_progress(self, config: BiRefNetConfig, init: dict[str, Any]) -> dict[str, Any]:
        return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "epoch_sums": empty_sums(), "history": [],
                "best": None, "settings": self.resume_settings(), "architecture": dataclasses.asdict(config),
                "init": init, "data_hash": self.data_hash, "processes": self.processes,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def resume_settings(self) -> dict[str, Any]:
        return {key: getattr(self.settings, key) for key in RESUME_KEYS}

    def check_resumable(self, progress: dict[str, Any]) -> None:
        """One sentence when the saved run and these settings or data disagree."""
        out = self.settings.out
        for key, saved in progress["settings"].items():
            now = getattr(self.settings, key)
            if saved != now:
                flag = "--" + key.replace("_", "-")
                raise TrainingError(f"{out} holds a run with {flag} {saved} (now {now}); resume with the same "
                                    f"settings, or choose a new --out.")
        if progress["processes"] != self.processes:
            raise TrainingError(f"{out} was trained on {progress['processes']} process(es), now {self.processes}; "
                                f"resume on as many (the data order depends on it), or choose a new --out.")
        if progress["data_hash"] != self.data_hash:
            raise TrainingError(f"The dataset {self.settings.data} changed since {out} was started; resume on the "
                                f"same data, or start a new run in a new --out.")

    @staticmethod
    def architecture(progress: dict[str, Any]) -> BiRefNet:
        fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value  # JSON made tuples lists
                                  for key, value in progress["architecture"].items()}
        return BiRefNet(BiRefNetConfig(**fields))

    # ----------------------------------------------------------------- training

    def train(self) -> dict[str, Any]:
        """Train until ``epochs`` or ``max_steps``; returns the progress (history, best)."""
        settings, progress = self.settings, self.progress
        if settings.log_with:
            self.accelerator.init_trackers("toonmatte-finetune", config=card_settings(settings))
        steps_per_epoch = self.sampler.steps_per_epoch
        if progress["epoch"] >= settings.epochs or self.step_limit_reached():
            self.accelerator.print(f"{settings.out} has trained {progress['epoch']} epoch(s), "
                                   f"{progress['global_step']} step(s) already; "
                                   "raise --epochs or --max-steps to go on.")
        while progress["epoch"] < settings.epochs and not self.step_limit_reached():
            stopped = self.train_epoch(steps_per_epoch)
            self.end_epoch(steps_per_epoch)
            if stopped:
                break
        if not (settings.out / WEIGHTS).is_file():  # --max-steps 0: still a complete run folder
            self.end_epoch(steps_per_epoch)
        self.accelerator.end_training()
        return progress

    def step_limit_reached(self) -> bool:
        return self.settings.max_steps is not None and self.progress["global_step"] >= self.settings.max_steps

    def train_epoch(self, steps_per_epoch: int) -> bool:
        """Optimizer steps until the epoch ends (False) or ``max_steps`` is reached (True)."""
        accelerator, settings, progress = self.accelerator, self.settings, self.progress
        epoch, start = progress["epoch"], progress["step_in_epoch"]
        self.sampler.epoch, self.sampler.start_step = epoch, start
        self.model.train()
        if settings.batch_size == 1:
            freeze_batch_norm(self.model)
        sums = progress["epoch_sums"]
        images_per_step = settings.batch_size * self.processes * settings.grad_accum
        with tqdm(total=steps_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="step",
                  disable=not accelerator.is_local_main_process, dynamic_ncols=True) as bar:
            batches = iter(self.loader)
            began = time.perf_counter()
            for step in range(start, steps_per_epoch):
                parts = self.optimizer_step(batches)
                progress["global_step"] += 1
                progress["step_in_epoch"] = step + 1
                for key, value in parts.items():
                    sums[key] += value
                sums["steps"] += 1
                sums["images"] += images_per_step
                sums["seconds"] += time.perf_counter() - began
                began = time.perf_counter()
                bar.update(1)
                bar.set_postfix(loss=f"{sums['total'] / sums['steps']:.4f}",
                                img_s=f"{sums['images'] / max(sums['seconds'], 1e-9):.2f}")
                if self.step_limit_reached() and step + 1 < steps_per_epoch:
                    return True
                every = settings.checkpoint_every
                if every and progress["global_step"] % every == 0 and step + 1 < steps_per_epoch:
                    self.checkpoint = save_checkpoint(accelerator, settings.out, progress["global_step"], progress)
        return False

    def optimizer_step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches; the step's mean losses over all processes."""
        accelerator, settings = self.accelerator, self.settings
        totals = torch.zeros(3, device=accelerator.device)
        try:
            for micro in range(settings.grad_accum):
                image, gt = next_batch(batches)
                image = image.to(accelerator.device, non_blocking=True)
                gt = gt.to(accelerator.device, non_blocking=True)
                last = micro == settings.grad_accum - 1
                with nullcontext() if last else accelerator.no_sync(self.model):
                    logits, heads = self.model(image, supervision=True)
                    loss, parts = matte_loss(logits, heads, image, gt)
                    accelerator.backward(loss / settings.grad_accum)
                totals += torch.stack([loss.detach(), parts["pixel"], parts["gradient"]]) / settings.grad_accum
            accelerator.clip_grad_norm_(self.model.parameters(), settings.clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        except torch.OutOfMemoryError:
            raise TrainingError(f"The GPU ran out of memory at --size {settings.size} with --batch-size "
                                f"{settings.batch_size}; lower --batch-size (raise --grad-accum to keep the "
                                f"effective batch), add --gradient-checkpointing, or use a larger GPU.") from None
        total, pixel, gradient = accelerator.reduce(totals, reduction="mean").tolist()
        if not math.isfinite(total):
            raise TrainingError(f"The training loss became {total} at step {self.progress['global_step'] + 1}; "
                                f"lower --lr, or train in bf16 or fp32 rather than fp16.")
        return {"total": total, "pixel": pixel, "gradient": gradient}

    # ----------------------------------------------------------------- end of an epoch (or of a stopped run)

    def end_epoch(self, steps_per_epoch: int) -> None:
        accelerator, settings, progress = self.accelerator, self.settings, self.progress
        finished = progress["step_in_epoch"] == steps_per_epoch
        epoch = progress["epoch"] + 1  # 1-based, as shown
        sums = progress["epoch_sums"]
        val_pa, val_mae = self.validate()
        steps = sums["steps"]
        row = {"epoch": epoch, "step": progress["global_step"],
               "train_loss": sums["total"] / steps if steps else None,
               "pixel_loss": sums["pixel"] / steps if steps else None,
               "gradient_loss": sums["gradient"] / steps if steps else None,
               "val_pa": val_pa, "val_mae": val_mae, "lr": self.optimizer.param_groups[0]["lr"],
               "images_per_s": sums["images"] / sums["seconds"] if sums["seconds"] else 0.0,
               "seconds": sums["seconds"]}
        progress["history"] = [r for r in progress["history"] if r["epoch"] != epoch] + [row]
        if finished:
            self.scheduler.step()
            progress["epoch"] += 1
            progress["step_in_epoch"] = 0
            progress["epoch_sums"] = empty_sums()
        best = progress["best"]
        improved = best is None or val_pa > best["val_pa"] or not (settings.out / WEIGHTS).is_file()
        if improved:
            state = accelerator.get_state_dict(self.model)  # on every process: gathering it can be collective
            if self.main:
                progress["best"] = {"epoch": epoch, "step": progress["global_step"], "val_pa": val_pa,
                                    "val_mae": val_mae}
                self.save_weights(state)
                progress["best"]["weights_sha256"] = file_sha256(settings.out / WEIGHTS)
        progress["best"] = broadcast(accelerator, progress["best"])
        self.checkpoint = save_checkpoint(accelerator, settings.out, progress["global_step"], progress)
        if self.main:
            write_metrics(settings.out / METRICS, progress["history"])
            write_curves(settings.out / PLOT, progress["history"])
            write_json(settings.out / CARD, self.card())
        if settings.log_with:
            accelerator.log({k: v for k, v in row.items() if v is not None and k != "step"},
                            step=progress["global_step"])
        loss = "-" if row["train_loss"] is None else f"{row['train_loss']:.4f}"
        accelerator.print(f"epoch {epoch}: train loss {loss}, val PA {val_pa:.4f}, "
                          f"val MAE {val_mae:.4f}{' (best so far)' if improved else ''}"
                          + ("" if finished else f"; stopped at step {progress['global_step']} (--max-steps)"))

    def validate(self) -> tuple[float, float]:
        """Mean Pixel Accuracy and MAE over val (each process scores its share), as at inference."""
        from accelerate.utils import gather_object

        from toonmatte.evaluation.metrics import mae, pixel_accuracy
        from toonmatte.pipeline import postprocess

        accelerator = self.accelerator
        net = accelerator.unwrap_model(self.model)  # no DDP: processes may hold unequal shares
        net.eval()
        shard = self.val_items[accelerator.process_index::self.processes]
        loader = DataLoader(ValidationSet(shard, self.settings.size), batch_size=1, collate_fn=single,
                            num_workers=min(self.workers, 2), generator=torch.Generator())  # RNG untouched
        scores = []
        batches = iter(loader)
        with torch.no_grad():
            for _ in tqdm(range(len(shard)), desc="validating", unit="image", leave=False,
                          disable=not accelerator.is_local_main_process):
                image, gt = next_batch(batches)
                alpha = postprocess(net(image[None].to(accelerator.device))[0], gt.shape)
                scores.append((pixel_accuracy(alpha, gt), mae(alpha, gt)))
        scores = gather_object(scores)
        return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))

    def save_weights(self, state: dict[str, torch.Tensor]) -> None:
        """``best.safetensors``: the plain state dict (no prefixes), float32, written then renamed into place."""
        from safetensors.torch import save_file

        target = self.settings.out / WEIGHTS
        temporary = target.with_name(f".{target.name}.tmp")
        save_file({key: tensor.detach().float().cpu().contiguous() if tensor.is_floating_point()
                   else tensor.detach().cpu().contiguous() for key, tensor in state.items()},
                  str(temporary), metadata={"format": "pt", "producer": "toonmatte finetune"})
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # as readable as any model file
        os.replace(temporary, target)

    def card(self) -> dict[str, Any]:
        progress, settings = self.progress, self.settings
        return {
            "format": CARD_FORMAT,
            "weights": WEIGHTS,
            "weights_sha256": (progress["best"] or {}).get("weights_sha256"),
            "architecture": progress["architecture"],
            "init": progress["init"],
            "data": {"root": str(settings.data), "hash": progress["data_hash"],
                     "counts": {"train": len(self.train_items), "val": len(self.val_items)}},
            "training": {**card_settings(settings), "processes": self.processes,
                         "effective_batch": settings.batch_size * self.processes * settings.grad_accum,
                         "steps_per_epoch": self.sampler.steps_per_epoch,
                         "precision": self.accelerator.mixed_precision, "device": self.accelerator.device.type},
            "epochs_completed": progress["epoch"],
            "steps": progress["global_step"],
            "best": progress["best"],
            "metrics": progress["history"],
            "versions": versions(),
            "created": progress["created"],
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


def card_settings(settings: Settings) -> dict[str, Any]:
    """The recipe as recorded in the card and sent to a tracker."""
    return {"size": settings.size, "epochs": settings.epochs, "batch_size": settings.batch_size,
            "grad_accum": settings.grad_accum, "optimizer": "AdamW", "lr": settings.lr,
            "weight_decay": settings.weight_decay, "lr_milestones": lr_milestones(settings.epochs),
            "lr_factor": LR_FACTOR, "grad_clip": settings.clip,
            "loss": {**PIXEL_WEIGHTS, "gradient_bce": GRADIENT_WEIGHT},
            "augment": settings.augment, "recomposite": settings.recomposite,
            "gradient_checkpointing": settings.gradient_checkpointing, "seed": settings.seed}


def next_batch(batches: Iterator[T]) -> T:
    """The next batch; a TrainingError raised in a loader worker comes back as its own sentence (torch re-raises
    it with the worker's traceback in its text)."""
    try:
        return next(batches)
    except TrainingError as error:
        text = str(error).strip()
        if "Original Traceback" not in text:
            raise
        raise TrainingError(text.splitlines()[-1].split("TrainingError: ", 1)[-1]) from None


def empty_sums() -> dict[str, float]:
    return {"total": 0.0, "pixel": 0.0, "gradient": 0.0, "steps": 0, "images": 0, "seconds": 0.0}


def broadcast(accelerator: Accelerator, value: Any) -> Any:
    """The main process's ``value`` on every process."""
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0] if accelerator.num_processes > 1 else value


def finetune(settings: Settings) -> dict[str, Any]:
    """Run (or resume) a fine-tune; a kill or Ctrl-C becomes one sentence saying where it will resume."""
    run = None
    try:
        run = Run(settings)
        return run.train()
    except OSError as error:  # a full disk, a dataset file gone: what was saved is whole
        where = f" ({error.filename})" if error.filename else ""
        raise TrainingError(f"Fine-tuning stopped: {error.strerror or error}{where}; the last complete state in "
                            f"{settings.out} is kept, and the same command resumes from it.") from None
    except KeyboardInterrupt:
        if run is None:
            raise TrainingError("Fine-tuning was stopped before training began; nothing was saved.") from None
        where = ("from scratch" if run.checkpoint is None
                 else f"from the state saved at step {read_progress(run.checkpoint)['global_step']}")
        raise TrainingError(f"Fine-tuning was stopped at epoch {run.progress['epoch'] + 1}, step "
                            f"{run.progress['global_step']}; the same command resumes {where}.") from None
