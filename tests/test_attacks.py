"""An attacker's files against every loading path: nothing in a checkpoint, Hub folder or Hub cache may run code.

Each attack plants a payload that would create a canary file if any code it names ran (a pickle `__reduce__`,
a Hydra `_target_`, a module beside the weights); the assertion is that the canary never appears and that the
file is refused with one line (a `SeqRecError`, or `seqrec: error:` and exit status 2 on the command line).
Loading paths: `load_checkpoint`, `finetune.load_source`, `seqrec recommend | eval | finetune`, `seqrec train
ckpt_path=` (with `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`, which switches PyTorch's default off), the Trainer's
checkpoint IO, `hub.load` by `local-dir:`, `hf-hub:` (offline cache) and zoo name, the service's user-state file
(`seqrec serve state_file=`) and another library's predictions file (`seqrec eval predictions=`). Federated replies
are attacked in tests/test_federated.py, the run folders a `seqrec zoo build` reuses in tests/test_zoo.py.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import safetensors.torch
import torch
import yaml
from conftest import chain_log, populate_cache, quiet_trainer, tiny_sasrec
from omegaconf import OmegaConf

from lightning_seqrec import SeqRecDataModule, cli, hub, load_checkpoint, run
from lightning_seqrec.checkpoint import SafeCheckpointIO
from lightning_seqrec.errors import SeqRecError
from lightning_seqrec.finetune import load_source

COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
OFFLINE = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


class Payload:
    """Unpickling this creates `target`: proof that code in the file ran."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.fixture(scope="module")
def victim(tmp_path_factory) -> dict:
    """A genuine checkpoint (trained two steps on a user's CSV, its data config recorded as the CLI records it)
    and its Hub folder, for the attacks to tamper with."""
    tmp = tmp_path_factory.mktemp("victim")
    chain_log().to_csv(tmp / "events.csv", index=False)
    data_config = {
        "_target_": "lightning_seqrec.data.SeqRecDataModule",
        "dataset": "table",
        "path": str(tmp / "events.csv"),
        "columns": COLUMNS,
        "max_len": 8,
    }
    dm = SeqRecDataModule(**{k: v for k, v in data_config.items() if k != "_target_"})
    dm.setup()
    L.seed_everything(0)
    module = tiny_sasrec(dm)
    module.data_config = data_config
    trainer = quiet_trainer(max_steps=2, enable_checkpointing=False)
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp / "genuine.ckpt")
    metrics, dataset = {"test/ndcg@10": 0.5}, {"name": "chain", "split": "loo"}
    folder = hub.save_pretrained(module, tmp / "genuine-hub", metrics=metrics, dataset=dataset)
    return {"ckpt": tmp / "genuine.ckpt", "hub": folder, "csv": tmp / "events.csv", "user": "u3"}


@pytest.fixture
def canary(tmp_path) -> Path:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), f"an attack ran code: {path} was created"


def tampered_checkpoint(victim, tmp_path: Path, change) -> Path:
    ckpt = torch.load(victim["ckpt"], weights_only=True)
    change(ckpt)
    path = tmp_path / "tampered.ckpt"
    torch.save(ckpt, path)
    return path


def pickle_bomb(path: Path, canary: Path) -> Path:
    """A checkpoint-shaped pickle whose unpickling creates `canary`."""
    torch.save(
        {"state_dict": {}, "seqrec": {}, "payload": Payload(canary)}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL
    )
    return path


def seqrec(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lightning_seqrec.cli", *args]
    environment = {**os.environ, **OFFLINE, **env}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


def assert_one_line_refusal(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("seqrec: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# --------------------------------------------------------------------------------------------- pickle payloads
def test_pickle_in_a_checkpoint_never_runs_even_with_torch_forced_to_unpickle(canary, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    bomb = pickle_bomb(tmp_path / "evil.ckpt", canary)
    for load in (load_checkpoint, load_source, SafeCheckpointIO().load_checkpoint):
        with pytest.raises(SeqRecError, match="weights_only=True refuses arbitrary pickle"):
            load(bomb)


def test_resume_from_a_pickle_bomb_is_refused_before_training(canary, victim, tmp_path):
    bomb = pickle_bomb(tmp_path / "last.ckpt", canary)
    data = ["data=table", f"data.path={victim['csv']}", "data.columns.user_id=user", "data.columns.item_id=item"]
    result = seqrec(
        "train",
        *data,
        "data.columns.timestamp=ts",
        "data.max_len=8",
        "model.embedding_dim=16",
        "trainer.max_epochs=1",
        f"ckpt_path={bomb}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
    )
    assert_one_line_refusal(result, "weights_only=True refuses arbitrary pickle")


def test_finetune_from_a_pickle_bomb_is_refused(canary, tmp_path):
    bomb = pickle_bomb(tmp_path / "evil.ckpt", canary)
    result = seqrec("finetune", f"zoo={bomb}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_one_line_refusal(result, "refuses arbitrary pickle")


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "foreign"])
def test_damaged_files_at_resume_get_one_line(victim, tmp_path, damage):
    path = tmp_path / "last.ckpt"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(victim["ckpt"].read_bytes()[:3000])
    elif damage == "text":
        path.write_text("hello, I am not a checkpoint\n")
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(SeqRecError) as refused:
        run.continue_checkpoints([], path)  # what `seqrec train ckpt_path=` checks before training
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)
    if damage != "foreign":  # the Trainer's own loads (a ddp_spawn parent reads a bare state dict) refuse the rest
        with pytest.raises(SeqRecError):
            SafeCheckpointIO().load_checkpoint(path)


# --------------------------------------------------------------------------------------------- stored data configs
DATA_ATTACKS = {
    "callable target": lambda c: {"_target_": "shutil.copyfile", "src": __file__, "dst": str(c)},
    "open target": lambda c: {"_target_": "builtins.open", "file": str(c), "mode": "w"},
    "nested target": lambda c: {
        "_target_": "lightning_seqrec.data.SeqRecDataModule",
        "dataset": "table",
        "columns": {"_target_": "pathlib.Path.touch", "self": str(c)},
    },
    "hydra keys": lambda c: {"_target_": "builtins.open", "_args_": [str(c), "w"], "_partial_": False},
    "interpolation": lambda c: {
        "_target_": "lightning_seqrec.data.SeqRecDataModule",
        "dataset": "table",
        "path": "${oc.env:HOME}/${oc.create:{_target_:builtins.open,file:" + str(c) + ",mode:w}}",
    },
    "argument the class does not take": lambda c: {
        "_target_": "lightning_seqrec.data.SeqRecDataModule",
        "dataset": "table",
        "on_setup": {"_target_": "builtins.open", "file": str(c), "mode": "w"},
    },
}


@pytest.mark.parametrize("attack", list(DATA_ATTACKS))
def test_stored_data_configs_cannot_name_code(victim, canary, tmp_path, attack):
    path = tampered_checkpoint(
        victim, tmp_path, lambda ckpt: ckpt["seqrec"].update(data_config=DATA_ATTACKS[attack](canary))
    )
    module = load_checkpoint(path)
    cfg = OmegaConf.create({"ckpt": str(path), "data": None})
    with pytest.raises(SeqRecError, match="refused"):
        cli._checkpoint_data(cfg, module)


def test_recommend_and_eval_refuse_a_crafted_data_config_end_to_end(victim, canary, tmp_path):
    attack = DATA_ATTACKS["callable target"](canary)
    path = tampered_checkpoint(victim, tmp_path, lambda ckpt: ckpt["seqrec"].update(data_config=attack))
    recommended = seqrec("recommend", f"ckpt={path}", f"user={victim['user']}", cwd=tmp_path)
    assert_one_line_refusal(recommended, "_target_='shutil.copyfile'", "refused")
    evaluated = seqrec("eval", f"ckpt={path}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert_one_line_refusal(evaluated, "refused")


def test_the_genuine_stored_data_config_still_builds_its_data(victim):
    module = load_checkpoint(victim["ckpt"])
    datamodule = cli._checkpoint_data(OmegaConf.create({"ckpt": str(victim["ckpt"]), "data": None}), module)
    assert datamodule.vocab == module.vocab


def test_a_stored_dataset_name_cannot_traverse_paths(victim, tmp_path):
    escape = "../" * 8 + str(tmp_path / "escaped").lstrip("/")
    config = {"_target_": "lightning_seqrec.data.SeqRecDataModule", "dataset": escape}
    path = tampered_checkpoint(victim, tmp_path, lambda ckpt: ckpt["seqrec"].update(data_config=config))
    with pytest.raises(SeqRecError):
        cli._checkpoint_data(OmegaConf.create({"ckpt": str(path), "data": None}), load_checkpoint(path))
    assert not (tmp_path / "escaped").exists()


# --------------------------------------------------------------------------------------------- tampered records
def shift_ids(vocab: dict) -> None:
    vocab["ids"] = vocab["ids"][1:] + vocab["ids"][:1]


def test_a_checkpoint_with_a_shorter_vocabulary_is_refused(victim, tmp_path):
    path = tampered_checkpoint(victim, tmp_path, lambda ckpt: ckpt["seqrec"]["vocab"]["ids"].pop())
    with pytest.raises(SeqRecError, match="items .* rows with padding.* item embedding"):
        load_checkpoint(path)
    with pytest.raises(SeqRecError):
        load_source(path)


def test_a_checkpoint_with_a_shifted_vocabulary_is_refused(victim, tmp_path):
    path = tampered_checkpoint(victim, tmp_path, lambda ckpt: shift_ids(ckpt["seqrec"]["vocab"]))
    with pytest.raises(SeqRecError, match="vocab does not match the vocab_sha256"):
        load_checkpoint(path)


def edit_json(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def oversized_header(path: Path) -> None:
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")


FOLDER_ATTACKS = {
    "pickled weights only": (
        lambda f, c: ((f / "model.safetensors").unlink(), pickle_bomb(f / "pytorch_model.bin", c)),
        "never read",
    ),
    "pickle named as safetensors": (lambda f, c: pickle_bomb(f / "model.safetensors", c), "not a readable safetensors"),
    "oversized safetensors header": (lambda f, c: oversized_header(f / "model.safetensors"), "not a readable"),
    "shifted vocabulary": (lambda f, c: edit_json(f / "vocab.json", shift_ids), "vocab does not match"),
    "retitled items": (
        lambda f, c: edit_json(f / "vocab.json", lambda v: v.update(titles={"1": "Buy now at evil.example"})),
        "vocab does not match",
    ),
    "flipped config": (
        lambda f, c: edit_json(f / "config.json", lambda cfg: cfg["architecture"].update(mask_seen=False)),
        "architecture does not match",
    ),
    "target in the architecture": (
        lambda f, c: edit_json(
            f / "config.json",
            lambda cfg: cfg["architecture"].update(init={"_target_": "builtins.open", "file": str(c), "mode": "w"}),
        ),
        "keys this version does not take",
    ),
    "target in backbone arguments": (
        lambda f, c: edit_json(
            f / "config.json",
            lambda cfg: cfg["architecture"]["backbone_kwargs"].update(_target_="builtins.open", file=str(c), mode="w"),
        ),
        "rejected its arguments",
    ),
    "remote code beside the weights": (
        lambda f, c: (
            (f / "modeling_evil.py").write_text(f"open({str(c)!r}, 'w')\n"),
            edit_json(f / "config.json", lambda cfg: cfg.update(auto_map={"AutoModel": "modeling_evil.Evil"})),
        ),
        None,
    ),
    "stripped hashes": (lambda f, c: strip_metadata(f / "model.safetensors"), "record no architecture_sha256"),
}


def strip_metadata(path: Path) -> None:
    weights, _ = hub._read_weights(path)
    path.write_bytes(safetensors.torch.save(weights))


def zoo_spec(folder: Path, tmp_path: Path, monkeypatch) -> str:
    """A zoo index naming `folder` as the local folder of entry `evil.zoo`."""
    index = tmp_path / "zoo" / "index.yaml"
    index.parent.mkdir(exist_ok=True)
    index.write_text(yaml.safe_dump({"evil.zoo": {"local": str(folder), "hub": "attacker/evil"}}))
    monkeypatch.setenv("SEQREC_ZOO_INDEX", str(index))
    return "evil.zoo"


def hf_spec(folder: Path, tmp_path: Path, monkeypatch, offline_cache: Path) -> str:
    """The folder laid out in an offline Hub cache as `attacker/evil`, extra files and all."""
    populate_cache(offline_cache, "attacker/evil", folder)
    return "hf-hub:attacker/evil"


@pytest.mark.parametrize("route", ["local-dir", "hf-hub", "zoo"])
@pytest.mark.parametrize("attack", list(FOLDER_ATTACKS))
def test_hub_folders_cannot_run_code_or_pass_tampered_files(
    victim, canary, tmp_path, monkeypatch, offline_cache, route, attack
):
    folder = Path(shutil.copytree(victim["hub"], tmp_path / "evil"))
    plant, refusal = FOLDER_ATTACKS[attack]
    plant(folder, canary)
    if route == "local-dir":
        name = f"local-dir:{folder}"
    elif route == "hf-hub":
        name = hf_spec(folder, tmp_path, monkeypatch, offline_cache)
    else:
        name = zoo_spec(folder, tmp_path, monkeypatch)
    if refusal is None:  # files beside the weights are never imported: the genuine model loads, nothing runs
        assert hub.load(name).vocab == load_checkpoint(victim["ckpt"]).vocab
        return
    with pytest.raises(SeqRecError, match=refusal) as refused:
        hub.load(name)
    assert "\n" not in str(refused.value)


def test_zoo_list_marks_a_tampered_folder_broken_instead_of_showing_its_card(victim, tmp_path, monkeypatch):
    from lightning_seqrec import zoo

    folder = Path(shutil.copytree(victim["hub"], tmp_path / "evil"))
    edit_json(folder / "vocab.json", shift_ids)
    zoo_spec(folder, tmp_path, monkeypatch)
    (entry,) = zoo.list_entries()
    assert zoo.card_metrics(folder) == {"test/ndcg@10": 0.5}  # the card still claims them
    assert entry.status == "broken" and not entry.metrics and "vocab does not match" in entry.problem


# --------------------------------------------------------------------------------------------- serving and scoring
def test_a_pickled_user_state_file_never_runs_and_stops_seqrec_serve_in_one_line(victim, canary, tmp_path):
    pytest.importorskip("fastapi", reason="the service needs the [serve] extra: pip install -e '.[serve]'")
    from lightning_seqrec.errors import CheckpointError
    from lightning_seqrec.serve.state import UserStateStore

    bomb = pickle_bomb(tmp_path / "users.safetensors", canary)
    with pytest.raises(CheckpointError, match="not a readable user-state file"):
        UserStateStore(load_checkpoint(victim["ckpt"])).load(bomb)
    result = seqrec("serve", f"model={victim['ckpt']}", "port=0", f"state_file={bomb}", cwd=tmp_path)
    assert_one_line_refusal(result, "not a readable user-state file")


@pytest.mark.parametrize("name", ["top10.parquet", "top10.csv", "top10.pkl"])
def test_a_pickled_predictions_file_never_runs(victim, canary, tmp_path, name):
    bomb = tmp_path / name
    bomb.write_bytes(pickle.dumps({"user_id": [Payload(canary)], "item_id": [1], "rank": [1]}))
    result = seqrec("eval", f"predictions={bomb}", f"ckpt={victim['ckpt']}", cwd=tmp_path)
    assert_one_line_refusal(result, str(bomb))
