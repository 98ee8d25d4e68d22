"""The backbone protocol (lightning_seqrec.backbones.registry): forward's shapes, the recurrent step, the modules
derived from the registry, and a time-aware backbone defined only here that trains, evaluates and recommends with
timestamps through `recommend`, `Recommender` and the CLI, registered through SEQREC_PLUGINS."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import textwrap

import lightning as L
import numpy as np
import pytest
import torch
from conftest import chain_log, make_chain_datamodule, quiet_trainer
from omegaconf import OmegaConf

from lightning_seqrec import GRU4Rec, LSTMRec, SASRec, cli
from lightning_seqrec.backbones import (
    GRU4RecBackbone,
    LSTMBackbone,
    SASRecBackbone,
    create_backbone,
    get_backbone,
    registry,
)
from lightning_seqrec.checkpoint import build_module
from lightning_seqrec.errors import ConfigError, SeqRecError
from lightning_seqrec.objectives import CL4SRec, FullCrossEntropy
from lightning_seqrec.retrieval import Recommender

PLUGIN = "seqrec_timegap_plugin"
PLUGIN_SOURCE = textwrap.dedent(
    '''
    """A time-aware backbone of a user's own: GRU4Rec whose inputs add an embedding of the log time gap."""
    import torch
    from torch import nn

    from lightning_seqrec.backbones import GRU4RecBackbone, register_backbone
    from lightning_seqrec.modules.models import backbone_module


    @register_backbone("timegap_gru")
    class TimeGapGRU(GRU4RecBackbone):
        uses_time = True

        def __init__(self, embedding_dim: int = 64, hidden_dim: int = 128, num_layers: int = 1, dropout: float = 0.2):
            super().__init__(embedding_dim, hidden_dim, num_layers, dropout)
            self.gap = nn.Linear(1, embedding_dim)

        def forward(self, x, mask, batch):
            times = batch["time_seq"].to(x.dtype)
            after_item = mask & mask.roll(1, dims=1)
            after_item[:, 0] = False
            gap = torch.log1p((times - times.roll(1, dims=1)).clamp(min=0)) * after_item
            return super().forward(x + self.gap(gap[..., None]), mask, batch)


    TimeGapRec = backbone_module("TimeGapRec", "timegap_gru", "GRU4Rec reading the log time gap between items.")
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    return folder


@pytest.fixture(scope="module")
def plugin(plugin_dir):
    """The plugin found the way a `seqrec` process finds it: on the path, named in SEQREC_PLUGINS."""
    sys.path.insert(0, str(plugin_dir))
    old = os.environ.get(registry.PLUGINS_ENV)
    os.environ[registry.PLUGINS_ENV] = PLUGIN
    try:
        get_backbone("timegap_gru")  # an unknown name imports the modules SEQREC_PLUGINS names
        yield importlib.import_module(PLUGIN)
    finally:
        sys.path.remove(str(plugin_dir))
        if old is None:
            os.environ.pop(registry.PLUGINS_ENV)
        else:
            os.environ[registry.PLUGINS_ENV] = old


def test_the_protocol_is_written_in_the_registry():
    doc = registry.__doc__
    for text in ("forward(embeddings [B, L, d], mask [B, L], batch) -> hidden [B, L, d]", "uses_time = True",
                 "init_state(batch_size)", "step(state, item_embedding [B, d], timestamp [B] | None)",
                 "SEQREC_PLUGINS", "never imported"):  # fmt: skip
        assert text in doc


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "lstm", "lru"])
def test_builtin_backbones_follow_forward_protocol(name):
    torch.manual_seed(0)
    backbone = create_backbone(name, embedding_dim=8, dropout=0.0).eval()
    assert not getattr(backbone, "uses_time", False)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[False, False, True, True, True, True], [False, False, False, False, True, True]])
    hidden = backbone(x * mask[..., None], mask, {"item_seq": mask.long()})
    assert hidden.shape == (2, 6, 8) and torch.all(hidden[~mask] == 0)
    shorter = backbone(x[:, 2:] * mask[:, 2:, None], mask[:, 2:], {})  # less padding, same items
    assert torch.allclose(hidden[:, -1], shorter[:, -1], atol=1e-5)


@pytest.mark.parametrize("cls", [GRU4RecBackbone, LSTMBackbone])
def test_stepping_through_a_history_gives_forwards_last_hidden_state(cls):
    torch.manual_seed(0)
    backbone = cls(embedding_dim=8, hidden_dim=12, num_layers=2, dropout=0.3).eval()
    lengths = torch.tensor([5, 2, 7])
    mask = torch.arange(7)[None, :] >= 7 - lengths[:, None]
    x = torch.randn(3, 7, 8) * mask[..., None]
    expected = backbone(x, mask, {})[:, -1]
    state, hidden = backbone.init_state(3), None
    for t in range(7):  # rows start at different steps: a row's state resets until its first item
        state_t, hidden_t = backbone.step(state, x[:, t], None)
        fresh = backbone.init_state(3)
        keep = mask[:, t]
        state = tuple(
            torch.where(keep[None, :, None], s, f) for s, f in zip(_tuple(state_t), _tuple(fresh), strict=True)
        )
        state = state if isinstance(state_t, tuple) else state[0]
        hidden = hidden_t if hidden is None else torch.where(keep[:, None], hidden_t, hidden)
    assert torch.allclose(hidden, expected, atol=1e-5)


def _tuple(state):
    return state if isinstance(state, tuple) else (state,)


def test_module_step_state_scores_like_recommend():
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = GRU4Rec(dm.num_items, embedding_dim=8, hidden_dim=8, max_len=dm.max_len, dropout=0.0)
    module.attach_data(dm)
    history = dm.user_history(dm.sequences.users[0])[: dm.max_len]
    state = None
    for item in history:
        state, scores = module.step_state(state, item)
    expected = module.score_histories([history], exclude_seen=False)
    assert torch.allclose(scores, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="step"):
        SASRec(dm.num_items, embedding_dim=8, num_blocks=1).step_state(None, history[0])


def test_per_backbone_modules_take_their_defaults_from_the_backbone():
    for module_cls, backbone_cls in ((SASRec, SASRecBackbone), (GRU4Rec, GRU4RecBackbone), (LSTMRec, LSTMBackbone)):
        signature = inspect.signature(backbone_cls)
        expected = {n: p.default for n, p in signature.parameters.items()}
        assert module_cls(10).architecture["backbone_kwargs"] == expected
    assert SASRec(10).architecture["backbone_kwargs"]["dropout"] == 0.2  # the published defaults
    assert GRU4Rec(10).architecture["backbone_kwargs"]["dropout"] == 0.2
    lstm = LSTMRec(10)
    assert lstm.architecture["backbone_kwargs"]["dropout"] == 0.0 and lstm.scoring == "cosine" and lstm.max_len == 100
    tiny = SASRec(10, embedding_dim=8, max_len=5, num_blocks=1, lr=0.1)
    assert tiny.architecture["backbone_kwargs"]["max_len"] == 5 == tiny.max_len and tiny.lr == 0.1  # shared: both
    assert tiny.hparams["num_blocks"] == 1 and tiny.hparams["num_heads"] == 2  # hparams as before
    with pytest.raises(TypeError, match="hidden_dim"):
        SASRec(10, hidden_dim=4)


def test_import_path_names_are_refused_and_stored_records_never_import(monkeypatch):
    with pytest.raises(ConfigError, match="never imported"):
        get_backbone("os:system")
    monkeypatch.delenv(registry.PLUGINS_ENV, raising=False)
    stored = {**SASRec(5, embedding_dim=8).architecture, "backbone": "seqrec_timegap_plugin:TimeGapGRU"}
    with pytest.raises(SeqRecError, match="never imported"):
        build_module(stored, {}, "a stored checkpoint")
    assert PLUGIN not in sys.modules or "timegap_gru" in registry._BACKBONES  # nothing imported by the record


@pytest.fixture(scope="module")
def timed_model(plugin):
    """The plugin's time-aware module trained on the chain data (which has timestamps), CL4SRec included: its
    views must carry the times."""
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = plugin.TimeGapRec(
        dm.num_items, embedding_dim=16, hidden_dim=16, max_len=dm.max_len, dropout=0.0, lr=1e-2,
        objectives={"ce": FullCrossEntropy(), "cl": CL4SRec(weight=0.05)},
    )  # fmt: skip
    trainer = quiet_trainer(max_epochs=6)
    trainer.fit(module, dm)
    return module, dm, trainer


def test_time_aware_backbone_trains_evaluates_and_recommends_with_timestamps(timed_model):
    module, dm, trainer = timed_model
    assert module.uses_time and trainer.test(module, dm, verbose=False)[0]["test/hr@10"] > 0.3
    module.eval()
    batch = next(iter(dm.test_dataloader()))
    users = dm.split.test.history.users[batch["user"].numpy()]
    histories = [dm.user_history(u)[:-1] for u in users]
    times = [dm.user_times(u)[:-1] for u in users]
    with torch.no_grad():
        eval_scores = module.score(batch)
    assert torch.equal(module.score_histories(histories, timestamps=times), eval_scores)
    shifted = [[t * 3.0 for t in row] for row in times]  # other gaps, other scores: the time reaches inference
    assert not torch.equal(module.score_histories(histories, timestamps=shifted), eval_scores)
    top = module.recommend(histories, k=5, timestamps=times)
    served = Recommender(module).recommend(histories, k=5, timestamps=times)
    assert [[r["item_id"] for r in row] for row in served] == [[r["item_id"] for r in row] for row in top]
    with pytest.raises(ConfigError, match="reads timestamps") as refused:
        module.recommend(histories[:1], k=5)
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="reads timestamps"):
        Recommender(module).recommend(histories[:1], k=5)


def test_time_aware_backbone_through_the_cli(plugin, plugin_dir, tmp_path, capsys):
    """`seqrec train` of a model whose backbone only a user's module registers (SEQREC_PLUGINS), then `seqrec
    recommend` of its checkpoint with history=[...] times=[...] and with user=, and the refusal without times."""
    chain_log().to_csv(tmp_path / "events.csv", index=False)
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", registry.PLUGINS_ENV: PLUGIN}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), *filter(None, [env.get("PYTHONPATH")])])

    def seqrec(*args):
        command = [sys.executable, "-m", "lightning_seqrec.cli", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    data = ["data=table", f"data.path={tmp_path / 'events.csv'}", "data.columns.user_id=user",
            "data.columns.item_id=item", "data.columns.timestamp=ts", "data.max_len=8"]  # fmt: skip
    model = ["model=gru4rec", f"model._target_={PLUGIN}.TimeGapRec", "model.embedding_dim=16", "model.hidden_dim=16"]
    trained = seqrec(
        "train", *data, *model, "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger=none",
        "show_user=u3", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "top-10 for user u3:" in trained.stdout
    ckpt = next((tmp_path / "run").rglob("*.ckpt"))
    history = chain_log().query("user == 'u3'")
    items, times = history["item"].tolist()[:4], history["ts"].tolist()[:4]
    given = seqrec("recommend", f"ckpt={ckpt}", f"history={items}", f"times={times}", "k=3")
    assert given.returncode == 0, given.stderr[-3000:]
    assert "top-3 for the given history:" in given.stdout and given.stdout.count("(item ") == 3
    by_user = seqrec("recommend", f"ckpt={ckpt}", "user=u3", "k=3")
    assert by_user.returncode == 0, by_user.stderr[-3000:]
    # the CLI's refusals, in this process (the plugin fixture registered the backbone): one line, status 2
    base = {"ckpt": str(ckpt), "user": None, "history": items, "k": 3, "exclude_seen": True, "unknown": "raise"}
    for times_given, message in ((None, "reads timestamps"), (times[:2], "one timestamp per item")):
        with pytest.raises(SystemExit) as stopped:
            cli._reporting(cli.recommend)(OmegaConf.create({**base, "times": times_given}))
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.count("\n") == 1 and message in error, error


def test_timestamps_of_dropped_items_are_dropped_too(timed_model):
    module, dm, _ = timed_model
    history = dm.user_history(dm.sequences.users[0])[:4]
    times = dm.user_times(dm.sequences.users[0])[:4]
    with_unknown = module.recommend([[*history, "nope"]], k=3, unknown="drop", timestamps=[[*times, 9e9]])
    assert with_unknown == module.recommend([history], k=3, timestamps=[times])
    assert np.isfinite([r["score"] for r in with_unknown[0]]).all()
