"""`seqrec export`: a trained model's sequence encoder as ONNX or TorchScript, with the item table, a FAISS index and
the vocabulary beside it, so it can be served without this library.

The graph takes int64 `item_seq [B, L]` (left-padded, 0 = padding, L <= max_len) and, for a model that reads time,
float64 `time_seq [B, L]`, with dynamic B and L; it returns the hidden state at the newest position `[B, H·d]` or
(`output="topk"`) the top-k `scores` and item `indices` (the window's own items masked with `exclude_seen`). The LRU's
recurrence is complex-valued, which ONNX cannot hold, so its graph is a real-arithmetic scan over the real and
imaginary parts kept apart (`RealLRU`), checked against the complex scan by the export's own parity probe.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import faiss
import numpy as np
import safetensors.torch
import torch
from torch import nn
from torch.onnx import symbolic_helper, symbolic_opset9

from lightning_seqrec.backbones.lru import LRUBackbone
from lightning_seqrec.batch import ITEM_SEQ, TIME_SEQ
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.modules.seqrec import check_top_k, evaluating
from lightning_seqrec.retrieval import ItemIndex
from lightning_seqrec.version import __version__

FORMATS = ("onnx", "torchscript")
OUTPUTS = ("hidden", "topk")
GRAPH_FILES = {"onnx": "encoder.onnx", "torchscript": "encoder.pt"}
OPSET = 17
PARITY_TOLERANCE = 1e-4
"""The largest score difference to the PyTorch module an export may have; past it the export is refused."""
BOOL_SCALAR_TYPE = 11
"""torch's ScalarType code of bool, as the ONNX exporter passes dtypes to symbolic functions."""


class RealLRU(nn.Module):
    """The LRU backbone's forward pass in real arithmetic, reading the backbone's own parameters: states kept as
    (real, imaginary) pairs, λ = e^{-e^ν}(cos e^θ + i sin e^θ), and the scan a fixed ⌈log₂ max_len⌉ passes of
    recursive doubling (a pass whose offset reaches past L adds zeros), so one graph serves every L <= max_len."""

    def __init__(self, backbone: LRUBackbone, max_len: int):
        super().__init__()
        self.backbone, self.passes = backbone, max(1, math.ceil(math.log2(max(max_len, 2))))

    def scan(self, real: torch.Tensor, imag: torch.Tensor, lam_real: torch.Tensor, lam_imag: torch.Tensor):
        offset = 1
        for _ in range(self.passes):
            shift_real, shift_imag = (nn.functional.pad(t, (0, 0, 0, 0, offset, 0))[:, :-offset] for t in (real, imag))
            real, imag = (
                real + lam_real * shift_real - lam_imag * shift_imag,
                imag + lam_real * shift_imag + lam_imag * shift_real,
            )
            lam_real, lam_imag = lam_real * lam_real - lam_imag * lam_imag, 2 * lam_real * lam_imag
            offset *= 2
        return real, imag

    def layer(self, lru, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`LRULayer.forward` of `lru` on `x [B, L, d]`: the heads' outputs side by side, `[B, L, H·out_dim]`."""
        x = x.unflatten(-1, (lru.heads, lru.head_dim)) * mask[..., None, None]
        gamma = torch.exp(lru.gamma_log)
        real = torch.einsum("blhd,hsd->blhs", x, lru.in_real) * gamma
        imag = torch.einsum("blhd,hsd->blhs", x, lru.in_imag) * gamma
        modulus, angle = torch.exp(-torch.exp(lru.nu_log)), torch.exp(lru.theta_log)
        real, imag = self.scan(real, imag, modulus * torch.cos(angle), modulus * torch.sin(angle))
        out = torch.einsum("blhs,hos->blho", real, lru.out_real) - torch.einsum("blhs,hos->blho", imag, lru.out_imag)
        return (out + lru.out_bias).flatten(-2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, batch=None) -> torch.Tensor:
        backbone = self.backbone
        x = backbone.input_norm(x)  # eval mode: the input dropout is the identity
        for block in backbone.blocks:
            x = block.finish(self.layer(block.lru, x, mask), x)
        return backbone.combine(x) * mask[..., None]


class EncoderGraph(nn.Module):
    """What is exported: `(item_seq[, time_seq]) -> hidden [B, H·d]`, or `-> (scores [B, k], indices [B, k])` with
    `output="topk"` (item indices 1..N; the window's items get -inf first when `exclude_seen`)."""

    def __init__(self, module, output: str = "hidden", k: int = 10, exclude_seen: bool = True):
        super().__init__()
        if output not in OUTPUTS:
            raise ConfigError(f"output={output!r} is not one of {OUTPUTS}.")
        self.module, self.output, self.k, self.exclude_seen = module, output, check_top_k(k), exclude_seen
        backbone = module.backbone
        self.lru = RealLRU(backbone, module.max_len) if isinstance(backbone, LRUBackbone) else None

    def hidden(self, item_seq: torch.Tensor, time_seq: torch.Tensor | None) -> torch.Tensor:
        module = self.module
        if self.lru is None:
            batch = {ITEM_SEQ: item_seq} if time_seq is None else {ITEM_SEQ: item_seq, TIME_SEQ: time_seq}
            return module(batch)["hidden"][:, -1]
        mask = item_seq > 0
        embeddings = module.item_embedding(item_seq)
        if module.input_encoder is not None:
            embeddings = module.input_encoder(embeddings, mask, {ITEM_SEQ: item_seq, TIME_SEQ: time_seq})
        return self.lru(embeddings, mask)[:, -1]

    def forward(self, item_seq: torch.Tensor, time_seq: torch.Tensor | None = None):
        hidden = self.hidden(item_seq, time_seq)
        if self.output == "hidden":
            return hidden
        scores = self.module.score_hidden(hidden)
        if self.exclude_seen:
            scores = scores.scatter(1, item_seq, float("-inf"))
        return scores.topk(min(self.k, self.module.num_items), dim=1)


def probe_inputs(module, batch: int = 3, length: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Left-padded random histories `item_seq [batch, length]` of different lengths (and increasing `time_seq` for a
    model that reads time): the example the graph is traced with and the probe its parity is measured on."""
    generator = torch.Generator().manual_seed(seed)
    length = length or module.max_len
    items = torch.randint(1, module.num_items + 1, (batch, length), generator=generator)
    real = torch.tensor([max(1, length - 3 * row) for row in range(batch)])
    mask = torch.arange(length)[None, :] >= (length - real)[:, None]
    item_seq = torch.where(mask, items, 0)
    if not module.uses_time:
        return (item_seq,)
    steps = torch.rand(batch, length, generator=generator, dtype=torch.float64) * 3600 + 1
    return item_seq, torch.where(mask, 1.7e9 + steps.cumsum(1), 0.0)


def _bool_eye(g, n, dtype=None, *args):
    """ONNX for `torch.eye(n, dtype=torch.bool)` (SASRec's self-attention mask): onnxruntime has no boolean EyeLike,
    so the identity is made in float and cast; other dtypes go to the exporter's own rule."""
    if symbolic_helper._maybe_get_const(dtype, "i") != BOOL_SCALAR_TYPE:
        return symbolic_opset9.eye(g, n, dtype, *args)
    side = symbolic_helper._unsqueeze_helper(g, n, [0])
    square = g.op("ConstantOfShape", g.op("Concat", side, side, axis_i=0), value_t=torch.tensor([0.0]))
    return g.op("Cast", g.op("EyeLike", square), to_i=torch.onnx.TensorProtoDataType.BOOL)


def model_parts(module) -> str:
    """The backbone (and input encoder) of `module` by name, for messages about what cannot be exported."""
    architecture = module.architecture
    encoder = architecture.get("input_encoder")
    named = f"backbone {architecture['backbone']!r}"
    return named if encoder is None else f"{named} with input encoder {encoder!r}"


def write_graph(graph: EncoderGraph, inputs: tuple[torch.Tensor, ...], fmt: str, path: Path) -> None:
    """Trace `graph` on `inputs` into `path` as ONNX (dynamic batch and length axes) or TorchScript; a model whose
    graph cannot be traced is refused with the reason in one line."""
    names = [ITEM_SEQ, TIME_SEQ][: len(inputs)]
    outputs = ["hidden"] if graph.output == "hidden" else ["scores", "indices"]
    backbone = model_parts(graph.module)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side checks the graph does not need
            if fmt == "onnx":
                torch.onnx.register_custom_op_symbolic("aten::eye", _bool_eye, OPSET)
                axes = {name: {0: "batch", 1: "length"} for name in names} | {name: {0: "batch"} for name in outputs}
                torch.onnx.export(
                    graph,
                    inputs,
                    str(path),
                    input_names=names,
                    output_names=outputs,
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    dynamo=False,
                )
            else:
                graph.module._jit_is_scripting = True  # Lightning's flag: no trainer lookups while tracing
                try:
                    torch.jit.trace(graph, inputs, check_trace=False).save(str(path))
                finally:
                    graph.module._jit_is_scripting = False
    except Exception as err:  # the exporters raise many types; the user needs the backbone and the reason
        reason = " ".join(str(err).split())[:300]
        raise ConfigError(f"{backbone} cannot be exported to {fmt}: {reason}") from err


def run_graph(path: Path, fmt: str, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """The outputs of an exported graph on `inputs`: onnxruntime on CPU for ONNX, torch.jit for TorchScript."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
        return session.run(None, feed)
    with torch.no_grad():
        result = torch.jit.load(str(path))(*inputs)
    return [t.numpy() for t in (result if isinstance(result, tuple) else (result,))]


def export(
    module,
    out: str | Path,
    fmt: str = "onnx",
    output: str = "hidden",
    k: int = 10,
    exclude_seen: bool = True,
    index: str | None = "flat",
) -> dict:
    """Write `module`'s encoder graph (`encoder.onnx` / `encoder.pt`), `items.safetensors` (the item table),
    `items.faiss` (a FAISS index of `index` kind over it; None: none), `vocab.json` and `export.json` (what the
    graph takes and returns, and its measured parity with the PyTorch module) into `out`; returns the manifest."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not one of {FORMATS}.")
    if module.vocab is None:
        raise ConfigError("The module has no item vocabulary: export a trained or loaded model.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    module = module.cpu().float()
    with evaluating(module), torch.no_grad():
        graph = EncoderGraph(module, output, k, exclude_seen).eval()
        example = probe_inputs(module, batch=2)
        write_graph(graph, example, fmt, out / GRAPH_FILES[fmt])
        parity = measure_parity(graph, out / GRAPH_FILES[fmt], fmt)
    if parity["max_abs_score_error"] > PARITY_TOLERANCE or not parity["same_top"]:
        raise ConfigError(
            f"{model_parts(module)} cannot be exported to {fmt} faithfully: the traced graph "
            f"scores differ from PyTorch's by up to {parity['max_abs_score_error']:.2e} (same top-{parity['top']}: "
            f"{parity['same_top']}) on other batch sizes or lengths than the traced one; its forward pass depends on "
            "Python-side values the tracer fixes."
        )
    table = module.item_embedding.weight.detach().contiguous()
    safetensors.torch.save_file({"items": table}, str(out / "items.safetensors"))
    if index is not None:
        metric = "cosine" if module.scoring == "cosine" else "ip"
        faiss.write_index(ItemIndex(table, kind=index, metric=metric).index, str(out / "items.faiss"))
    vocab = {"ids": module.vocab.raw_ids, "titles": module.item_titles}
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    manifest = {
        "format": fmt,
        "graph": GRAPH_FILES[fmt],
        "inputs": {ITEM_SEQ: "int64 [batch, length], left-padded, 0 = padding, length <= max_len"}
        | ({TIME_SEQ: "float64 [batch, length], seconds, 0 at padding"} if module.uses_time else {}),
        "outputs": ["hidden"] if output == "hidden" else ["scores", "indices"],
        "k": k if output == "topk" else None,
        "exclude_seen": exclude_seen if output == "topk" else None,
        "backbone": module.architecture["backbone"],
        "max_len": module.max_len,
        "num_items": module.num_items,
        "num_interests": module.num_interests,
        "scoring": module.scoring,
        "items": "items.safetensors: [num_items + 1, d] float32, row 0 = padding; FAISS id i = item index i + 1",
        "index": None if index is None else f"items.faiss ({index})",
        "parity": parity,
        "library_version": __version__,
    }
    (out / "export.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def reference_scores(module, inputs: tuple[torch.Tensor, ...], exclude_seen: bool) -> torch.Tensor:
    """Scores `[B, N+1]` of the PyTorch module itself (its own backbone forward, the LRU's complex scan included) on
    the graph's inputs, with the window's items at -inf when `exclude_seen`."""
    batch = {ITEM_SEQ: inputs[0]} | ({TIME_SEQ: inputs[1]} if len(inputs) > 1 else {})
    scores = module.score_hidden(module(batch)["hidden"][:, -1])
    return scores.scatter(1, inputs[0], float("-inf")) if exclude_seen else scores


def measure_parity(graph: EncoderGraph, path: Path, fmt: str) -> dict:
    """The exported graph against the PyTorch module on probes of other batch sizes and lengths than the traced
    example: the largest absolute difference of the scores (for `hidden`, its scores against the item table) and
    whether the top-10 (top-k) lists agree."""
    module, worst, same = graph.module, 0.0, True
    top = min(10 if graph.output == "hidden" else graph.k, module.num_items)
    for batch, length in ((5, module.max_len), (3, max(1, module.max_len // 2 + 1)), (1, 1)):
        inputs = probe_inputs(module, batch, length, seed=batch)
        got = run_graph(path, fmt, inputs)
        expected = reference_scores(module, inputs, graph.output == "topk" and graph.exclude_seen).topk(top)
        if graph.output == "hidden":
            got = module.score_hidden(torch.from_numpy(got[0])).topk(top)
            got_scores, got_indices = got.values, got.indices
        else:
            got_scores, got_indices = torch.from_numpy(got[0]), torch.from_numpy(got[1])
        same &= bool((expected.indices == got_indices).all())
        finite = torch.isfinite(expected.values)
        worst = max(worst, float((expected.values[finite] - got_scores[finite]).abs().max()))
    return {"max_abs_score_error": worst, "same_top": same, "top": top}
