"""`DualViewTimeEncoder` (registered as `dual_time` in `lightning_seqrec.inputs`), TME-PSR's time encoder: adds to
each item embedding a short-term view of the user's rhythm (the gap to the previous event, absolute and scaled by the
user's own earlier gaps) and a long-term view of their habits (hour of day, day of week, month, time since their first
event), fused by a gate.

Timestamps are float64 seconds since the epoch (UTC), as the data layer delivers them in `time_seq`. Every feature
of position t reads events 1..t of the window only, so `step()` folding one event into a small state gives exactly
what `forward` gives at every position.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from lightning_seqrec.backbones.dropout import ByteDropout
from lightning_seqrec.batch import TIME_SEQ
from lightning_seqrec.errors import ConfigError, DataError

GATINGS = ("sum", "global", "user", "position")
PAD, FIRST, TIE = 0, 1, 2
"""Special buckets of the gap and since-first views: padding, no earlier event (the first one), a gap of 0."""
DAY = 86400.0
TEN_YEARS = 3650 * DAY


def log_bucket(value: torch.Tensor, clip: float, num_buckets: int) -> torch.Tensor:
    """Buckets 3..num_buckets-1 of a duration `value > 0`, uniform in log1p(value) over (0, clip]; longer ones fall
    into the last bucket."""
    scaled = torch.log1p(value.clamp(max=clip)) / math.log1p(clip)
    return TIE + 1 + (scaled * (num_buckets - TIE - 2)).floor().long().clamp(0, num_buckets - TIE - 2)


def duration_bucket(value: torch.Tensor, has_earlier: torch.Tensor, clip: float, num_buckets: int) -> torch.Tensor:
    """`log_bucket` of a duration since an earlier event, FIRST where there is none and TIE where it is 0."""
    regular = log_bucket(value.clamp(min=1e-300), clip, num_buckets)
    return torch.where(~has_earlier, FIRST, torch.where(value == 0, TIE, regular))


def running_min(x: torch.Tensor) -> torch.Tensor:
    """The running minimum of `x [B, L]` along positions, as ⌈log₂ L⌉ passes of recursive doubling rather than
    `cummin`, which ONNX lacks: an exported graph traced at L = max_len then serves every L <= max_len exactly."""
    offset = 1
    for _ in range(max(1, math.ceil(math.log2(max(x.shape[1], 2))))):
        x = torch.minimum(x, nn.functional.pad(x, (offset, 0), value=float("inf"))[:, : x.shape[1]])
        offset *= 2
    return x


def calendar(times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hour of day (0..23), day of week (0 = Monday) and month (0 = January) of UTC seconds `times` (float64), by
    the proleptic Gregorian calendar (days-to-civil conversion in integer arithmetic)."""
    days = torch.floor(times / DAY)
    hour = torch.floor((times - days * DAY) / 3600.0).long().clamp(0, 23)
    days = days.long()
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    shifted = days + 719468  # days since 0000-03-01
    era = torch.div(shifted, 146097, rounding_mode="floor")
    day_of_era = shifted - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    month = torch.where(month_from_march < 10, month_from_march + 2, month_from_march - 10)
    return hour, weekday, month


class TimeState(NamedTuple):
    """What `step` keeps per user: the count of events so far, the previous and first timestamps, the smallest
    non-zero gap so far (inf: none) and the sum of the time views so far (the `user` gate's profile)."""

    count: torch.Tensor
    previous: torch.Tensor
    first: torch.Tensor
    min_gap: torch.Tensor
    profile: torch.Tensor


class DualViewTimeEncoder(nn.Module):
    """Item embedding x plus two time views, y = x + Dropout(g ⊙ e_short + (1 - g) ⊙ e_long), 0 at padding:

    - e_short = E_gap[bucket(Δ_t)] + E_rhythm[bucket(min(Δ_t / s_t, clip))], Δ_t = t_t - t_{t-1}, s_t the smallest
      non-zero gap among the user's earlier gaps (Δ_t itself when there is none): TiSASRec's per-user scale, causal;
    - e_long = E_hour[hour] + E_weekday[weekday] + E_month[month] + E_since[bucket(t_t - t_1)];
    - g: `sum` g = 1 for both views (y = x + e_short + e_long); `global` g = σ(θ), one learned vector; `user`
      g = σ(W_u mean_{j<=t}[e_short_j; e_long_j] + b_u), the user's running time profile; `position`
      g = σ(W_p [e_short; e_long; x] + b_p).

    Buckets are log-uniform (`log_bucket`; `num_gap_buckets` each, absolute durations clipped at `horizon` seconds),
    with their own buckets for "no earlier event" and for ties (gap 0).
    """

    uses_time = True

    def __init__(
        self,
        embedding_dim: int,
        gating: str = "position",
        num_gap_buckets: int = 32,
        clip: float = 256.0,
        horizon: float = TEN_YEARS,
        dropout: float = 0.1,
    ):
        super().__init__()
        if gating not in GATINGS:
            raise ConfigError(f"gating={gating!r} is not a gating strategy; use one of {list(GATINGS)}.")
        if num_gap_buckets < TIE + 2 or clip <= 0 or horizon <= 0:
            raise ConfigError(
                f"num_gap_buckets must be >= {TIE + 2} and clip, horizon > 0; got {num_gap_buckets}, {clip}, {horizon}."
            )
        self.embedding_dim, self.gating, self.num_gap_buckets = embedding_dim, gating, num_gap_buckets
        self.clip, self.horizon = float(clip), float(horizon)
        sizes = {"gap": num_gap_buckets, "rhythm": num_gap_buckets, "since": num_gap_buckets}
        sizes.update(hour=24, weekday=7, month=12)
        self.tables = nn.ModuleDict({name: nn.Embedding(size, embedding_dim) for name, size in sizes.items()})
        for table in self.tables.values():
            nn.init.normal_(table.weight, std=0.02)  # the item embeddings' scale
        self.global_gate = nn.Parameter(torch.zeros(embedding_dim)) if gating == "global" else None
        width = {"user": 2 * embedding_dim, "position": 3 * embedding_dim}.get(gating)
        self.gate = nn.Linear(width, embedding_dim) if width else None
        self.dropout = ByteDropout(dropout)

    # ----------------------------------------------------------------- the two views and the gate
    def features(self, times, gap, has_previous, since_first, scale) -> dict[str, torch.Tensor]:
        """The bucket / calendar index of every view's table for events at `times` (float64 seconds), elementwise:
        `gap` to the previous event (0 without one), `since_first` event, the user's gap `scale` s_t."""
        n = self.num_gap_buckets
        rhythm = torch.where(gap > 0, gap / scale.clamp(min=1e-300), gap)
        hour, weekday, month = calendar(times)
        return {
            "gap": duration_bucket(gap, has_previous, self.horizon, n),
            "rhythm": duration_bucket(rhythm, has_previous, self.clip, n),
            "hour": hour,
            "weekday": weekday,
            "month": month,
            "since": duration_bucket(since_first, has_previous, self.horizon, n),
        }

    def sequence_features(self, times: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """`features` of every position of left-padded `[B, L]` timestamps (what `forward` embeds)."""
        length = times.shape[1]
        has_previous = mask & torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], dim=1)
        previous = torch.cat([times[:, :1], times[:, :-1]], dim=1)
        gap = torch.where(has_previous, times - previous, torch.zeros_like(times))
        self._check_times(times, gap, mask)
        start = (length - mask.sum(1)).clamp(max=length - 1)
        since_first = times - times.gather(1, start[:, None])
        nonzero = torch.where(has_previous & (gap > 0), gap, torch.full_like(gap, float("inf")))
        earlier = running_min(torch.cat([torch.full_like(gap[:, :1], float("inf")), nonzero[:, :-1]], dim=1))
        scale = torch.where(torch.isinf(earlier), gap, earlier)
        return self.features(times, gap, has_previous, since_first, scale)

    def views(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """e_short = E_gap + E_rhythm and e_long = E_hour + E_weekday + E_month + E_since of `features`."""
        short = self.tables["gap"](features["gap"]) + self.tables["rhythm"](features["rhythm"])
        long = sum(self.tables[name](features[name]) for name in ("hour", "weekday", "month", "since"))
        return short, long

    def fuse(self, x: torch.Tensor, short: torch.Tensor, long: torch.Tensor, profile: torch.Tensor | None):
        """y = x + Dropout(g ⊙ e_short + (1 - g) ⊙ e_long) with the configured gate g (see the class docstring);
        `profile` is the running mean of [e_short; e_long], read by the `user` gate only."""
        if self.gating == "sum":
            return x + self.dropout(short + long)
        if self.gating == "global":
            gate = torch.sigmoid(self.global_gate)
        elif self.gating == "user":
            gate = torch.sigmoid(self.gate(profile))
        else:
            gate = torch.sigmoid(self.gate(torch.cat([short, long, x], dim=-1)))
        return x + self.dropout(gate * short + (1 - gate) * long)

    # ----------------------------------------------------------------- the whole sequence
    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor, batch) -> torch.Tensor:
        """`[B, L, d]` embeddings with time added at real positions, 0 at padding (left-padded, contiguous items)."""
        self._check_width(embeddings)
        if TIME_SEQ not in batch:
            raise ConfigError(f"The dual_time input encoder reads timestamps: the batch needs {TIME_SEQ!r}.")
        short, long = self.views(self.sequence_features(batch[TIME_SEQ].to(torch.float64), mask))
        real = mask[..., None].to(short.dtype)
        short, long = short * real, long * real
        profile = None
        if self.gating == "user":
            count = mask.cumsum(1).clamp(min=1)[..., None].to(short.dtype)
            profile = torch.cat([short, long], dim=-1).cumsum(1) / count
        return self.fuse(embeddings, short.to(embeddings.dtype), long.to(embeddings.dtype), profile) * real

    # ----------------------------------------------------------------- one event at a time
    def init_state(self, batch_size: int) -> TimeState:
        """The state before any event."""
        device = self.tables["hour"].weight.device
        zeros = torch.zeros(batch_size, dtype=torch.float64, device=device)
        profile = torch.zeros(batch_size, 2 * self.embedding_dim, device=device)
        return TimeState(zeros, zeros, zeros, torch.full_like(zeros, float("inf")), profile)

    def step(self, state: TimeState, embedding: torch.Tensor, timestamp: torch.Tensor | None):
        """Fold one event (`embedding [B, d]` at `timestamp [B]`, seconds) into `state` in O(1): the new state and
        the event's fused embedding, equal to `forward`'s at the same position of the whole history."""
        self._check_width(embedding)
        if timestamp is None:
            raise ConfigError("The dual_time input encoder reads timestamps: pass one per event to step().")
        times = timestamp.to(torch.float64)
        has_previous = state.count > 0
        gap = torch.where(has_previous, times - state.previous, torch.zeros_like(times))
        self._check_times(times, gap, torch.ones_like(has_previous))
        first = torch.where(has_previous, state.first, times)
        scale = torch.where(torch.isinf(state.min_gap), gap, state.min_gap)
        short, long = self.views(self.features(times, gap, has_previous, times - first, scale))
        profile = state.profile + torch.cat([short, long], dim=-1)
        count = state.count + 1
        min_gap = torch.where(has_previous & (gap > 0), torch.minimum(state.min_gap, gap), state.min_gap)
        mean = profile / count[:, None].to(profile.dtype)
        fused = self.fuse(embedding, short.to(embedding.dtype), long.to(embedding.dtype), mean)
        return TimeState(count, times, first, min_gap, profile), fused

    # ----------------------------------------------------------------- checks
    def _check_width(self, embeddings: torch.Tensor) -> None:
        if embeddings.shape[-1] != self.embedding_dim:
            raise ConfigError(
                f"The dual_time encoder was built for embedding_dim={self.embedding_dim} but the item embeddings have "
                f"{embeddings.shape[-1]}; pass input_encoder_kwargs.embedding_dim=<the model's embedding_dim>."
            )

    @staticmethod
    def _check_times(times: torch.Tensor, gap: torch.Tensor, mask: torch.Tensor) -> None:
        """Refuse a missing (NaN / inf) timestamp or one older than the event before it, at real positions."""
        bad = mask & (~torch.isfinite(times) | (gap < 0))
        if bool(bad.any()):
            where = bad.nonzero()[0].tolist()
            raise DataError(
                f"Timestamp {times[tuple(where)].item()!r} (history row {where[0]}) is missing or older than the event "
                "before it; pass finite timestamps in seconds, one per item, oldest first."
            )
