"""The model zoo: named models (`sasrec.ce-beauty`), each a recipe, a Hub folder and a Hub repo.

The zoo index (the repo's `zoo/index.yaml`, installed with the package) lists the entries (`recipe`, `hub` repo,
`local` folder); a recipe (`recipes/<name>.yaml` beside it) holds the `seqrec train` overrides that build its
model. `build` trains and tests a recipe and writes the Hub folder, so the card's metrics are the ones measured; a
recipe with `seeds:` is trained once per seed (`seed_runs`), its card shows their mean ± sd and its folder holds the
best-validated seed's weights. Whether an entry is built is read from its folder, never typed into the index. `push`
and `pull` move folders to and from the Hugging Face Hub; `load` reads every name `hub.load` reads.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import yaml
from omegaconf import DictConfig

from lightning_seqrec import hub, run, seed_runs
from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.errors import CheckpointError, ConfigError, SeqRecError
from lightning_seqrec.hub import load

__all__ = ["Built", "Pushed", "ZooEntry", "build", "entry", "list_entries", "load", "pull", "push", "train_config"]

log = logging.getLogger(__name__)

RUN_DIR = "outputs/zoo/{name}/seed{seed}"
"""Default run folder of each seed of a build (checkpoints, logs, test_metrics.json); `hydra.run.dir=...` overrides it
(with `{seed}` in it when the recipe has several seeds). A folder that holds a finished run of the recipe is reused."""


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo index and the state of its local Hub folder: `built` when the folder loads (with its
    card's metrics in `metrics`: means over `num_seeds` seeds, their sample sd in `spread`), `planned` when there is
    no folder, `broken` when it does not load (`problem` says why)."""

    name: str
    recipe: Path
    repo: str | None
    revision: str | None
    folder: Path
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    num_seeds: int = 1
    problem: str = ""

    @property
    def built(self) -> bool:
        return self.status == "built"

    def overrides(self) -> list[str]:
        """The recipe: the `seqrec train` overrides listed under `overrides:` in the recipe file."""
        overrides = self._recipe().get("overrides")
        if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
            raise ConfigError(f"The recipe {self.recipe} must hold `overrides:`, a list of `seqrec train` overrides.")
        return overrides

    def seeds(self) -> list[int] | None:
        """The recipe's `seeds:` (one run each; the card shows their mean ± sd), or None: one run, whose seed is the
        recipe's `seed=` override or the config's default."""
        seeds = self._recipe().get("seeds")
        if seeds is None:
            return None
        integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        if not integers or not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"The recipe {self.recipe}: `seeds:` must list distinct integers, e.g. [0, 1, 2].")
        if any(o.startswith("seed=") for o in self.overrides()):
            raise ConfigError(f"The recipe {self.recipe} sets both `seeds:` and a `seed=` override; keep `seeds:`.")
        return seeds

    def _recipe(self) -> dict:
        if not self.recipe.is_file():
            raise ConfigError(f"The recipe of zoo model {self.name!r}, {self.recipe}, does not exist.")
        try:
            recipe = yaml.safe_load(self.recipe.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"The recipe {self.recipe} is not valid YAML: {err}") from err
        if not isinstance(recipe, dict):
            raise ConfigError(f"The recipe {self.recipe} must be a mapping with `overrides:` (and optional `seeds:`).")
        return recipe


@dataclass(frozen=True)
class Built:
    """A finished build: the Hub folder written with the test metrics measured (means over the seeds' runs, their
    sample sd in `spread`), each seed's run, and the run whose weights were shipped (the best on validation)."""

    name: str
    folder: Path
    metrics: dict[str, float]
    spread: dict[str, float]
    runs: list[seed_runs.SeedRun]
    shipped: seed_runs.SeedRun

    @property
    def run_dir(self) -> Path:
        """The run folder of the shipped seed."""
        return self.shipped.run_dir


@dataclass(frozen=True)
class Pushed:
    """A push: the commit operations prepared by huggingface_hub (paths, sizes, sha256) and the commit URL, which
    is None when the push was skipped for want of a token."""

    name: str
    repo: str
    folder: Path
    operations: list[huggingface_hub.CommitOperationAdd]
    commit_url: str | None

    @property
    def skipped(self) -> bool:
        return self.commit_url is None


# --------------------------------------------------------------------------------------------- the index
def entry(name: str) -> ZooEntry:
    """The zoo entry `name`, with the state of its local folder; an unknown name is refused listing the known."""
    index, base = hub.zoo_index()
    if name not in index:
        known = ", ".join(sorted(index)) or "none"
        raise ConfigError(f"Unknown zoo model {name!r}; the zoo index {hub.zoo_index_path()} lists: {known}.")
    return _entry(name, index[name], base)


def list_entries() -> list[ZooEntry]:
    """Every entry of the zoo index, in index order."""
    index, base = hub.zoo_index()
    return [_entry(name, spec, base) for name, spec in index.items()]


def _entry(name: str, spec: dict, base: Path) -> ZooEntry:
    """The `ZooEntry` of index entry `spec`, its paths resolved from `base`, its state read from its folder."""
    folder = hub.zoo_folder(name, spec, base)
    status, metrics, problem = _folder_state(folder)
    spread, num_seeds = card_spread(folder) if status == "built" else ({}, 1)
    return ZooEntry(
        name=name,
        recipe=base / str(spec.get("recipe") or f"recipes/{name}.yaml"),
        repo=spec.get("hub"),
        revision=spec.get("revision"),
        folder=folder,
        status=status,
        metrics=metrics,
        spread=spread,
        num_seeds=num_seeds,
        problem=problem,
    )


def _folder_state(folder: Path) -> tuple[str, dict[str, float], str]:
    """(`built`, the card's metrics, "") when `folder` loads; `planned` without a folder; `broken` otherwise."""
    if not folder.exists():
        return "planned", {}, ""
    try:
        hub.from_pretrained(folder)
        return "built", card_metrics(folder), ""
    except SeqRecError as err:
        return "broken", {}, str(err)


def card_metrics(folder: str | Path) -> dict[str, float]:
    """The metrics a Hub folder's model card records (its `model-index`: means when it was built from several seeds),
    read with huggingface_hub's parser."""
    data = _card_data(folder)
    return {result.metric_name: result.metric_value for result in data.eval_results or []} if data else {}


def card_spread(folder: str | Path) -> tuple[dict[str, float], int]:
    """The sample sd of each metric over the seeds a card's metrics are the mean of, and the number of seeds
    (({}, 1) for a card of one run)."""
    data = _card_data(folder)
    seeds = data.get(hub.SEEDS_KEY) if data else None
    if not seeds:
        return {}, 1
    if not isinstance(seeds, dict) or not isinstance(seeds.get("runs"), list) or not isinstance(seeds.get("sd"), dict):
        raise CheckpointError(f"{Path(folder) / hub.CARD_FILE}: its `{hub.SEEDS_KEY}` record is malformed; rebuild it.")
    return {str(k): float(v) for k, v in seeds["sd"].items()}, len(seeds["runs"])


def _card_data(folder: str | Path):
    card = Path(folder) / hub.CARD_FILE
    if not card.is_file():
        return None
    try:
        return huggingface_hub.ModelCard.load(card).data
    except (ValueError, TypeError, yaml.YAMLError) as err:
        raise CheckpointError(f"{card} is not a valid Hub model card ({err}); rebuild the folder.") from err


# --------------------------------------------------------------------------------------------- building
def train_config(overrides: Sequence[str]) -> DictConfig:
    """The `seqrec train` config for Hydra `overrides`, composed as the command composes it (`run.compose`)."""
    return run.compose("train", overrides)


def build(
    name: str, output_root: str | Path | None = None, fp16: bool = True, extra_overrides: Sequence[str] = ()
) -> Built:
    """Train `name`'s recipe once per seed (then `extra_overrides`, e.g. `data.path=...`), test each run's best
    checkpoint and write the Hub folder: the weights of the seed best on validation, the mean ± sd of the seeds'
    test metrics, the data fingerprint and the commands in the card.

    Each seed runs `seqrec train`'s pipeline (`run.train`) in this process, in the run folder `hydra.run.dir=...`
    (`{seed}` in it stands for the seed; default `outputs/zoo/<name>/seed<seed>`). A run folder that already holds
    a finished run of the same config is reused (so `seqrec train` runs, e.g. a benchmark grid's, can be carded
    without training again) and an interrupted one continues from its `last.ckpt`. The Hub folder is the entry's
    `local` folder, or `output_root/<name>`; `fp16` halves the weights. A trainer that launches processes itself
    (`strategy=ddp`) needs the Hydra app: run `seqrec train` per seed, then build over those run folders.
    """
    model = entry(name)
    folder = (Path(output_root) / name if output_root is not None else model.folder).absolute()
    run_dirs = [o.partition("=")[2] for o in extra_overrides if o.startswith("hydra.run.dir=")]
    extras = [o for o in extra_overrides if not o.startswith("hydra.run.dir=")]
    if any(o.startswith("ckpt_path=") for o in extras):
        raise ConfigError("zoo build continues an interrupted seed from its run folder's last.ckpt: drop ckpt_path=.")
    seeds = model.seeds()
    pattern = run_dirs[-1] if run_dirs else RUN_DIR.replace("{name}", name)
    if seeds and len(seeds) > 1 and "{seed}" not in pattern:
        raise ConfigError(f"{name} has {len(seeds)} seeds: put `{{seed}}` in hydra.run.dir= (e.g. runs/seed{{seed}}).")
    commands, runs, configs = [], [], {}
    for seed in seeds or [None]:
        overrides = [*model.overrides(), *extras, *([f"seed={seed}"] if seed is not None else [])]
        composed = train_config(overrides)
        if not composed.test:
            raise ConfigError("zoo build records test metrics in the card, so it always tests: drop test=false.")
        cfg = train_config([f"hydra.run.dir={pattern.replace('{seed}', str(composed.seed))}", *overrides])
        runs.append(seed_runs.run_seed(cfg))
        configs[runs[-1].seed] = cfg
        commands.append(shlex.join(["seqrec", "train", *overrides]))
    shipped = seed_runs.best_validated(runs)
    means, spread = seed_runs.mean_and_sd(runs)
    _publish(folder, shipped, configs[shipped.seed], means, spread, runs, build_record(name, commands), fp16)
    return Built(name=name, folder=folder, metrics=means, spread=spread, runs=runs, shipped=shipped)


def _publish(folder: Path, shipped, cfg: DictConfig, means, spread, runs, recipe: str, fp16: bool) -> None:
    """Write the Hub folder from the shipped seed's best checkpoint, carding the data as its config prepares it."""
    with run.hydra_runtime(cfg):
        datamodule = run.build_data(cfg.data)
    module = load_checkpoint(shipped.best_checkpoint)
    if module.vocab != datamodule.vocab:
        raise CheckpointError(
            f"{shipped.best_checkpoint} was trained on another catalog than {cfg.data.get('name', 'the data')} has "
            "now; remove its run folder and build again."
        )
    hub.save_pretrained(
        module,
        folder,
        metrics=means,
        dataset={"name": datamodule.interactions.name, "split": datamodule.split_name},
        fingerprint=datamodule.fingerprint(),
        recipe=recipe,
        fp16=fp16,
        seeds=[hub.SeedRecord(r.seed, r.monitor, r.val_score, r.metrics, r is shipped, r.how) for r in runs],
        spread=spread,
    )


def build_record(name: str, commands: list[str]) -> str:
    """The card's account of a build: the `seqrec train` command of each seed's run."""
    return f"# seqrec zoo build {name} ran:\n" + "\n".join(commands)


# --------------------------------------------------------------------------------------------- the Hub
def push(name: str, token: str | None = None) -> Pushed:
    """Push `name`'s built folder to its Hub repo. The upload is always prepared (folder checked, card parsed, files
    hashed as huggingface_hub prepares them); without a token (`token`, `HF_TOKEN` or `hf auth login`) nothing is
    sent and the result says the push was skipped."""
    model = _with_repo(name)
    if not model.built:
        reason = model.problem or f"there is no folder at {model.folder}"
        raise ConfigError(f"Zoo model {name!r} is not built ({reason}); run `seqrec zoo build {name}` first.")
    operations = hub.upload_operations(model.folder)
    token = token or huggingface_hub.get_token()
    if not token:
        log.warning(
            "Push of %s to hf-hub:%s skipped: no Hugging Face token (run `hf auth login` or set HF_TOKEN). "
            "The upload was prepared, not sent.",
            name,
            model.repo,
        )
        return Pushed(name, model.repo, model.folder, operations, None)
    commit = hub.push_to_hub(model.folder, model.repo, token=token, revision=model.revision)
    return Pushed(name, model.repo, model.folder, operations, commit.commit_url)


def pull(name: str, cache_dir: str | Path | None = None) -> Path:
    """Download `name`'s Hub repo into the Hub cache (or `cache_dir`) and return the snapshot folder; afterwards
    `load(name)` works offline (`HF_HUB_OFFLINE=1`)."""
    model = _with_repo(name)
    try:
        return hub.download(model.repo, model.revision, cache_dir=cache_dir)
    except CheckpointError as err:
        raise CheckpointError(
            f"Could not pull zoo model {name!r}: {err} Pulling needs the Hub: run it online (HF_HUB_OFFLINE unset), "
            f"or build the model here with `seqrec zoo build {name}`."
        ) from err


def _with_repo(name: str) -> ZooEntry:
    """The entry `name`, refused when it names no Hub repo."""
    model = entry(name)
    if not model.repo:
        raise ConfigError(f"Zoo model {name!r} names no `hub` repo in {hub.zoo_index_path()}; add one first.")
    return model
