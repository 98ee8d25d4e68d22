"""Hub format: round trips (local folder, offline Hub cache, zoo names), refusals, push preparation, golden scores."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import safetensors
import torch
from conftest import make_chain_datamodule, populate_cache, quiet_trainer, tiny_sasrec
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants
from huggingface_hub.utils import filter_repo_objects

import lightning_seqrec
from lightning_seqrec import SASRec, hub
from lightning_seqrec.errors import CheckpointError, ConfigError

GOLDEN = Path(__file__).resolve().parent / "assets" / "golden-sasrec"
METRICS = {"test/ndcg@10": 0.314159, "test/hr@10": 0.5123}
FINGERPRINT = "ab" * 32
RECIPE = "seqrec train experiment=sasrec_chain_ce"
REPO = "seqrec-org/sasrec-chain"


@pytest.fixture(scope="module")
def trained() -> tuple[SASRec, list[list]]:
    """A tiny SASRec trained one epoch on the chain data (with two titles), and six test histories."""
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = tiny_sasrec(dm)
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(module, dm)
    module.item_titles = {"1": "Item one", "2": "Élément deux"}
    histories = [dm.user_history(u)[:-1] for u in dm.split.test.history.users[:6]]
    return module.eval(), histories


@pytest.fixture(scope="module")
def hub_folder(trained, tmp_path_factory) -> Path:
    module, _ = trained
    folder = tmp_path_factory.mktemp("hub") / "sasrec.ce-chain"
    dataset = {"name": "chain", "split": "loo"}
    return hub.save_pretrained(module, folder, metrics=METRICS, dataset=dataset, fingerprint=FINGERPRINT, recipe=RECIPE)


@pytest.fixture
def hub_copy(hub_folder, tmp_path) -> Path:
    """A copy of the saved folder that a test may damage."""
    return Path(shutil.copytree(hub_folder, tmp_path / hub_folder.name))


def assert_same_model(loaded, module, histories) -> None:
    assert not loaded.training
    assert torch.equal(loaded.score_histories(histories), module.score_histories(histories))
    assert loaded.vocab == module.vocab and loaded.item_titles == module.item_titles


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


# --------------------------------------------------------------------------------------------- round trips
def test_local_folder_round_trip_gives_identical_scores_vocab_and_titles(trained, hub_folder):
    module, histories = trained
    assert sorted(p.name for p in hub_folder.iterdir()) == sorted(hub.HUB_FILES)
    assert [p.name for p in hub_folder.parent.iterdir()] == [hub_folder.name]  # no temp folder left behind
    config = json.loads((hub_folder / hub.CONFIG_FILE).read_text())
    assert config["architecture"] == module.architecture and config["objectives"] == {"ce": "FullCrossEntropy"}
    assert config["library_version"] == lightning_seqrec.__version__ and config["eval_ks"] == [5, 10, 20]
    with safetensors.safe_open(hub_folder / hub.WEIGHTS_FILE, "pt") as weights:
        assert not [k for k in weights.keys() if k.startswith(("objectives.", "evaluators."))]
    assert_same_model(hub.from_pretrained(hub_folder), module, histories)
    assert_same_model(hub.from_pretrained(str(hub_folder)), module, histories)
    assert_same_model(hub.load(f"local-dir:{hub_folder}"), module, histories)


def test_saving_the_same_model_again_writes_the_same_bytes(trained, hub_folder, tmp_path):
    """safetensors orders a header's metadata at random; the weights file is canonicalised, so that an unchanged
    model re-saved (or re-built by `seqrec zoo build`) gives an identical file and pushes no new Hub commit. Six
    saves: with the three metadata keys unordered, all six agreeing by chance would be a 1 in 6**5 event."""
    module, _ = trained
    blobs = {(hub.save_pretrained(module, tmp_path / f"again{i}") / hub.WEIGHTS_FILE).read_bytes() for i in range(6)}
    assert blobs == {(hub_folder / hub.WEIGHTS_FILE).read_bytes()}
    with safetensors.safe_open(hub_folder / hub.WEIGHTS_FILE, "pt") as weights:
        assert weights.metadata()["format"] == "pt" and len(weights.metadata()) == 3
        assert torch.equal(weights.get_tensor("item_embedding.weight"), module.item_embedding.weight.detach())


def test_fp16_weights_halve_the_file_and_score_within_tolerance(trained, hub_folder, tmp_path):
    """fp16 keeps 11 significant bits (relative rounding <= 2**-11 ~ 5e-4 per weight); through one attention
    block the scores moved by ~4e-4 of the largest |score| when measured, so the tolerance is 2e-3 of it."""
    module, histories = trained
    folder = hub.save_pretrained(module, tmp_path / "fp16", fp16=True)
    with safetensors.safe_open(folder / hub.WEIGHTS_FILE, "pt") as weights:
        assert weights.get_tensor("item_embedding.weight").dtype == torch.float16
    assert (folder / hub.WEIGHTS_FILE).stat().st_size < 0.6 * (hub_folder / hub.WEIGHTS_FILE).stat().st_size
    expected = module.score_histories(histories, exclude_seen=False)[:, 1:]
    scores = hub.from_pretrained(folder).score_histories(histories, exclude_seen=False)[:, 1:]
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected, rtol=0, atol=2e-3 * expected.abs().max().item())


def test_model_card_metadata_and_table_come_from_the_given_metrics(hub_folder):
    card = ModelCard.load(hub_folder / hub.CARD_FILE)  # huggingface_hub's own parser of the YAML metadata
    assert card.data.library_name == "lightning-seqrec" and card.data.license == "apache-2.0"
    assert card.data.datasets == ["chain"]
    assert {"sequential-recommendation", "sasrec"} <= set(card.data.tags)
    assert {r.metric_name: r.metric_value for r in card.data.eval_results} == METRICS
    assert {r.metric_type for r in card.data.eval_results} == {"ndcg@10", "hr@10"}
    for line in ("| test/ndcg@10 | 0.3142 |", "| test/hr@10 | 0.5123 |", "- split protocol: loo", FINGERPRINT, RECIPE):
        assert line in card.text


def test_hf_hub_names_load_offline_from_a_prepopulated_cache(trained, hub_folder, offline_cache, tmp_path):
    module, histories = trained
    commit = populate_cache(offline_cache, REPO, hub_folder, revision="v1")
    assert_same_model(hub.load(f"hf-hub:{REPO}@v1"), module, histories)
    assert_same_model(hub.load(f"hf-hub:{REPO}@{commit}"), module, histories)
    other_cache = tmp_path / "other-cache"
    populate_cache(other_cache, REPO, hub_folder)
    assert_same_model(hub.load(f"hf-hub:{REPO}", cache_dir=other_cache), module, histories)


def test_uncached_repo_offline_says_how_to_get_it(offline_cache):
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE=1.*local-dir:PATH"):
        hub.load("hf-hub:seqrec-org/never-downloaded@v1")
    with pytest.raises(ConfigError, match="not a Hub repo id"):
        hub.load("hf-hub:not a repo")


def test_zoo_names_resolve_through_the_index_preferring_the_local_folder(
    trained, hub_folder, offline_cache, tmp_path, monkeypatch
):
    module, histories = trained
    shutil.copytree(hub_folder, tmp_path / "zoo" / "hub" / "sasrec.ce-chain")
    populate_cache(offline_cache, REPO, hub_folder, revision="v1")
    index = tmp_path / "zoo" / "index.yaml"
    index.write_text(
        "sasrec.ce-chain: {hub: seqrec-org/never-downloaded, revision: main, local: hub/sasrec.ce-chain}\n"
        f"sasrec.ce-cached: {{hub: {REPO}, revision: v1}}\n"
        "sasrec.ce-nowhere: {hub: seqrec-org/never-downloaded}\n"
    )
    monkeypatch.setenv("SEQREC_ZOO_INDEX", str(index))
    assert_same_model(hub.load("sasrec.ce-chain"), module, histories)  # local folder: the Hub is never asked
    assert_same_model(hub.load("sasrec.ce-cached"), module, histories)  # no local folder: the Hub cache
    assert_same_model(hub.from_pretrained("sasrec.ce-chain"), module, histories)
    with pytest.raises(CheckpointError, match=r"'sasrec.ce-nowhere' has no local folder at .*zoo/hub/sasrec.ce-now"):
        hub.load("sasrec.ce-nowhere")
    with pytest.raises(ConfigError, match=r"known names: sasrec.ce-cached, sasrec.ce-chain, .*local-dir:.*hf-hub:"):
        hub.load("sasrec.rcl-chain")
    monkeypatch.setenv("SEQREC_ZOO_INDEX", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml does not exist.*local-dir:.*hf-hub:"):
        hub.load("sasrec.ce-chain")


# --------------------------------------------------------------------------------------------- refusals
class Payload:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pkl", "last.ckpt"])
def test_pickled_weights_are_refused_and_never_unpickled(hub_copy, tmp_path, name):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.exists()  # the payload does run when unpickled
    marker = tmp_path / "marker"
    (hub_copy / hub.WEIGHTS_FILE).unlink()
    (hub_copy / name).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match=rf"{name} instead of model.safetensors.*never read"):
        hub.from_pretrained(hub_copy)
    assert not marker.exists()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_last_item(vocab: dict) -> None:
    vocab["ids"].pop()


REFUSALS = {
    "unknown backbone": (
        lambda f: edit_json(f / "config.json", lambda c: c["architecture"].update(backbone="transformer-xl")),
        ConfigError,
        r"config.json \+ model.safetensors\): Unknown backbone 'transformer-xl'",
    ),
    "vocab does not match weights": (
        lambda f: edit_json(f / "vocab.json", drop_last_item),
        CheckpointError,
        r"vocab.json lists 29 items \(30 rows with padding\) but the item embedding .* has 31 rows",
    ),
    "weights do not match config": (
        lambda f: edit_json(f / "config.json", lambda c: c["architecture"].update(num_items=40)),
        CheckpointError,
        r"(?s)config.json \+ model.safetensors\): weights do not match its architecture.*different models",
    ),
    "truncated weights": (lambda f: truncate(f / "model.safetensors"), CheckpointError, "truncated or corrupt"),
    "corrupt weights": (
        lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64),
        CheckpointError,
        "truncated or corrupt",
    ),
    "missing file": (lambda f: (f / "vocab.json").unlink(), CheckpointError, "is missing vocab.json"),
    "newer format": (
        lambda f: edit_json(f / "config.json", lambda c: c.update(format_version=99)),
        CheckpointError,
        r"format_version 99, written by a newer lightning-seqrec.*pip install -U lightning-seqrec",
    ),
    "foreign config": (
        lambda f: edit_json(f / "config.json", lambda c: c.update(library_name="transformers")),
        CheckpointError,
        "not written by lightning-seqrec",
    ),
    "invalid json": (lambda f: (f / "config.json").write_text("{"), CheckpointError, "config.json is not valid JSON"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_damaged_folders_are_refused_with_a_clear_error(hub_copy, case):
    damage, error, message = REFUSALS[case]
    damage(hub_copy)
    with pytest.raises(error, match=message):
        hub.from_pretrained(hub_copy)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        hub.from_pretrained(tmp_path / "nope")


def test_save_is_atomic_and_never_clobbers_foreign_files(trained, hub_copy, tmp_path, monkeypatch):
    module, _ = trained
    before = {p.name: p.read_bytes() for p in hub_copy.iterdir()}

    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hub, "model_card", broken_card)
    with pytest.raises(RuntimeError, match="disk full"):
        hub.save_pretrained(module, tmp_path / "fresh")
    with pytest.raises(RuntimeError, match="disk full"):
        hub.save_pretrained(module, hub_copy, fp16=True)
    assert {p.name: p.read_bytes() for p in hub_copy.iterdir()} == before  # the old folder is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [hub_copy.name]  # nothing half-written left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds other files \\(notes.txt\\)"):
        hub.save_pretrained(module, tmp_path / "mine")
    with pytest.raises(ConfigError, match="Metrics need the data"):
        hub.save_pretrained(module, tmp_path / "x", metrics=METRICS)
    with pytest.raises(ConfigError, match="no item vocabulary"):
        hub.save_pretrained(SASRec(5, embedding_dim=8, num_blocks=1), tmp_path / "x")


# --------------------------------------------------------------------------------------------- pushing
@pytest.fixture
def recorded_hub_calls(monkeypatch) -> list[tuple[str, dict]]:
    """HfApi's network methods replaced by recorders; offline mode catches any other request."""
    calls: list[tuple[str, dict]] = []
    for method in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, method, lambda self, *a, _m=method, **kw: calls.append((_m, {"args": a, **kw})))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return calls


def test_push_without_token_is_refused_before_any_network_call(hub_folder, recorded_hub_calls, tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ConfigError, match="No Hugging Face token: run `hf auth login`.*Nothing was sent"):
        hub.push_to_hub(hub_folder, REPO)
    assert recorded_hub_calls == []


def test_push_refuses_a_folder_that_does_not_load(hub_copy, recorded_hub_calls):
    (hub_copy / hub.VOCAB_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing vocab.json"):
        hub.push_to_hub(hub_copy, REPO, token="hf_test")
    assert recorded_hub_calls == []


def test_push_sends_the_hub_files_which_pass_huggingface_hub_upload_preparation(hub_folder, recorded_hub_calls):
    hub.push_to_hub(hub_folder, REPO, token="hf_test", revision="v1", private=True)
    assert [name for name, _ in recorded_hub_calls] == ["create_repo", "create_branch", "upload_folder"]
    assert recorded_hub_calls[0][1] == {"args": (REPO,), "private": True, "exist_ok": True}
    upload = recorded_hub_calls[2][1]
    assert upload["repo_id"] == REPO and upload["revision"] == "v1" and upload["folder_path"] == hub_folder
    # What upload_folder does next, locally: filter the folder's files, build and hash the commit operations.
    files = filter_repo_objects(sorted(p.name for p in hub_folder.iterdir()), allow_patterns=upload["allow_patterns"])
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=hub_folder / name) for name in files]
    assert sorted(op.path_in_repo for op in operations) == sorted(hub.HUB_FILES)
    for op in operations:
        assert op.upload_info.sha256 == hashlib.sha256((hub_folder / op.path_in_repo).read_bytes()).digest()


# --------------------------------------------------------------------------------------------- golden outputs
def test_golden_checkpoint_scores_match_the_stored_values():
    """Scores of a committed tiny model; a change here means the architecture or scoring changed: if intended,
    regenerate with `python tests/assets/make_golden.py` and commit the outputs."""
    expected = json.loads((GOLDEN / "expected_scores.json").read_text())
    module = hub.from_pretrained(GOLDEN)
    assert module.item_titles == {"i1": "First item", "i7": "Seventh item"}
    scores = module.score_histories(expected["histories"], exclude_seen=False)[:, 1:]
    torch.testing.assert_close(scores, torch.tensor(expected["scores"]), rtol=0, atol=1e-5)
