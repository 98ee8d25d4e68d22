"""Input encoders: modules between the item embedding and the backbone that add to each item's vector what its ID
alone does not say (when it happened, for the dual-view time encoder), so any backbone can use them unchanged.

The input-encoder protocol
--------------------------
    forward(embeddings [B, L, d], mask [B, L], batch) -> embeddings [B, L, d]

`embeddings` are the item embeddings of `batch["item_seq"]` (left-padded), `mask` is True at real items. The output
at position t may depend on events 1..t only (causal), must not depend on how much padding precedes the items, and
is what the backbone reads. An encoder that reads `batch["time_seq"]` sets the class attribute `uses_time = True`.
Optional, so that `SeqRecModule.step_state` can fold one event into a user's state in O(1):

    init_state(batch_size) -> state
    step(state, embedding [B, d], timestamp [B] | None) -> (state, embedding [B, d])

The constructor takes `embedding_dim` (the module passes its own) and keyword arguments with defaults.
A `SeqRecModule(input_encoder="name", input_encoder_kwargs={...})` builds a registered encoder by name (registered
with `register_input_encoder`; plugins as for backbones, entry-point group `lightning_seqrec.input_encoders`).
"""

from __future__ import annotations

from lightning_seqrec.registry import Registry

INPUT_ENCODERS = Registry("input encoder", "lightning_seqrec.input_encoders")


def register_input_encoder(name: str):
    """Class decorator: make an input encoder constructible by `name`."""
    return INPUT_ENCODERS.register(name)


def create_input_encoder(name: str, **kwargs):
    return INPUT_ENCODERS.create(name, **kwargs)


from lightning_seqrec.inputs.time_encoder import DualViewTimeEncoder  # noqa: E402  (the built-in encoders)

register_input_encoder("dual_time")(DualViewTimeEncoder)

__all__ = ["INPUT_ENCODERS", "DualViewTimeEncoder", "create_input_encoder", "register_input_encoder"]
