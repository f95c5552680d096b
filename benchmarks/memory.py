"""Peak training memory of FF learners against back-propagation on the same conv net (issue 15).

One training step of each learner on a ``vgg`` net of ``depth`` stages of ``width`` channels,
or (``--net resnet``) the first ``depth`` basic blocks of ResNet-18 (``ffcl.config.NAMED_NETS``: seeds/004's
net, whose resolution halves where its width doubles), each stage one local block for the FF
learners (3x32x32 inputs, 10 classes, random data: memory does not depend on the values), at each
depth and batch size. On the CPU the step's activation
memory is what autograd saves for the backward pass, counted live through saved-tensor hooks (a
tensor counts once however often it is saved, and stops counting when autograd frees it), plus
the parameters, their gradients and the optimiser's state. On a GPU it is
``torch.cuda.max_memory_allocated`` over the step.

The learners: back-propagation (``bp``, Avalanche's Naive on ``ConvNet``), back-propagation with
activation checkpointing (``bp_checkpoint``: one checkpoint per stage, ``torch.utils.checkpoint``,
the fair baseline), and FF learners on ``ConvFFNet``: ``df`` with its default one backward of the
summed local losses (``fused``: every block's graph alive at once) and block by block
(``blockwise``: one block's graph at a time), ``trifecta`` (overlapping updates: windows of two
blocks), ``sffa`` blockwise, and ``sff`` (no label input: one pass, per-class channels) with one
backward of the summed block losses and blockwise (``sff_blockwise``), and ``df_proto`` (DF's
one-pass form: per-class centroids in place of sff's channels) blockwise. An FF step with the label
as input trains on the positive and its negatives, 1 + K candidates per image (K = 1 here, DF's
default is 4), so its batch is 1 + K times larger.

    python benchmarks/memory.py --out benchmarks/results/memory.json --plot docs/memory_depth.png
    python benchmarks/memory.py --net resnet --out benchmarks/results/memory_resnet.json --plot docs/memory_depth_resnet.png
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

from ffcl.config import NAMED_NETS, load_strategy
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.strategies import build_strategy

LEARNERS = {  # name: (recipe, learner_args)
    "bp": ("naive", {}),
    "bp_checkpoint": ("naive", {}),
    "df_fused": ("df", {"update": "fused", "negatives": "random", "n_negatives": 1, "collaboration": False, "training_scores": False}),
    "df_blockwise": ("df", {"update": "blockwise", "negatives": "random", "n_negatives": 1, "collaboration": False, "training_scores": False}),
    "sffa_blockwise": ("sffa", {"update": "blockwise", "negatives": "random", "training_scores": False}),
    "trifecta": ("trifecta", {}),
    "sff": ("sff", {}),
    "sff_blockwise": ("sff", {"update": "blockwise"}),
    "df_proto_blockwise": ("df_proto", {"update": "blockwise"}),
}
RESNET18 = NAMED_NETS["resnet18"][1]  # ResNet-18's body (ffcl.nn.conv): stride 2 where the width grows


def widths(net: str, depth: int, width: int) -> list[int]:
    """The stage widths of the benchmark net: ``depth`` stages of ``width`` (vgg) or ResNet-18's first ``depth``."""
    if net == "resnet" and depth > len(RESNET18):
        raise SystemExit(f"--net resnet has at most {len(RESNET18)} stages (ResNet-18's body); got depth {depth}")
    return [width] * depth if net == "vgg" else RESNET18[:depth]


class SavedTensors:
    """Live bytes of the tensors autograd saves, and their peak (saved-tensor hooks)."""

    def __init__(self) -> None:
        self.live: dict[int, list[int]] = {}  # storage address -> [references, bytes]
        self.bytes = self.peak = 0

    def _pack(self, t: torch.Tensor) -> object:
        key = t.untyped_storage().data_ptr()
        ref = self.live.setdefault(key, [0, t.untyped_storage().nbytes()])
        if ref[0] == 0:
            self.bytes += ref[1]
            self.peak = max(self.peak, self.bytes)
        ref[0] += 1
        return _Held(t, key, self)

    def _release(self, key: int) -> None:
        ref = self.live[key]
        ref[0] -= 1
        if ref[0] == 0:
            self.bytes -= ref[1]
            del self.live[key]

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda held: held.tensor)


class _Held:
    def __init__(self, tensor: torch.Tensor, key: int, owner: SavedTensors) -> None:
        self.tensor, self.key, self.owner = tensor, key, owner

    def __del__(self) -> None:
        self.owner._release(self.key)


def _state_bytes(strategy) -> dict[str, float]:  # type: ignore[no-untyped-def]
    params = [p for p in strategy.model.parameters() if p.requires_grad]
    mb = 2**20
    state = sum(v.numel() * v.element_size() for s in strategy.optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    return {"params_mb": sum(p.numel() * p.element_size() for p in params) / mb,
            "grads_mb": sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None) / mb,
            "optimizer_mb": state / mb}


def one_step(name: str, net: str, depth: int, width: int, batch: int, device: torch.device) -> dict[str, float]:
    recipe, args = LEARNERS[name]
    cfg = load_strategy(recipe)
    cfg.net, cfg.hidden, cfg.batch_size, cfg.plugins, cfg.stages_per_block = net, widths(net, depth, width), batch, {}, 1
    cfg.learner_args.update(args)
    torch.manual_seed(0)
    strategy = build_strategy(cfg, input_shape=(3, 32, 32), num_classes=10, device=device)
    model = strategy.model.train()
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if hasattr(model, "activate"):
        model.activate(torch.arange(10, device=device))
    if name == "bp_checkpoint":
        stages, head = list(model.features)[:depth], torch.nn.Sequential(*list(model.features)[depth:], model.classifier)
        model = copy.copy(model)

        def forward(inp: torch.Tensor) -> torch.Tensor:
            for stage in stages:
                inp = checkpoint(stage, inp, use_reentrant=True)  # recomputed in backward: only its input is kept
            return head(inp)

        model.forward = forward  # type: ignore[method-assign]
        strategy.model = model
    strategy.mbatch = [x, y, torch.zeros_like(y)]
    strategy.is_training = True  # the training step's forward and loss (outside train(), a template evaluates)
    saved = SavedTensors()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    with saved.hooks():
        strategy.optimizer.zero_grad()
        x.requires_grad_(name == "bp_checkpoint")  # reentrant checkpoints need an input that requires grad
        strategy.mb_output = strategy.forward()
        strategy.loss = strategy.criterion()
        strategy.backward()
        strategy.optimizer_step()
    row = {"learner": name, "depth": depth, "hidden": cfg.hidden, "batch_size": batch, "step_s": time.perf_counter() - t,
           "saved_activations_mb": saved.peak / 2**20, **_state_bytes(strategy)}
    row["total_mb"] = row["saved_activations_mb"] + row["params_mb"] + row["grads_mb"] + row["optimizer_mb"]
    if device.type == "cuda":
        row["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def plot(rows: list[dict], path: Path, key: str, net: str, width: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch_size"] for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for name in LEARNERS:
            pts = sorted((r["depth"], r[key]) for r in rows if r["learner"] == name and r["batch_size"] == b)
            ax.plot(*zip(*pts), marker="o", label=name, linestyle="--" if name.startswith("bp") else "-")
        xlabel = f"conv stages (vgg, {width} channels)" if net == "vgg" else "basic blocks of ResNet-18"
        ax.set(title=f"batch {b}", xlabel=xlabel, ylabel="peak training memory (MiB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", default=",".join(LEARNERS))
    p.add_argument("--depths", default="2,4,8")
    p.add_argument("--batch-sizes", default="64,256")
    p.add_argument("--net", choices=("vgg", "resnet"), default="vgg")
    p.add_argument("--width", type=int, default=64, help="channels per stage of the vgg net")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.json"))
    p.add_argument("--plot", type=Path, help="write memory against depth (PNG)")
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    learners, depths = args.learners.split(","), [int(d) for d in args.depths.split(",")]
    for depth in depths:
        widths(args.net, depth, args.width)
    if args.dry_run:
        return print(check_benchmark(strategies=[LEARNERS[n][0] for n in learners if n in LEARNERS], names={"learner": (learners, LEARNERS)}))
    device = torch.device(args.device)
    key = "cuda_max_allocated_mb" if device.type == "cuda" else "total_mb"
    rows = []
    for batch in map(int, args.batch_sizes.split(",")):
        for depth in depths:
            group = [one_step(name, args.net, depth, args.width, batch, device) for name in learners]
            base = {r["learner"]: r[key] for r in group}
            for r in group:
                r["vs_bp"] = r[key] / base["bp"] if "bp" in base else None
                r["vs_bp_checkpoint"] = r[key] / base["bp_checkpoint"] if "bp_checkpoint" in base else None
                print(f"batch {batch:4d} depth {depth} {r['learner']:15s} {r[key]:8.1f} MiB (activations {r['saved_activations_mb']:7.1f}) "
                      f"x{r['vs_bp'] or 0:.2f} of bp, x{r['vs_bp_checkpoint'] or 0:.2f} of bp_checkpoint", flush=True)
            rows += group
    write_benchmark(args.out, device=str(device), net=args.net, width=args.width if args.net == "vgg" else None,
                    measure=key, rows=rows)
    if args.plot:
        plot(rows, args.plot, key, args.net, args.width)


if __name__ == "__main__":
    main()
