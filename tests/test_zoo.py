"""The model zoo: a two-seed recipe built end to end on the chain data (folder, card with mean ± sd, the shipped seed,
scores), run folders reused, continued or refused (and never trusted to run code), a one-seed recipe, listing, the
`seqrec zoo` command, push preparation without a token, pull offline, `ZooPublisher`, and the shipped index and
recipes."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import chain_log, make_chain_datamodule, quiet_trainer, tiny_sasrec
from huggingface_hub import ModelCard, constants
from huggingface_hub.utils import validate_repo_id
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from lightning_seqrec.callbacks import ZooPublisher
from omegaconf import OmegaConf

from lightning_seqrec import SeqRecDataModule, cli, hub, load_checkpoint, zoo
from lightning_seqrec.errors import CheckpointError, ConfigError, SeqRecError

NAME = "sasrec.ce-chain"
ONE = "sasrec.ce-chain-one"  # a recipe without `seeds:`: one run at its own seed= override
COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
SHIPPED = {
    f"sasrec.{objective}-{data}"
    for objective in ("ce", "rcl")
    for data in ("beauty", "sports", "toys", "yelp", "ml-1m")
} | {"gru4rec.ce-beauty", "gru4rec.ce-ml-1m", "lstm.w2v-ce-retailrocket", "lstm.w2v-ce-beauty-last"}
SHIPPED |= {"lru.ce-ml-latest-small", "lru.ce-ml-1m", "tmepsr.ce-ml-latest-small"}
DATA_TARGETS = {
    "beauty": "AmazonBeauty",
    "sports": "AmazonSports",
    "toys": "AmazonToys",
    "yelp": "Yelp",
    "ml-1m": "MovieLens1M",
    "ml-latest-small": "MovieLensLatestSmall",
    "retailrocket": "LabelPredictionDataModule",
    "beauty-last": "LabelPredictionDataModule",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A repo-like folder with the chain data as a CSV, a zoo index (a tiny recipe, a planned entry and a broken
    folder), and SEQREC_ZOO_INDEX pointing at it for the module."""
    home = tmp_path_factory.mktemp("zoo-home")
    chain_log().to_csv(home / "events.csv", index=False)
    (home / "zoo" / "recipes").mkdir(parents=True)
    recipe = [
        "data=table",
        f"data.path={home / 'events.csv'}",
        *[f"data.columns.{ours}={theirs}" for ours, theirs in COLUMNS.items()],
        "data.max_len=8",
        "model.embedding_dim=16",
        "model.num_blocks=1",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    (home / "zoo" / "recipes" / f"{NAME}.yaml").write_text(json.dumps({"overrides": recipe, "seeds": [0, 1]}))
    (home / "zoo" / "recipes" / f"{ONE}.yaml").write_text(json.dumps({"overrides": [*recipe, "seed=3"]}))
    (home / "zoo" / "hub" / "sasrec.ce-broken").mkdir(parents=True)
    (home / "zoo" / "index.yaml").write_text(
        f"{NAME}: {{recipe: recipes/{NAME}.yaml, hub: seqrec-org/{NAME}, local: hub/{NAME}}}\n"
        f"{ONE}: {{recipe: recipes/{ONE}.yaml, hub: seqrec-org/{ONE}, local: hub/{ONE}}}\n"
        "sasrec.rcl-chain: {hub: seqrec-org/sasrec.rcl-chain}\n"
        "sasrec.ce-broken: {hub: seqrec-org/sasrec.ce-broken}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQREC_ZOO_INDEX", str(home / "zoo" / "index.yaml"))
        yield home


@pytest.fixture(scope="module")
def built(home) -> zoo.Built:
    """`zoo.build` of the tiny two-seed recipe, fp32 so that scores can be compared exactly."""
    return zoo.build(NAME, fp16=False, extra_overrides=[f"hydra.run.dir={home / 'runs' / 'seed{seed}'}"])


@pytest.fixture
def offline_without_token(monkeypatch, tmp_path):
    """No Hugging Face token anywhere, offline mode on and an empty Hub cache: any request would fail."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def chain_datamodule(home: Path) -> SeqRecDataModule:
    dm = SeqRecDataModule("table", path=str(home / "events.csv"), columns=COLUMNS, max_len=8)
    dm.setup()
    return dm


# --------------------------------------------------------------------------------------------- building
def test_built_folder_holds_the_best_validated_seed_and_scores_like_its_tested_checkpoint(home, built):
    assert built.folder == home / "zoo" / "hub" / NAME
    assert sorted(p.name for p in built.folder.iterdir()) == sorted(hub.HUB_FILES)
    assert not HydraConfig.initialized()  # the build leaves no Hydra state behind
    assert [(r.seed, r.run_dir, r.how) for r in built.runs] == [
        (seed, home / "runs" / f"seed{seed}", "trained") for seed in (0, 1)
    ]
    val_scores = {}
    for r in built.runs:  # each seed's tested checkpoint, validated again here
        (best,) = (r.run_dir / "checkpoints").glob("epoch*.ckpt")
        assert r.best_checkpoint == best
        (validated,) = quiet_trainer().validate(load_checkpoint(best), chain_datamodule(home), verbose=False)
        val_scores[r.seed] = validated["val/ndcg@10"]
        assert r.val_score == pytest.approx(val_scores[r.seed], abs=1e-6)
    assert built.shipped.seed == max(val_scores, key=val_scores.get)
    tested = load_checkpoint(built.shipped.best_checkpoint)
    histories = [tested.vocab.raw_ids[i : i + 5] for i in (0, 7, 20)]
    expected = tested.score_histories(histories)
    for loaded in (zoo.load(NAME), zoo.load(f"local-dir:{built.folder}")):
        assert loaded.vocab == tested.vocab
        assert torch.equal(loaded.score_histories(histories), expected)


def test_card_records_the_seeds_mean_and_sd_fingerprint_and_commands(home, built):
    runs = [json.loads((home / "runs" / f"seed{seed}" / "test_metrics.json").read_text()) for seed in (0, 1)]
    assert runs[0] != runs[1]  # two seeds, two models
    means = {k: (runs[0][k] + runs[1][k]) / 2 for k in runs[0] if None not in (runs[0][k], runs[1][k])}
    sds = {k: abs(runs[0][k] - runs[1][k]) / math.sqrt(2) for k in means}
    assert built.metrics == pytest.approx(means) and built.spread == pytest.approx(sds)
    assert zoo.card_metrics(built.folder) == pytest.approx(means)  # read back through huggingface_hub's card parser
    spread, num_seeds = zoo.card_spread(built.folder)
    assert num_seeds == 2 and spread == pytest.approx(sds)
    card = ModelCard.load(built.folder / hub.CARD_FILE)
    assert card.data.datasets == ["custom"]
    assert f"`{chain_datamodule(home).fingerprint()}`" in card.text
    commands = re.search(rf"# seqrec zoo build {NAME} ran:\n(.*)\n(.*)\n```", card.text).groups()
    assert [c.split()[:3] for c in commands] == [["seqrec", "train", "data=table"]] * 2
    assert [c.split()[-1] for c in commands] == ["seed=0", "seed=1"]
    ndcg = f"| test/ndcg@10 | {means['test/ndcg@10']:.4f} | {sds['test/ndcg@10']:.4f} |"
    assert "Mean ± sample sd over 2 seeds (0, 1)" in card.text and ndcg in card.text
    for r in built.runs:
        row = f"| {r.seed} | {r.val_score:.4f} | {r.metrics['test/ndcg@10']:.4f} | {r.metrics['test/hr@10']:.4f} |"
        assert f"{row} {'shipped' if r is built.shipped else ''} | trained |" in card.text
    records = card.data.to_dict()[hub.SEEDS_KEY]["runs"]
    assert [(r["seed"], r["shipped"], r["test/ndcg@10"]) for r in records] == [
        (seed, seed == built.shipped.seed, runs[seed]["test/ndcg@10"]) for seed in (0, 1)
    ]


def test_a_second_build_reuses_the_finished_runs_without_training(home, built, tmp_path):
    stamps = {p: p.stat().st_mtime_ns for p in (home / "runs").rglob("*.ckpt")}
    again = zoo.build(
        NAME, output_root=tmp_path, fp16=False, extra_overrides=[f"hydra.run.dir={home / 'runs' / 'seed{seed}'}"]
    )
    assert [r.how for r in again.runs] == ["reused", "reused"]
    assert {p: p.stat().st_mtime_ns for p in (home / "runs").rglob("*.ckpt")} == stamps
    assert again.metrics == built.metrics and again.shipped.seed == built.shipped.seed
    assert (again.folder / hub.WEIGHTS_FILE).read_bytes() == (built.folder / hub.WEIGHTS_FILE).read_bytes()


def test_an_interrupted_seed_continues_from_its_last_checkpoint(home, built, tmp_path):
    shutil.copytree(home / "runs", tmp_path / "runs")
    (tmp_path / "runs" / "seed1" / "test_metrics.json").unlink()  # seed 1 stopped after its last epoch's checkpoint
    again = zoo.build(
        NAME, output_root=tmp_path, fp16=False, extra_overrides=[f"hydra.run.dir={tmp_path / 'runs' / 'seed{seed}'}"]
    )
    assert [r.how for r in again.runs] == ["reused", "continued"]
    assert again.runs[1].metrics == built.runs[1].metrics  # both epochs were done: the same checkpoint was tested
    assert (
        "| 1 | " in (again.folder / hub.CARD_FILE).read_text()
        and "| continued |" in (again.folder / hub.CARD_FILE).read_text()
    )


def test_a_recipe_without_seeds_builds_one_run_at_its_own_seed(home, tmp_path):
    one = zoo.build(ONE, fp16=False, extra_overrides=[f"hydra.run.dir={tmp_path / 'run'}"])
    assert [(r.seed, r.run_dir) for r in one.runs] == [(3, tmp_path / "run")] and one.shipped is one.runs[0]
    assert one.spread == {k: 0.0 for k in one.metrics} and zoo.card_spread(one.folder) == ({}, 1)
    card = (one.folder / hub.CARD_FILE).read_text()
    (command,) = re.search(rf"# seqrec zoo build {ONE} ran:\n(.*)\n```", card).groups()
    assert command.startswith("seqrec train data=table") and command.endswith("seed=3")
    assert hub.SEEDS_KEY not in card and "| test/ndcg@10 | " in card and "### Seeds" not in card


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.max_lenn=5"], r"(?s)does not compose .*'data.max_lenn'.*use \+data.max_lenn=5"),
        (["test=false"], "always tests: drop test=false"),
        (["hydra.run.dir=somewhere"], r"has 2 seeds: put `\{seed\}` in hydra.run.dir="),
        (["ckpt_path=last.ckpt"], "continues an interrupted seed from its run folder's last.ckpt: drop ckpt_path="),
    ],
)
def test_build_refuses_bad_overrides_in_one_line(built, overrides, message):
    with pytest.raises(ConfigError, match=message):
        zoo.build(NAME, extra_overrides=overrides)


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"overrides": ["data=table"], "seeds": [0, 0]}, "`seeds:` must list distinct integers"),
        ({"overrides": ["data=table"], "seeds": "0,1"}, "`seeds:` must list distinct integers"),
        ({"overrides": ["data=table", "seed=1"], "seeds": [0]}, "sets both `seeds:` and a `seed=` override"),
    ],
)
def test_a_recipe_with_bad_seeds_is_refused(tmp_path, recipe, message):
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    model = zoo.ZooEntry("x.y", tmp_path / "recipe.yaml", None, None, tmp_path / "hub", "planned")
    with pytest.raises(ConfigError, match=message):
        model.seeds()


# --------------------------------------------------------------------------------------------- reused run folders
class Payload:
    """Unpickling this creates `target`: proof that code in a run folder ran."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def planted_runs(home: Path, tmp_path: Path) -> Path:
    shutil.copytree(home / "runs", tmp_path / "runs")
    return tmp_path / "runs"


def build_over(runs: Path, tmp_path: Path) -> zoo.Built:
    return zoo.build(NAME, output_root=tmp_path / "out", extra_overrides=[f"hydra.run.dir={runs / 'seed{seed}'}"])


def test_a_folder_of_another_config_is_refused_and_nothing_of_it_runs(home, built, tmp_path):
    runs = planted_runs(home, tmp_path)
    record = runs / "seed1" / ".hydra" / "config.yaml"
    config = OmegaConf.load(record)
    config.model = {"_target_": "pathlib.Path.touch", "self": str(tmp_path / "canary")}  # code an attacker names
    config.trainer.max_epochs = 7
    OmegaConf.save(config, record)
    with pytest.raises(ConfigError, match=r"seed1 holds a run of another config \(it differs in model, trainer.max_"):
        build_over(runs, tmp_path)
    assert not (tmp_path / "canary").exists() and not (tmp_path / "out").exists()
    (record).unlink()
    with pytest.raises(ConfigError, match=r"holds files but no .hydra/config.yaml saying which config made them"):
        build_over(runs, tmp_path)


@pytest.mark.parametrize("planted", ["last.ckpt", "best checkpoint"])
def test_a_pickle_planted_in_a_reused_folder_never_runs(home, built, tmp_path, planted):
    runs = planted_runs(home, tmp_path)
    checkpoints = runs / f"seed{built.shipped.seed}" / "checkpoints"
    target = checkpoints / "last.ckpt" if planted == "last.ckpt" else next(checkpoints.glob("epoch*.ckpt"))
    payload = {"state_dict": {}, "seqrec": {}, "callbacks": {}, "payload": Payload(tmp_path / "canary")}
    torch.save(payload, target, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(SeqRecError, match="weights_only=True refuses arbitrary pickle") as refused:
        build_over(runs, tmp_path)
    assert len(str(refused.value).splitlines()) == 1
    assert not (tmp_path / "canary").exists() and not (tmp_path / "out").exists()


def test_list_entries_reads_the_state_from_each_folder(built):
    entries = {entry.name: entry for entry in zoo.list_entries()}
    assert list(entries) == [NAME, ONE, "sasrec.rcl-chain", "sasrec.ce-broken"]
    assert entries[NAME].built and entries[NAME].metrics == pytest.approx(built.metrics)
    assert entries[NAME].num_seeds == 2 and entries[NAME].spread == pytest.approx(built.spread)
    assert entries["sasrec.rcl-chain"].status == "planned" and entries["sasrec.rcl-chain"].metrics == {}
    broken = entries["sasrec.ce-broken"]
    assert broken.status == "broken" and "is missing config.json" in broken.problem


# --------------------------------------------------------------------------------------------- command line
def test_zoo_command_lists_pushes_and_refuses_unknown_names_in_one_line(built, offline_without_token, capsys):
    cli.main(["zoo", "list"])
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:] if line[0] != " "}
    status, ndcg, plus_minus, sd = rows[NAME][:4]
    assert status == "built" and plus_minus == "±" and rows[NAME][7] == "2"  # ndcg ± sd, hr ± sd, 2 seeds
    assert float(ndcg) == pytest.approx(built.metrics["test/ndcg@10"], abs=1e-4)
    assert float(sd) == pytest.approx(built.spread["test/ndcg@10"], abs=1e-4)
    assert rows["sasrec.rcl-chain"][:4] == ["planned", "-", "-", "-"]
    cli.main(["zoo", "push", NAME])
    out = capsys.readouterr().out
    assert out.startswith(f"{built.folder} -> hf-hub:seqrec-org/{NAME} (not sent: no token):")
    assert "model.safetensors" in out
    for args, message in [
        (
            ["zoo", "build", "sasrec.ce-nope"],
            r"Unknown zoo model 'sasrec\.ce-nope'; .* lists: sasrec\.ce-broken, sasrec\.ce-chain, sasrec\.ce-chain-",
        ),
        (["zoo", "push"], r"`seqrec zoo push` is not a zoo command; usage: seqrec zoo list \| build NAME"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
        assert re.search(message, err), err


# --------------------------------------------------------------------------------------------- the Hub
def test_push_without_token_runs_the_upload_preparation_and_skips(built, offline_without_token, caplog):
    pushed = zoo.push(NAME)
    assert "skipped: no Hugging Face token" in caplog.text
    assert pushed.skipped and pushed.repo == f"seqrec-org/{NAME}" and pushed.folder == built.folder
    assert sorted(op.path_in_repo for op in pushed.operations) == sorted(hub.HUB_FILES)
    for op in pushed.operations:
        content = (built.folder / op.path_in_repo).read_bytes()
        assert op.upload_info.sha256 == hashlib.sha256(content).digest() and op.upload_info.size == len(content)
    with pytest.raises(ConfigError, match=r"'sasrec.rcl-chain' is not built .*seqrec zoo build sasrec.rcl-chain"):
        zoo.push("sasrec.rcl-chain")


def test_pull_offline_says_how_to_proceed(home, offline_without_token):
    with pytest.raises(CheckpointError, match=r"Pulling needs the Hub.*`seqrec zoo build sasrec.rcl-chain`"):
        zoo.pull("sasrec.rcl-chain")


# --------------------------------------------------------------------------------------------- ZooPublisher
def test_zoo_publisher_writes_a_loadable_folder_at_fit_end_and_skips_the_push(tmp_path, offline_without_token):
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = tiny_sasrec(dm)
    publisher = ZooPublisher(tmp_path / "published", repo_id="seqrec-org/chain", metrics_from="val", fp16=True)
    trainer = quiet_trainer(max_epochs=1, callbacks=[publisher])
    trainer.fit(module, dm)
    assert publisher.written == tmp_path / "published" and publisher.commit_url is None
    val_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    assert val_metrics and zoo.card_metrics(publisher.written) == val_metrics
    histories = [dm.user_history(u)[:-1] for u in dm.split.test.history.users[:4]]
    expected = module.eval().score_histories(histories, exclude_seen=False)[:, 1:]
    scores = hub.from_pretrained(publisher.written).score_histories(histories, exclude_seen=False)[:, 1:]
    torch.testing.assert_close(scores, expected, rtol=0, atol=2e-3 * expected.abs().max().item())  # fp16 weights
    with pytest.raises(ConfigError, match="metrics_from='train'"):
        ZooPublisher(tmp_path / "x", metrics_from="train")


# --------------------------------------------------------------------------------------------- the shipped zoo
def test_shipped_index_names_recipes_that_exist_and_compose_to_their_names(monkeypatch):
    monkeypatch.delenv("SEQREC_ZOO_INDEX", raising=False)
    entries = zoo.list_entries()
    assert {entry.name for entry in entries} == SHIPPED
    for entry in entries:
        validate_repo_id(entry.repo)
        assert entry.repo == f"lightning-seqrec/{entry.name}"
        assert entry.folder == hub.DEFAULT_ZOO_INDEX.parent / "hub" / entry.name
        assert entry.recipe.is_file(), entry.recipe
        cfg = zoo.train_config(entry.overrides())
        arch, _, tag = entry.name.partition(".")
        assert cfg.model._target_.rsplit(".", 1)[-1].lower() in (arch, f"{arch}rec"), entry.name
        data = next(data for data in DATA_TARGETS if tag.endswith(f"-{data}"))
        assert cfg.data._target_.rsplit(".", 1)[-1] == DATA_TARGETS[data], entry.name
        assert ("rcl" in cfg.objective) == ("rcl" in tag) and ("rcl" in tag) == ("weak_positive_miner" in cfg.callbacks)
        for node in (cfg.data, cfg.model, *cfg.objective.values()):
            get_object(node._target_)


def test_shipped_built_folders_load_and_their_cards_record_their_own_recipe(monkeypatch):
    """Every built folder under zoo/hub/ loads by its zoo name, is its recipe's architecture, has measured test
    metrics, and its card's command is its recipe's overrides (run options such as logger=none may follow)."""
    monkeypatch.delenv("SEQREC_ZOO_INDEX", raising=False)
    built = [entry for entry in zoo.list_entries() if entry.built]
    assert built, "no zoo entry is built: zoo/hub/ should hold at least sasrec.ce-beauty"
    for entry in built:
        module = zoo.load(entry.name)
        arch = entry.name.partition(".")[0]  # a backbone (sasrec, lru) or the recipe's model class (tmepsr)
        model_class = zoo.train_config(entry.overrides()).model._target_.rpartition(".")[2].lower()
        assert arch in (module.hparams.backbone, f"{module.hparams.backbone}rec", model_class), entry.name
        assert 0 < entry.metrics["test/ndcg@10"] <= entry.metrics["test/hr@10"] <= 1, entry.name
        card = (entry.folder / "README.md").read_text()
        command = re.search(rf"# seqrec zoo build {re.escape(entry.name)} ran:\n(.*)\n", card)
        assert command, f"{entry.name}: the card does not record the command that built it"
        ran = command.group(1).split()
        recipe = entry.overrides()
        assert ran[:2] == ["seqrec", "train"] and ran[2 : 2 + len(recipe)] == recipe, (entry.name, ran, recipe)
