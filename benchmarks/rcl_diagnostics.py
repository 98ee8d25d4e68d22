"""Why RCL helps on one dataset and hurts on another: what its positives are and how much of the gradient it takes.

    python benchmarks/rcl_diagnostics.py                       # sasrec.rcl-beauty and sasrec.rcl-ml-1m, zoo weights
    python benchmarks/rcl_diagnostics.py --entries sasrec.rcl-ml-1m --batches 20
    python benchmarks/rcl_diagnostics.py --entries sasrec.rcl-ml-1m:sasrec.ce-ml-1m   # the CE model's weights
    python benchmarks/rcl_diagnostics.py --entries sasrec.rcl-ml-1m:sasrec.ce-ml-1m \
        --override objective.rcl.temperature=1 --out rcl_diagnostics_tau1    # another τ (or λ, α) for every entry

For each zoo RCL entry (its recipe's data and objectives, its trained weights, or those of the entry after a colon,
e.g. the CE model the RCL one should improve on) it mines the weak positives as
training does, then over training batches reports:

- coverage: the share of anchors (each window's last position) with a strong positive (another window with the same
  target) and with a weak one (a top-α similar window with another target);
- the miner's similarity s_uc: for the sampled weak positive, and over the anchor's in-batch negatives (the share
  with s > 0 matters: the weighted term's denominator holds only those);
- the trained model's cosine between the anchor and its strong positive, its weak positive and its negatives
  (RCL asks strong > weak > negatives);
- the losses and gradients: CE and λ·RCL, the norm of each one's gradient over the encoder's parameters and the
  cosine between the two gradients (negative: RCL pulls against CE).

Results go to benchmarks/results/rcl_diagnostics.json. The test split is not read.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import yaml
from _common import REPO, machine, use_shared_data, write_json

from lightning_seqrec import hub, run
from lightning_seqrec.batch import trim_padding
from lightning_seqrec.objectives.contrastive import contrastive_logits
from lightning_seqrec.objectives.mining import WeakPositiveMiner
from lightning_seqrec.objectives.view import ModelView
from lightning_seqrec.objectives.windows import encode_windows

KINDS = ("strong", "weak", "negatives")


def quantiles(values: np.ndarray) -> dict:
    """Mean and quartiles of `values` (None when empty)."""
    if len(values) == 0:
        return {"n": 0}
    q = np.percentile(values, [25, 50, 75])
    return {"n": len(values), "mean": float(values.mean()), "q25": float(q[0]), "q50": float(q[1]), "q75": float(q[2])}


def prepare(entry: str, weights: str, overrides: list[str]):
    """The entry's recipe data (set up for fitting), its trained module and its objectives, with weak positives mined
    with `WeakPositiveMiner.table`, as training does on one process."""
    recipe = yaml.safe_load((REPO / "zoo" / "recipes" / f"{entry}.yaml").read_text())["overrides"] + overrides
    cfg = run.compose("train", recipe)
    datamodule = run.build_data(cfg.data)
    module = hub.load(f"local-dir:{REPO / 'zoo' / 'hub' / weights}")
    objectives = run.instantiate_dict(cfg.objective)
    rcl = objectives["rcl"]
    rcl.setup(datamodule)
    miner = WeakPositiveMiner(**rcl.mining)
    tensors = datamodule.train_tensors
    targets = tensors["target_seq"][:, -1].numpy()
    anchors = np.arange(len(targets))
    similarity = miner.similarity(module, tensors, anchors)
    table = miner.table(similarity, targets, anchors, rcl.alpha)
    rcl.set_weak_positives(table, similarity)
    return recipe, datamodule, module, objectives, table


def gradient(module, loss: torch.Tensor) -> torch.Tensor:
    """The gradient of `loss` over the encoder's (backbone's) parameters, flattened."""
    params = [p for p in module.backbone.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    flat = [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params, strict=True)]
    return torch.cat(flat)


def diagnose(spec: str, batches: int, seed: int, overrides: list[str]) -> dict:
    entry, _, weights = spec.partition(":")
    recipe, datamodule, module, objectives, table = prepare(entry, weights or entry, overrides)
    rcl, ce = objectives["rcl"], objectives["ce"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    has_strong, has_weak, weak_s, negative_s, negative_positive = [], [], [], [], []
    cos_strong, cos_weak, cos_negative, rows = [], [], [], []
    view = ModelView(module)
    for index, batch in enumerate(datamodule.train_dataloader()):
        if index == batches:
            break
        batch = trim_padding(batch)
        ids = batch["index"].numpy()
        strong = rcl.strong.sample(ids, rng)
        weak = table.sample(ids, rng)[0]
        has_strong.append(strong >= 0)
        has_weak.append(weak >= 0)
        targets = rcl.targets[ids]
        pairs = rcl.similarity.pairs(ids, ids)
        negatives = (ids[:, None] != ids[None, :]) & (targets[:, None] != targets[None, :])
        negative_s.append(pairs[negatives])
        negative_positive.append(((pairs > 0) & negatives).sum(1) / np.maximum(negatives.sum(1), 1))
        found = weak >= 0
        weak_s.append(rcl.similarity.pairs(ids[found], weak[found])[np.arange(found.sum()), np.arange(found.sum())])

        module.eval()
        with torch.no_grad():  # the trained space, without dropout
            anchors = module(batch)["hidden"][:, -1]
            cos = contrastive_logits(anchors, anchors, 1.0, normalize=True).numpy()
            cos_negative.append(cos[negatives])
            for picked, out in ((strong, cos_strong), (weak, cos_weak)):
                ok = picked >= 0
                if ok.any():
                    other = encode_windows(view, rcl.windows, torch.from_numpy(picked[ok]))
                    out.append(torch.nn.functional.cosine_similarity(anchors[torch.from_numpy(ok)], other).numpy())

        module.train()  # the training pass: dropout on, as the losses see it
        outputs = module(batch)
        ce_loss, rcl_loss = ce(outputs, batch, view), rcl(outputs, batch, view)
        g_ce, g_rcl = gradient(module, ce.weight * ce_loss), gradient(module, rcl.weight * rcl_loss)
        rows.append(
            {
                "ce": ce_loss.item(),
                "rcl": rcl_loss.item(),
                "grad_ce": float(g_ce.norm()),
                "grad_rcl_weighted": float(g_rcl.norm()),
                "grad_cosine": float(torch.nn.functional.cosine_similarity(g_ce, g_rcl, dim=0)),
            }
        )
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    return {
        "entry": entry,
        "weights": weights or entry,
        "recipe": recipe,
        "windows": int(len(rcl.targets)),
        "distinct_targets": int(len(np.unique(rcl.targets))),
        "window_length": quantiles((rcl.windows["item_seq"] > 0).sum(1).numpy().astype(float)),
        "weak_table": {"with_any": float((table.lengths > 0).mean()), "mean_length": float(table.lengths.mean())},
        "rcl": {"weight": rcl.weight, "alpha": rcl.alpha, "temperature": rcl.temperature, "mining": rcl.mining},
        "batches": len(rows),
        "anchors_with_strong": float(np.concatenate(has_strong).mean()),
        "anchors_with_weak": float(np.concatenate(has_weak).mean()),
        "similarity_weak_positive": quantiles(np.concatenate(weak_s)),
        "similarity_negatives": quantiles(np.concatenate(negative_s)),
        "negatives_with_similarity_above_0": float(np.concatenate(negative_positive).mean()),
        "cosine_strong": quantiles(np.concatenate(cos_strong)) if cos_strong else {"n": 0},
        "cosine_weak": quantiles(np.concatenate(cos_weak)) if cos_weak else {"n": 0},
        "cosine_negatives": quantiles(np.concatenate(cos_negative)),
        "losses_and_gradients": mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--entries",
        nargs="+",
        default=[f"sasrec.rcl-{d}{w}" for d in ("beauty", "ml-1m") for w in ("", f":sasrec.ce-{d}")],
        help="RCL zoo entries, each optionally ENTRY:WEIGHTS (another entry's trained weights)",
    )
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--override", action="append", default=[], help="extra override of each recipe (λ, τ...)")
    parser.add_argument("--out", default="rcl_diagnostics", help="results name: benchmarks/results/<out>.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    use_shared_data()
    results = []
    for spec in args.entries:
        result = diagnose(spec, args.batches, args.seed, args.override)
        results.append(result)
        g, cos = result["losses_and_gradients"], {k: result[f"cosine_{k}"].get("mean", math.nan) for k in KINDS}
        weak_s, share = result["similarity_weak_positive"].get("mean", 0), result["negatives_with_similarity_above_0"]
        print(
            f"{spec}: {result['windows']} windows; anchors with a strong positive "
            f"{result['anchors_with_strong']:.1%}, a weak one {result['anchors_with_weak']:.1%}; s(weak) {weak_s:.3f}, "
            f"negatives with s > 0 {share:.1%}; cosine strong {cos['strong']:.3f} weak {cos['weak']:.3f} negatives "
            f"{cos['negatives']:.3f}; CE {g['ce']:.3f}, RCL {g['rcl']:.3f}; |grad| CE {g['grad_ce']:.4f}, "
            f"λ·RCL {g['grad_rcl_weighted']:.4f}, their cosine {g['grad_cosine']:+.3f}",
            flush=True,
        )
    path = write_json(args.out, {"machine": machine(), "args": vars(args), "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
