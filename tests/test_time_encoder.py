"""The dual-view gated time encoder (`dual_time`, TME-PSR) and the data layer's timestamps in seconds: hand-computed
features, step() = forward, padding invariance, the gating configs, time-aware SASRec / GRU4Rec trained, evaluated and
recommended with timestamps, and one unit (seconds) whatever unit the log came in."""

from __future__ import annotations

import datetime
import math

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import chain_interactions_of, quiet_trainer, require_shared, tiny_sasrec
from hydra.utils import instantiate

from lightning_seqrec import GRU4Rec, Interactions, LRURec, SeqRecDataModule
from lightning_seqrec.data import load_dataset
from lightning_seqrec.errors import ConfigError, DataError
from lightning_seqrec.inputs import DualViewTimeEncoder, create_input_encoder
from lightning_seqrec.run import compose

GATINGS = ["sum", "global", "user", "position"]
N, CLIP, HORIZON = 32, 256.0, 3650 * 86400.0


def utc(*args) -> float:
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp()


def bucket(value: float, clip: float) -> int:
    """The README's log bucket of a duration > 0: 3 + floor(log1p(min(v, clip)) / log1p(clip) * (N - 4))."""
    return 3 + min(math.floor(math.log1p(min(value, clip)) / math.log1p(clip) * (N - 4)), N - 4)


def encoder(gating="position", dim=8, seed=0) -> DualViewTimeEncoder:
    torch.manual_seed(seed)
    return DualViewTimeEncoder(dim, gating=gating, num_gap_buckets=N, clip=CLIP, horizon=HORIZON).eval()


def left_padded(rows: list[list[float]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    times = torch.zeros(len(rows), length, dtype=torch.float64)
    for b, row in enumerate(rows):
        times[b, length - len(row) :] = torch.tensor(row, dtype=torch.float64)
    mask = torch.arange(length)[None, :] >= length - torch.tensor([len(r) for r in rows])[:, None]
    return times, mask


def test_time_features_of_a_hand_made_sequence_equal_hand_computed_values():
    start = utc(2021, 3, 5, 10, 30)  # a Friday
    late, new_year = utc(2021, 12, 31, 23, 59, 59), utc(2022, 1, 1)
    events = [start, start + 60, start + 60, start + 3660, start + 3690, late, new_year]
    times, mask = left_padded([events], 9)  # two padded positions first
    got = {k: v[0, 2:].tolist() for k, v in encoder().sequence_features(times, mask).items()}
    gaps = [None, 60, 0, 3600, 30, late - start - 3690, 1]
    # TiSASRec's scale, causal: the smallest non-zero gap before this one (the gap itself when there is none)
    rhythms = [None, 60 / 60, 0, 3600 / 60, 30 / 60, (late - start - 3690) / 30, 1 / 30]
    since = [None, 60, 60, 3660, 3690, late - start, new_year - start]

    def expected(values, clip):
        return [1 if v is None else 2 if v == 0 else bucket(v, clip) for v in values]  # 1: first event, 2: a tie

    assert got["gap"] == expected(gaps, HORIZON)
    assert got["rhythm"] == expected(rhythms, CLIP) and got["rhythm"][5] == N - 1  # clipped at k = 256
    assert got["since"] == expected(since, HORIZON)
    dates = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t in events]
    assert got["hour"] == [d.hour for d in dates] == [10, 10, 10, 11, 11, 23, 0]
    assert got["weekday"] == [d.weekday() for d in dates] == [4, 4, 4, 4, 4, 4, 5]
    assert got["month"] == [d.month - 1 for d in dates] == [2, 2, 2, 2, 2, 11, 0]


def test_calendar_matches_python_over_centuries():
    rng = np.random.default_rng(0)
    seconds = torch.tensor(rng.uniform(-2.2e9, 7e9, 500).round())  # 1900 .. 2191: leap years, centuries
    zeros = torch.zeros_like(seconds)
    features = encoder().features(seconds, zeros, zeros.bool(), zeros, zeros + 1)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    dates = [epoch + datetime.timedelta(seconds=s) for s in seconds.tolist()]
    assert features["hour"].tolist() == [d.hour for d in dates]
    assert features["weekday"].tolist() == [d.weekday() for d in dates]
    assert features["month"].tolist() == [d.month - 1 for d in dates]


def random_rows(seed=0, lengths=(7, 3, 1, 5)) -> list[list[float]]:
    """Histories with ties (several events in one second) and gaps from seconds to months."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        gaps = rng.choice([0, 0, 1, 45, 3600, 86400 * 3, 86400 * 40], size=n) * rng.uniform(0.5, 2, size=n)
        rows.append((1.6e9 + np.cumsum(np.where(gaps < 1, 0, gaps.round()))).tolist())
    return rows


@pytest.mark.parametrize("gating", GATINGS)
def test_step_by_step_equals_forward_at_every_position(gating):
    enc = encoder(gating)
    rows = random_rows()
    times, mask = left_padded(rows, 9)
    x = torch.randn(len(rows), 9, 8) * mask[..., None]
    with torch.no_grad():
        full = enc(x, mask, {"time_seq": times})
        for b, row in enumerate(rows):
            state = enc.init_state(1)
            for k in range(len(row)):
                t = 9 - len(row) + k
                state, out = enc.step(state, x[b : b + 1, t], times[b : b + 1, t])
                assert torch.allclose(out[0], full[b, t], atol=1e-5), (gating, b, k)


@pytest.mark.parametrize("gating", GATINGS)
def test_outputs_do_not_depend_on_left_padding_and_padding_outputs_zero(gating):
    enc = encoder(gating)
    rows = random_rows(1)
    times, mask = left_padded(rows, 7)
    more_times, more_mask = left_padded(rows, 12)
    x = torch.randn(len(rows), 7, 8) * mask[..., None]
    more_x = torch.cat([torch.zeros(len(rows), 5, 8), x], dim=1)
    with torch.no_grad():
        out = enc(x, mask, {"time_seq": times})
        more = enc(more_x, more_mask, {"time_seq": more_times})
    assert torch.equal(more[:, 5:], out) and torch.all(more[~more_mask] == 0) and torch.all(out[~mask] == 0)


@pytest.mark.parametrize("gating", GATINGS)
def test_each_gating_strategy_is_used_by_its_config(gating):
    cfg = compose("train", [f"inputs=dual_time_{gating}", "model.embedding_dim=16"])
    module = instantiate(cfg.model, num_items=10, _convert_="all")
    assert isinstance(module.input_encoder, DualViewTimeEncoder) and module.uses_time
    assert module.input_encoder.gating == gating and module.input_encoder.embedding_dim == 16
    assert module.architecture["input_encoder_kwargs"]["gating"] == gating
    has_gate = {"sum": (False, False), "global": (True, False), "user": (False, True), "position": (False, True)}
    assert (module.input_encoder.global_gate is not None, module.input_encoder.gate is not None) == has_gate[gating]


def test_the_default_inputs_leave_the_model_config_and_architecture_as_they_were():
    plain, none = compose("train", []), compose("train", ["inputs=none"])
    assert plain.model == none.model and "input_encoder" not in plain.model
    module = instantiate(plain.model, num_items=10, _convert_="all")
    assert module.input_encoder is None and "input_encoder" not in module.architecture and not module.uses_time


def test_bad_encoder_arguments_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="gating strategy"):
        create_input_encoder("dual_time", embedding_dim=8, gating="nope")
    with pytest.raises(ConfigError, match="embedding_dim=<the model's embedding_dim>") as wrong:
        encoder(dim=8)(torch.zeros(1, 2, 16), torch.ones(1, 2, dtype=torch.bool), {"time_seq": torch.ones(1, 2)})
    assert "\n" not in str(wrong.value)


TIMED = {"input_encoder": "dual_time", "input_encoder_kwargs": {"embedding_dim": 16, "gating": "position"}}


def timed_chain_datamodule() -> SeqRecDataModule:
    dm = SeqRecDataModule(chain_interactions_of(), max_len=8, batch_size=16, eval_batch_size=7)
    dm.setup()
    return dm


@pytest.mark.parametrize("make", ["sasrec", "gru4rec"])
def test_time_aware_models_train_evaluate_and_recommend_with_timestamps(make):
    dm = timed_chain_datamodule()
    L.seed_everything(0)
    if make == "sasrec":
        module = tiny_sasrec(dm, **TIMED)
    else:
        module = GRU4Rec(dm.num_items, embedding_dim=16, hidden_dim=16, max_len=dm.max_len, lr=5e-3, **TIMED)
    before = {k: v.clone() for k, v in module.input_encoder.state_dict().items()}
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(module, dm)
    changed = [k for k, v in module.input_encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "gate.weight" in changed and "tables.gap.weight" in changed  # the encoder was trained
    metrics = trainer.test(module, dm, verbose=False)[0]
    assert 0 <= metrics["test/ndcg@10"] <= metrics["test/hr@10"] <= 1
    module.eval()
    with torch.no_grad():  # evaluation and inference read the same timestamps (seconds) for every test user
        evaluated = torch.cat([module.score(batch) for batch in dm.test_dataloader()])
    test_users = dm.split.test.history.users
    histories, times = [dm.user_history(u)[:-1] for u in test_users], [dm.user_times(u)[:-1] for u in test_users]
    assert torch.allclose(module.score_histories(histories, timestamps=times), evaluated, atol=1e-5)
    top = module.recommend(histories[:2], k=5, timestamps=times[:2])
    assert [len(row) for row in top] == [5, 5] and not set(r["item_id"] for r in top[0]) & set(histories[0])
    with pytest.raises(ConfigError, match="reads timestamps") as refused:
        module.recommend(histories[:1], k=5)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("recurrent, gating", [*(("gru4rec", g) for g in GATINGS), ("lru", "user")])
def test_recurrent_step_state_through_a_history_equals_score_histories(recurrent, gating):
    dm = timed_chain_datamodule()
    L.seed_everything(0)
    encoding = {"input_encoder": "dual_time", "input_encoder_kwargs": {"embedding_dim": 8, "gating": gating}}
    if recurrent == "gru4rec":
        module = GRU4Rec(dm.num_items, embedding_dim=8, hidden_dim=8, max_len=dm.max_len, dropout=0.0, **encoding)
    else:
        module = LRURec(dm.num_items, embedding_dim=8, max_len=dm.max_len, dropout=0.0, **encoding)
    module.attach_data(dm)
    user = dm.sequences.users[3]
    history, times = dm.user_history(user)[: dm.max_len], dm.user_times(user)[: dm.max_len]
    times[2] = times[1]  # a tie
    state = None
    for item, time in zip(history, times, strict=True):
        state, scores = module.step_state(state, item, timestamp=time)
    expected = module.score_histories([history], exclude_seen=False, timestamps=[times])
    assert torch.allclose(scores, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="timestamp"):
        module.step_state(None, history[0])


def test_missing_or_disordered_timestamps_are_refused_in_one_line():
    dm = timed_chain_datamodule()
    module = tiny_sasrec(dm, **TIMED)
    module.attach_data(dm)
    history, times = dm.user_history(dm.sequences.users[0])[:4], dm.user_times(dm.sequences.users[0])[:4]
    for bad in ([times[0], float("nan"), *times[2:]], [times[1], times[0], *times[2:]]):
        with pytest.raises(DataError, match="missing or older") as refused:
            module.recommend([history], k=3, timestamps=[bad])
        assert "\n" not in str(refused.value)
    untimed = SeqRecDataModule(Interactions.from_frame(chain_interactions_of().frame.drop(columns="timestamp")))
    untimed.setup()
    with pytest.raises(ConfigError, match="reads timestamps"):
        quiet_trainer(max_epochs=1, limit_train_batches=1).fit(tiny_sasrec(untimed, **TIMED), untimed)


def test_missing_timestamps_in_training_data_are_refused_unless_dropped():
    frame = pd.DataFrame({"user": ["a", "a", "b"], "item": [1, 2, 3], "ts": [10.0, np.nan, 30.0]})
    columns = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
    with pytest.raises(DataError, match="drop_invalid"):
        Interactions.from_frame(frame, columns=columns)
    assert len(Interactions.from_frame(frame, columns=columns, timestamps="drop_invalid")) == 2


# ----------------------------------------------------------------------------- one unit: seconds
def day_log(unit: str) -> pd.DataFrame:
    """Three users' events at whole days (so days are exact), with ties, in `unit`: s, ms, d or ISO dates."""
    days = np.array([18000, 18000, 18003, 18010, 18010, 18100, 18101, 18101, 18200, 18260, 18300, 18301])
    seconds = days * 86400 + np.array([0, 0, 3600, 7200, 7200, 0, 60, 60, 0, 0, 0, 0]) * (unit != "d")
    values = {
        "s": seconds,
        "ms": seconds * 1000,
        "d": days,
        "dates": pd.to_datetime(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
    }[unit]
    users = ["a"] * 5 + ["b"] * 4 + ["c"] * 3
    return pd.DataFrame({"user": users, "item": np.arange(1, 13) % 5 + 1, "ts": values})


def seconds_of(unit: str, time_unit: str = "auto") -> SeqRecDataModule:
    policy = "parse_dates" if unit == "dates" else "strict"
    columns = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
    data = Interactions.from_frame(day_log(unit), columns=columns, timestamps=policy)
    dm = SeqRecDataModule(data, max_len=6, time_unit=time_unit)
    dm.setup()
    return dm


@pytest.mark.parametrize("unit, time_unit", [("ms", "auto"), ("ms", "ms"), ("dates", "auto"), ("s", "s")])
def test_timestamps_in_any_unit_become_the_same_seconds_and_features(unit, time_unit):
    reference, dm = seconds_of("s"), seconds_of(unit, time_unit)
    assert dm.sequences.times.dtype == np.float64 and np.array_equal(dm.sequences.times, reference.sequences.times)
    batch, ref_batch = next(iter(dm.test_dataloader())), next(iter(reference.test_dataloader()))
    mask = batch["item_seq"] > 0
    features = encoder().sequence_features(batch["time_seq"], mask)
    assert all(torch.equal(v, encoder().sequence_features(ref_batch["time_seq"], mask)[k]) for k, v in features.items())
    assert dm.interactions.meta["time_unit"] == "s"


def test_days_are_never_guessed_but_read_when_named():
    days, seconds = seconds_of("d", "d"), seconds_of("s")
    assert days.interactions.meta["source_time_unit"] == "d"
    assert np.array_equal(days.sequences.times, np.floor(seconds.sequences.times / 86400) * 86400)
    assert seconds_of("d").sequences.times.max() < 20000  # auto reads small numbers as seconds, as written


def test_unit_mistakes_are_refused_in_one_line():
    with pytest.raises(DataError, match="contradicts") as contradiction:
        seconds_of("dates", "ms")  # dates are seconds already
    with pytest.raises(DataError, match="time_unit="):
        SeqRecDataModule("ml-latest-small", time_unit="hours")
    frame = day_log("ms").assign(ts=lambda f: f["ts"] * 1000)  # microseconds
    data = Interactions.from_frame(frame, columns={"user_id": "user", "item_id": "item", "timestamp": "ts"})
    with pytest.raises(DataError, match="too large"):
        SeqRecDataModule(data).setup()
    assert "\n" not in str(contradiction.value)


def test_retailrocket_milliseconds_arrive_as_seconds():
    path = require_shared("retailrocket") / "events_sample_1500visitors.csv.gz"
    raw = load_dataset("retailrocket", path=path)
    dm = SeqRecDataModule("retailrocket", path=str(path), max_len=20)
    dm.setup()
    assert raw.meta["time_unit"] == "ms" and dm.interactions.meta["source_time_unit"] == "ms"
    expected = np.sort(raw.frame["timestamp"].to_numpy() / 1000.0)
    assert np.allclose(np.sort(dm.sequences.times), expected) and dm.sequences.times.max() < 2e9


@pytest.mark.parametrize("time_unit", ["auto", "ms"])
def test_a_table_in_milliseconds_through_the_data_config_arrives_as_seconds(tmp_path, time_unit):
    day_log("ms").to_csv(tmp_path / "events.csv", index=False)
    overrides = ["data=table", f"data.path={tmp_path / 'events.csv'}", "data.columns.user_id=user",
                 "data.columns.item_id=item", "data.columns.timestamp=ts", f"data.time_unit={time_unit}"]  # fmt: skip
    dm = instantiate(compose("train", overrides).data)
    dm.setup()
    assert np.array_equal(dm.sequences.times, seconds_of("s").sequences.times)
