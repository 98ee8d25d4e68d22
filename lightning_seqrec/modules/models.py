"""Thin per-backbone modules: a `SeqRecModule` whose backbone is fixed, made from the registry by `backbone_module`.

Their arguments and defaults are the backbone class's own (the published settings live there and in
`configs/model/*.yaml`), so nothing here repeats them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from lightning_seqrec.backbones import get_backbone
from lightning_seqrec.modules.seqrec import SeqRecModule
from lightning_seqrec.objectives import Objective

_FIXED = ("num_items", "backbone", "backbone_kwargs", "objectives")
"""`SeqRecModule` arguments a per-backbone module sets itself (or takes by name)."""


def _keyword_parameters(function) -> dict[str, inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(function, eval_str=True).parameters
    return {n: p for n, p in parameters.items() if p.kind in kinds and n != "self"}


def backbone_module(name: str, backbone: str, doc: str, **module_defaults) -> type[SeqRecModule]:
    """A `SeqRecModule` subclass `name` with the registered `backbone` fixed.

    Its `__init__(num_items, objectives=None, **kwargs)` gives each keyword to the backbone when the backbone class's
    signature has it, to the module when `SeqRecModule`'s has it, and to both for shared ones (`embedding_dim`,
    `max_len`); defaults are the backbone's, then `module_defaults` (e.g. `scoring="cosine"`), then the module's.
    """
    backbone_params = _keyword_parameters(get_backbone(backbone))
    module_params = {n: p for n, p in _keyword_parameters(SeqRecModule.__init__).items() if n not in _FIXED}
    defaults = {n: p.default for n, p in backbone_params.items() if p.default is not inspect.Parameter.empty}
    defaults.update(module_defaults)
    accepted = list(dict.fromkeys([*backbone_params, *module_params]))

    class Module(SeqRecModule):
        def __init__(self, num_items: int, objectives: Mapping[str, Objective] | None = None, **kwargs):
            unknown = [key for key in kwargs if key not in backbone_params and key not in module_params]
            if unknown:
                raise TypeError(f"{name}() got unexpected keyword argument(s) {unknown}; it takes {accepted}.")
            # every backbone argument, defaults included, is a local here: Lightning saves them in hparams
            kwargs = {**defaults, **kwargs}
            super().__init__(
                num_items,
                backbone=backbone,
                backbone_kwargs={key: kwargs[key] for key in backbone_params if key in kwargs},
                objectives=objectives,
                **{key: value for key, value in kwargs.items() if key in module_params},
            )

    Module.__name__ = Module.__qualname__ = name
    Module.__doc__ = doc
    parameters = [
        inspect.Parameter("num_items", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int),
        inspect.Parameter("objectives", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        *(
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, default=defaults.get(n, p.default))
            for n, p in {**module_params, **backbone_params}.items()
        ),
    ]
    Module.__signature__ = inspect.Signature(parameters)  # what help() and inspect.signature(SASRec) show
    return Module


SASRec = backbone_module(
    "SASRec", "sasrec", "SASRec: causal self-attention over the last `max_len` items (Kang & McAuley, ICDM 2018)."
)
LRURec = backbone_module(
    "LRURec",
    "lru",
    "LRURec: linear recurrent units, a parallel scan in training and O(1) steps at inference (Yue et al., WSDM 2024); "
    "num_heads > 1 gives the multihead LRU of TME-PSR's sub-interests.",
)
TMEPSR = backbone_module(
    "TMEPSR",
    "lru",
    "TME-PSR (our build from the paper's abstract): a multihead LRU whose heads are sub-interests, each item scored by "
    "its best-matching interest, over item embeddings fused with the dual-view gated time encoder (`position` gate). "
    "Explanations come from `lightning_seqrec.explain.Explainer`.",
    num_heads=4,
    interests="max",
    input_encoder="dual_time",
)
GRU4Rec = backbone_module(
    "GRU4Rec", "gru4rec", "GRU4Rec: a recurrent encoder of the session / user sequence (Hidasi et al., ICLR 2016)."
)
LSTMRec = backbone_module(
    "LSTMRec",
    "lstm",
    """LSTM predicting the next item's embedding, matched to items by cosine (Karlis et al., IKEA Retail).

    Pass Word2Vec vectors (`lightning_seqrec.embeddings.word2vec_embeddings`) as `pretrained_embeddings`
    with `freeze_embeddings=True` for the paper's frozen input layer, and train with the embedding losses of
    `lightning_seqrec.objectives.embedding_losses`.
    """,
    scoring="cosine",
    max_len=100,
)
