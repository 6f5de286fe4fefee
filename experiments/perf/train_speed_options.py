"""Trained tokens/s of SmolLM2-135M under cj2's training-speed options, interleaved in one process.

Setting (issue "Speed, so that more learning fits the budget"): the embedded SmolLM2-135M-Instruct
(``cj2.models.load_model("smollm2_135m")``, fp32 master weights, sdpa), bf16 autocast (Lightning's
``bf16-mixed``), :class:`cj2.module.JudgeModule`'s loss (``conf/loss/margin.yaml``, ``impl=chunked``), AdamW
(lr 0: the full update is computed, the weights stay put), batches of 8 built-in judge samples
(length-grouped, about 256 tokens each; ``--length``). Options:

* ``today``: the chunked CE's three matmuls in fp32 under autocast (the path before this change; emulated
  by making :func:`cj2.losses.chunked._matmul_dtype` return fp32);
* ``bf16 CE``: the chunked CE's matmuls in bf16 under bf16 autocast, softmax in fp32 (the new default);
* ``top 10`` / ``top 6``: ``bf16 CE`` plus ``model.trainable_layers=10`` / ``6`` (of 30):
  :func:`cj2.models.freeze_bottom_layers`; SmolLM2 ties its embeddings to the output layer, so the output
  layer is frozen too and the CE computes no weight gradient;
* ``LoRA``: ``bf16 CE`` plus ``+model/peft=lora`` (``conf/model/peft/lora.yaml``: r 16, all linear layers of
  the decoder; a copy of the model).

Every option trains the same ``--steps`` batches per run; the runs are interleaved, ``--rounds`` rounds with
the order rotated each round, after one untimed warm-up step per option on two of the samples (thread
pools, allocator, AdamW state). Each option keeps its own AdamW; with lr 0 all options see the same weights,
so their losses are comparable (``today`` and ``bf16 CE`` must agree to bf16 rounding). Throughput =
real (non-padding) tokens of the batches / wall time of the
steps (forward, backward, optimizer step). The load average is printed: on a shared machine the ratios are
only as good as the load was steady. The verdict logits are fp32 in every option (cj2.losses.verdict).

Run: ``python experiments/perf/train_speed_options.py`` (about 4 minutes on 2 idle CPU cores);
``--steps``, ``--rounds`` trade time for precision; ``--device cuda`` on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {  # name: (label, chunked matmuls in fp32, trainable_layers, LoRA)
    "today": ("today: bf16-mixed, fp32 chunked-CE matmuls", True, None, False),
    "bf16_ce": ("bf16 chunked-CE matmuls", False, None, False),
    "top10": ("bf16 CE + trainable_layers=10", False, 10, False),
    "top6": ("bf16 CE + trainable_layers=6", False, 6, False),
    "lora": ("bf16 CE + LoRA r=16 all-linear", False, None, True),
}


def build_batches(tokenizer, steps: int, batch_size: int, length: int, seed: int) -> list[list]:
    """``steps`` batches of ``batch_size`` built-in judge samples, length-grouped, closest to
    ``length`` tokens."""
    from cj2.data.collator import encode_record
    from cj2.data.datamodule import JudgeDataModule

    n = max(64, 4 * steps * batch_size)
    records = JudgeDataModule(tokenizer, builtin={"n_train": n, "n_val": 0, "seed": seed}).train_records()
    samples = sorted(
        (encode_record(r, tokenizer, max_length=4096, need_verdict_tokens=True) for r in records), key=len
    )
    groups = [samples[i : i + batch_size] for i in range(0, len(samples) - batch_size + 1, batch_size)]
    groups.sort(key=lambda g: abs(statistics.mean(len(s) for s in g) - length))
    if len(groups) < steps:
        raise ValueError(f"only {len(groups)} batches of {batch_size} from {len(samples)} samples")
    return groups[:steps]


@contextlib.contextmanager
def fp32_chunked_matmuls(on: bool):
    """The chunked CE as it was before bf16 matmuls: its three matmuls in the compute dtype (fp32)."""
    from cj2.losses import chunked

    if not on:
        yield
        return
    original = chunked._matmul_dtype
    chunked._matmul_dtype = lambda hidden, weight: chunked._compute_dtype(hidden.dtype, weight.dtype)
    try:
        yield
    finally:
        chunked._matmul_dtype = original


def _machine(device: str) -> str:
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name()}"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    p.add_argument("--steps", type=int, default=2, help="timed optimizer steps per run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each runs every option once)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--length", type=int, default=256, help="target mean tokens per sample")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))

    import torch
    from omegaconf import OmegaConf

    from cj2.data.collator import JudgeCollator
    from cj2.models import EMBEDDED, apply_peft, freeze_bottom_layers, load_model, load_tokenizer
    from cj2.module import JudgeModule

    if args.threads:
        torch.set_num_threads(args.threads)
    # freeze_bottom_layers warns on every call that SmolLM2's tied lm_head is frozen too (see the docstring)
    logging.getLogger("cj2.models.loading").setLevel(logging.ERROR)
    device = torch.device(args.device)
    started = time.perf_counter()
    print(f"machine: {_machine(args.device)}")
    print(f"load average at start: {os.getloadavg()}")
    tokenizer = load_tokenizer(EMBEDDED)
    model = (
        load_model(EMBEDDED, dtype="float32", attn_implementation="sdpa", tokenizer=tokenizer)
        .to(device)
        .train()
    )
    loss_cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "cj2" / "conf" / "loss" / "margin.yaml"))
    loss_cfg["impl"] = "chunked"
    collate = JudgeCollator(tokenizer.pad_token_id)
    groups = build_batches(tokenizer, args.steps, args.batch_size, args.length, args.seed)
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in collate(g).items()} for g in groups]
    real_tokens = sum(len(s) for g in groups for s in g)
    lengths = [len(s) for g in groups for s in g]
    print(
        f"{args.steps} steps x {args.batch_size} samples per run, {real_tokens} real tokens per run "
        f"(sample lengths {min(lengths)}-{max(lengths)}, mean {statistics.mean(lengths):.0f}; padding "
        f"{1 - real_tokens / sum(b['input_ids'].numel() for b in batches):.1%}); loss: {loss_cfg}"
    )

    lora_model = None
    if any(OPTIONS[o][3] for o in args.options):
        peft_cfg = OmegaConf.to_container(
            OmegaConf.load(ROOT / "cj2" / "conf" / "model" / "peft" / "lora.yaml")
        )
        lora_model = apply_peft(copy.deepcopy(model), peft_cfg).train()
    optimizers: dict[str, torch.optim.Optimizer] = {}
    modules: dict[str, JudgeModule] = {}

    def configure(option: str) -> JudgeModule:
        """Set requires_grad for ``option`` (the shared model: all trainable, then freeze) and return
        its module."""
        _, _, n_top, lora = OPTIONS[option]
        if lora:
            target = lora_model
        else:
            target = model
            for param in model.parameters():
                param.requires_grad_(True)
            freeze_bottom_layers(model, n_top)
        if option not in modules:
            modules[option] = JudgeModule(target, loss_cfg)
            optimizers[option] = torch.optim.AdamW(
                [p for p in target.parameters() if p.requires_grad], lr=0.0, weight_decay=0.0
            )
        return modules[option]

    autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def step(option: str, module: JudgeModule, batch: dict) -> float:
        with fp32_chunked_matmuls(OPTIONS[option][1]), autocast:
            loss = module.compute_loss(batch, exact_step_norm=False)["loss"]
        loss.backward()
        optimizers[option].step()
        optimizers[option].zero_grad(set_to_none=True)
        return loss.item()

    trainable = {}
    warmup = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate(groups[0][:2]).items()}
    for option in args.options:  # untimed warm-up: one step per option on two samples
        module = configure(option)
        trainable[option] = sum(
            p.numel() for p in {id(p): p for p in module.model.parameters()}.values() if p.requires_grad
        )
        step(option, module, warmup)
    tps: dict[str, list[float]] = {o: [] for o in args.options}
    for r in range(args.rounds):
        order = args.options[r % len(args.options) :] + args.options[: r % len(args.options)]
        for option in order:
            module = configure(option)
            seconds, losses = 0.0, []
            for batch in batches:
                start = time.perf_counter()
                losses.append(step(option, module, batch))
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds += time.perf_counter() - start
            tps[option].append(real_tokens / seconds)
            print(
                f"  round {r} {option:8s}: {real_tokens / seconds:7.1f} tokens/s ({seconds:5.1f} s, loss "
                f"{losses[0]:.5f}, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )

    wall = time.perf_counter() - started
    print(f"\nload average at end: {os.getloadavg()}; wall time {wall:.0f} s")
    base = statistics.median(tps["today"]) if "today" in tps else None
    print(
        "\n| option | trainable params | trained tokens/s (median) | spread (min-max) | vs today |"
        "\n|---|---:|---:|---:|---:|"
    )
    for option in args.options:
        values = tps[option]
        med = statistics.median(values)
        ratio = f"**{med / base:.2f}x**" if base else "n/a"
        if base and "today" in tps:
            per_round = [v / t for v, t in zip(values, tps["today"])]
            ratio += f" ({min(per_round):.2f}-{max(per_round):.2f})"
        print(
            f"| {OPTIONS[option][0]} | {trainable[option] / 1e6:.1f} M | {med:.0f} | {min(values):.0f}-"
            f"{max(values):.0f} | {ratio} |"
        )
    print(
        f"\n{args.rounds} rounds x {args.steps} steps x batch {args.batch_size}, bf16 autocast, sdpa, "
        f"device {args.device}; 'vs today': ratio of medians (per-round ratios in brackets)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
