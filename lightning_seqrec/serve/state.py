"""Per-user serving state: the recent history (and, for recurrent models, the folded `step` state) of each user, in a
bounded least-recently-used store that is saved to and reloaded from safetensors + JSON (never pickle).

A recurrent backbone (one with `init_state` / `step`, and its input encoder alike) folds each event into its state
once, so an event costs the same whatever the history's length; every other backbone re-reads the newest `max_len`
items. Either way the newest `max_history` item indices are kept, for seen-item masking.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from lightning_seqrec.errors import CheckpointError, ConfigError

STATE_FORMAT = "lightning-seqrec/user-state/1"


def state_leaves(state) -> list:
    """The tensors and numbers of a nested state (tuples, named tuples, lists, None), depth first."""
    if isinstance(state, (tuple, list)):
        return [leaf for child in state for leaf in state_leaves(child)]
    return [] if state is None else [state]


def rebuild_state(template, leaves: list):
    """A state shaped like `template` holding `leaves` (consumed from the front), each checked against the template's
    leaf: same shape and dtype for tensors, a number for numbers."""
    if isinstance(template, (tuple, list)):
        children = [rebuild_state(child, leaves) for child in template]
        if isinstance(template, tuple) and hasattr(template, "_fields"):
            return type(template)(*children)
        return type(template)(children)
    if template is None:
        return None
    leaf = leaves.pop(0)
    if isinstance(template, torch.Tensor):
        if not isinstance(leaf, torch.Tensor) or leaf.shape != template.shape or leaf.dtype != template.dtype:
            raise CheckpointError(
                "a saved user state does not match this model's state shapes; it was saved by another model."
            )
        return leaf
    if not isinstance(leaf, (int, float)):
        raise CheckpointError("a saved user state holds a non-number where this model keeps a number.")
    return type(template)(leaf)


@dataclass
class UserState:
    """One user's serving state: item indices and timestamps of the newest events, and the recurrent state and last
    hidden state (None for a model that re-reads the history)."""

    items: deque
    times: deque | None
    recurrent: object = None
    hidden: torch.Tensor | None = None
    events: int = 0


class UserStateStore:
    """Users' states by user ID, at most `max_users` of them: adding one more evicts the least recently used."""

    def __init__(self, module, max_users: int = 100_000, max_history: int = 200):
        if max_users < 1 or max_history < module.max_len:
            raise ConfigError(
                f"max_users must be >= 1 and max_history >= the model's max_len ({module.max_len}); got "
                f"max_users={max_users}, max_history={max_history}."
            )
        self.module, self.max_users, self.max_history = module, max_users, max_history
        self.recurrent = module.is_recurrent
        self.users: OrderedDict[str, UserState] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.users)

    def get(self, user: str) -> UserState | None:
        """A user's state (marked as just used), or None for a user with no event."""
        state = self.users.get(user)
        if state is not None:
            self.users.move_to_end(user)
        return state

    def append(self, user: str, index: int, timestamp: float | None) -> UserState:
        """Fold one event (item index, timestamp) into `user`'s state, creating it (and evicting the least recently
        used user when full) for a new user; the state is replaced only once the step has succeeded."""
        old = self.users.get(user)
        times = None if timestamp is None and (old is None or old.times is None) else timestamp
        if old is not None and (old.times is None) != (times is None):
            raise ConfigError(
                f"user {user!r}'s events {'have' if old.times is not None else 'have no'} timestamps; "
                "send every event of a user with a timestamp, or none."
            )
        recurrent, hidden = None, None
        if self.recurrent:
            previous = old.recurrent if old is not None else self.module.initial_state()
            recurrent, hidden = self.module.step_hidden(previous, index, timestamp)
        items = deque(old.items if old is not None else (), maxlen=self.max_history)
        items.append(int(index))
        stamps = None
        if times is not None:
            stamps = deque(old.times if old is not None else (), maxlen=self.max_history)
            stamps.append(float(timestamp))
        state = UserState(items, stamps, recurrent, hidden, (old.events if old is not None else 0) + 1)
        self.users[user] = state
        self.users.move_to_end(user)
        while len(self.users) > self.max_users:
            self.users.popitem(last=False)
            self.evicted += 1
        return state

    # ------------------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write every user's state to `path` (safetensors: the tensors; its metadata: the users, in LRU order, with
        their items and times as JSON), through a temporary file so a crash never leaves half a file."""
        path = Path(path)
        tensors, users = {}, []
        for n, (user, state) in enumerate(self.users.items()):
            record = {"id": user, "items": list(state.items), "events": state.events}
            record["times"] = None if state.times is None else list(state.times)
            numbers = []
            for i, leaf in enumerate(state_leaves(state.recurrent)):
                if isinstance(leaf, torch.Tensor):
                    parts = (leaf.real, leaf.imag) if leaf.is_complex() else (leaf,)
                    for j, part in enumerate(parts):
                        tensors[f"{n}.{i}.{j}"] = part.contiguous()
                else:
                    numbers.append(float(leaf))
            record["numbers"] = numbers
            if state.hidden is not None:
                tensors[f"{n}.hidden"] = state.hidden.contiguous()
            users.append(record)
        metadata = {"format": STATE_FORMAT, "users": json.dumps(users), "max_len": str(self.module.max_len)}
        tmp = path.with_name(path.name + ".tmp")
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
        return path

    def load(self, path: str | Path) -> int:
        """Replace the store's users by those saved in `path` (checked against this model's state shapes and
        vocabulary size before any is taken), keeping the newest `max_users`; returns how many were loaded."""
        path = Path(path)
        try:
            with safetensors.safe_open(str(path), framework="pt", device="cpu") as file:
                metadata = dict(file.metadata() or {})
                tensors = {key: file.get_tensor(key) for key in file.keys()}
        except (safetensors.SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable user-state file ({err}).") from err
        if metadata.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{path} is not a {STATE_FORMAT} file (format={metadata.get('format')!r}).")
        try:
            records = json.loads(metadata.get("users", "[]"))
            loaded = OrderedDict((str(r["id"]), self._state_of(n, r, tensors)) for n, r in enumerate(records))
        except (KeyError, TypeError, ValueError, IndexError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(
                f"{path} holds a malformed user record ({err}); it was not written by save()."
            ) from err
        while len(loaded) > self.max_users:
            loaded.popitem(last=False)
        self.users = loaded
        return len(loaded)

    def _state_of(self, n: int, record: dict, tensors: dict) -> UserState:
        """User `n`'s state from its JSON record and its tensors, each checked against this model."""
        items = np.asarray(record["items"], dtype=np.int64)
        if items.ndim != 1 or len(items) == 0 or (items < 1).any() or (items > self.module.num_items).any():
            raise CheckpointError(f"user {record['id']!r}'s saved items are not indices of this model's catalog.")
        times = record["times"]
        times = None if times is None else deque((float(t) for t in times), maxlen=self.max_history)
        if times is not None and len(times) != len(items):
            raise CheckpointError(f"user {record['id']!r} has {len(items)} saved items but {len(times)} times.")
        recurrent, hidden = None, None
        if self.recurrent:
            template = self.module.initial_state()
            numbers = list(record["numbers"])
            leaves = []
            for i, leaf in enumerate(state_leaves(template)):
                if isinstance(leaf, torch.Tensor):
                    if leaf.is_complex():
                        leaves.append(torch.complex(tensors[f"{n}.{i}.0"], tensors[f"{n}.{i}.1"]))
                    else:
                        leaves.append(tensors[f"{n}.{i}.0"])
                else:
                    leaves.append(numbers.pop(0))
            recurrent = rebuild_state(template, leaves)
            hidden = tensors[f"{n}.hidden"]
            width = self.module.item_embedding.embedding_dim * self.module.num_interests
            if hidden.shape != (1, width) or hidden.dtype != torch.float32:
                raise CheckpointError(f"user {record['id']!r}'s saved hidden state is not [1, {width}] float32.")
        return UserState(
            deque(items.tolist(), maxlen=self.max_history), times, recurrent, hidden, int(record["events"])
        )
