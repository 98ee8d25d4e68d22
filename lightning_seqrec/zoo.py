"""The model zoo: named models (`sasrec.ce-beauty`), each a recipe, a Hub folder and a Hub repo.

The zoo index (the repo's `zoo/index.yaml`, installed with the package) lists the entries (`recipe`, `hub` repo,
`local` folder); a recipe (`recipes/<name>.yaml` beside it) holds the `seqrec train` overrides that build its
model. `build` trains and tests a recipe and writes the Hub folder through `ZooPublisher`, so the card's metrics are
the ones just measured; whether an entry is built is read from its folder, never typed into the index. `push` and
`pull` move folders to and from the Hugging Face Hub; `load` reads every name `hub.load` reads.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import yaml
from omegaconf import DictConfig, open_dict

from lightning_seqrec import hub, run
from lightning_seqrec.errors import CheckpointError, ConfigError, SeqRecError
from lightning_seqrec.hub import load

__all__ = ["Built", "Pushed", "ZooEntry", "build", "entry", "list_entries", "load", "pull", "push", "train_config"]

log = logging.getLogger(__name__)

RUN_DIR = "outputs/zoo/{name}/${{now:%Y-%m-%d_%H-%M-%S}}"
"""Default run folder of a build (checkpoints, logs, test_metrics.json); `hydra.run.dir=...` overrides it."""


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo index and the state of its local Hub folder: `built` when the folder loads (with its
    card's metrics in `metrics`), `planned` when there is no folder, `broken` when it does not load (`problem`
    says why)."""

    name: str
    recipe: Path
    repo: str | None
    revision: str | None
    folder: Path
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    problem: str = ""

    @property
    def built(self) -> bool:
        return self.status == "built"

    def overrides(self) -> list[str]:
        """The recipe: the `seqrec train` overrides listed under `overrides:` in the recipe file."""
        if not self.recipe.is_file():
            raise ConfigError(f"The recipe of zoo model {self.name!r}, {self.recipe}, does not exist.")
        try:
            recipe = yaml.safe_load(self.recipe.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"The recipe {self.recipe} is not valid YAML: {err}") from err
        overrides = recipe.get("overrides") if isinstance(recipe, dict) else None
        if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
            raise ConfigError(f"The recipe {self.recipe} must hold `overrides:`, a list of `seqrec train` overrides.")
        return overrides


@dataclass(frozen=True)
class Built:
    """A finished build: the Hub folder written, the test metrics measured (and recorded in its card), and the
    run folder holding the checkpoints and logs."""

    name: str
    folder: Path
    metrics: dict[str, float]
    run_dir: Path


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
    return ZooEntry(
        name=name,
        recipe=base / str(spec.get("recipe") or f"recipes/{name}.yaml"),
        repo=spec.get("hub"),
        revision=spec.get("revision"),
        folder=folder,
        status=status,
        metrics=metrics,
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
    """The metrics a Hub folder's model card records (its `model-index`), read with huggingface_hub's parser."""
    card = Path(folder) / hub.CARD_FILE
    if not card.is_file():
        return {}
    try:
        data = huggingface_hub.ModelCard.load(card).data
    except (ValueError, yaml.YAMLError) as err:
        raise CheckpointError(f"{card} is not a valid Hub model card ({err}); rebuild the folder.") from err
    return {result.metric_name: result.metric_value for result in data.eval_results or []}


# --------------------------------------------------------------------------------------------- building
def train_config(overrides: Sequence[str]) -> DictConfig:
    """The `seqrec train` config for Hydra `overrides`, composed as the command composes it (`run.compose`)."""
    return run.compose("train", overrides)


def build(
    name: str, output_root: str | Path | None = None, fp16: bool = True, extra_overrides: Sequence[str] = ()
) -> Built:
    """Train `name`'s recipe (then `extra_overrides`, e.g. `data.path=...`), test its best checkpoint and write its
    Hub folder with the measured test metrics, the data fingerprint and the recipe in the card.

    This runs `seqrec train`'s pipeline (`run.train`) with a `ZooPublisher` added to the callbacks, in this process: the
    folder is the entry's `local` folder, or `output_root/<name>`; the run folder (checkpoints, logs) is
    `outputs/zoo/<name>/<time>` unless `hydra.run.dir=...` is among the overrides. `fp16` halves the weights.
    A trainer that launches processes itself (`strategy=ddp`) needs the Hydra app: run `seqrec train` with the
    recipe's overrides and a `ZooPublisher` callback instead.
    """
    model = entry(name)
    folder = (Path(output_root) / name if output_root is not None else model.folder).absolute()
    cfg = train_config([f"hydra.run.dir={RUN_DIR.format(name=name)}", *model.overrides(), *extra_overrides])
    if not cfg.test:
        raise ConfigError("zoo build records test metrics in the card, so it always tests: drop test=false.")
    recipe = build_record(name, list(cfg.hydra.overrides.task))
    with open_dict(cfg):
        cfg.callbacks = cfg.callbacks or {}
        cfg.callbacks.zoo_publisher = {
            "_target_": "lightning_seqrec.callbacks.ZooPublisher",
            "folder": str(folder),
            "fp16": fp16,
            "recipe": recipe.replace("${", "\\${"),  # shown as written, never resolved as an interpolation
        }
    with run.hydra_runtime(cfg) as run_dir:
        metrics = run.train(cfg).metrics
    return Built(name=name, folder=folder, metrics=metrics, run_dir=run_dir)


def build_record(name: str, overrides: list[str]) -> str:
    """The card's account of a build: the `seqrec train` command of the recipe, then, when the build went on
    from an interrupted run's checkpoint, that `ckpt_path` on its own line (a path on the building machine,
    which reproducing the model does not need)."""
    resumed = [o for o in overrides if o.startswith("ckpt_path=")]
    command = shlex.join(["seqrec", "train", *[o for o in overrides if o not in resumed]])
    record = f"# seqrec zoo build {name} ran:\n{command}"
    return record + "".join(f"\n# continuing an interrupted run from {o}" for o in resumed)


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
