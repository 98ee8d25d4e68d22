"""Hugging Face Hub format: save / load / push a scoring-ready module as config + safetensors + vocab + card.

A Hub folder holds `config.json` (architecture, objectives, library version), `model.safetensors` (weights
only: safetensors cannot run code, pickle can, so pickled weights are refused), `vocab.json` (raw item IDs
and titles) and `README.md` (a model card whose numbers come from the metrics passed in). Names resolve as
`local-dir:PATH`, `hf-hub:ORG/REPO[@REVISION]` or a zoo name listed in `zoo/index.yaml`. The Lightning
`.ckpt` stays the artifact for resuming training.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import huggingface_hub
import safetensors
import safetensors.torch
import torch
import yaml
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import filter_repo_objects

from lightning_seqrec.checkpoint import build_module, scoring_weights
from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.errors import CheckpointError, ConfigError, SeqRecError
from lightning_seqrec.integrity import check_vocab_size, integrity_record, verify_integrity
from lightning_seqrec.modules import SeqRecModule
from lightning_seqrec.version import __version__

FORMAT_VERSION = 2
"""2: `model.safetensors` metadata holds the sha256 of the architecture and of `vocab.json` (format 1 had none)."""
LIBRARY_NAME = "lightning-seqrec"
CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, CARD_FILE = "config.json", "model.safetensors", "vocab.json", "README.md"
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, CARD_FILE)
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE)
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")
SEEDS_KEY = "seqrec_seeds"
"""The card metadata key of a multi-seed build: each seed's run and the sd of the metrics `model-index` averages."""
DATA_LABELS = {"name": "dataset", "split": "split protocol"}
DEFAULT_ZOO_INDEX = Path(str(resources.files("lightning_seqrec.zoo_index") / "index.yaml"))
"""The zoo index shipped in the package (the repo's `zoo/` folder, installed as `lightning_seqrec.zoo_index`)."""
NAME_FORMS = (
    "'local-dir:PATH' (a folder written by save_pretrained), 'hf-hub:ORG/REPO' or 'hf-hub:ORG/REPO@REVISION' "
    "(a Hub repo, read from the Hub cache when HF_HUB_OFFLINE=1), or a zoo name such as 'sasrec.ce-beauty' "
    "(listed in the packaged zoo index, `seqrec zoo list`; SEQREC_ZOO_INDEX points to another index)"
)


# --------------------------------------------------------------------------------------------- saving
@dataclass(frozen=True)
class SeedRecord:
    """One seed's run in a multi-seed card: its best validation score (`monitor`), its test metrics, whether its
    weights are the folder's, and how the build got it (trained, continued from a checkpoint, reused)."""

    seed: int
    monitor: str
    val_score: float
    metrics: Mapping[str, float | None]
    shipped: bool
    how: str = "trained"

    def as_metadata(self) -> dict:
        return {
            "seed": self.seed,
            "shipped": self.shipped,
            "run": self.how,
            self.monitor: self.val_score,
            **{k: v for k, v in self.metrics.items()},
        }


def save_pretrained(
    module: SeqRecModule,
    folder: str | Path,
    *,
    metrics: Mapping[str, float] | None = None,
    dataset: str | Mapping[str, str] | None = None,
    fingerprint: str | None = None,
    recipe: str | None = None,
    fp16: bool = False,
    license: str = "apache-2.0",
    seeds: Sequence[SeedRecord] | None = None,
    spread: Mapping[str, float] | None = None,
) -> Path:
    """Write `module` as a Hub folder (config, safetensors weights, vocab, model card) and return its path.

    `dataset` is a name or a mapping with `name`, `split` (the protocol) and any other keys to show; `metrics`
    fill the card's metadata and results table. The folder is built beside `folder` and renamed into place, so
    a failure never leaves half a folder; an existing folder is replaced only if it holds nothing but Hub files.
    With two or more `seeds`, `metrics` are their means and `spread` their sample sd: the card shows mean ± sd and a
    table of the seeds, and records both in its metadata (`seqrec_seeds`).
    """
    if module.vocab is None:
        raise ConfigError("This model has no item vocabulary yet: train it on a datamodule (or attach_data) first.")
    folder = Path(folder).absolute()
    data = {"name": dataset} if isinstance(dataset, str) else dict(dataset or {})
    if metrics and not data.get("name"):
        raise ConfigError("Metrics need the data they were measured on: pass dataset={'name': ..., 'split': ...}.")
    config, vocab = hub_config(module, fp16=fp16), {**module.vocab.to_dict(), "titles": module.item_titles}
    with _atomic_folder(folder) as tmp:
        _write_json(tmp / CONFIG_FILE, config)
        _write_weights(tmp / WEIGHTS_FILE, hub_state_dict(module, fp16=fp16), config["architecture"], vocab)
        _write_json(tmp / VOCAB_FILE, vocab)
        several = list(seeds or []) if len(seeds or []) > 1 else []
        card = model_card(module, folder.name, metrics or {}, data, fingerprint, recipe, license, several, spread or {})
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
    return folder


def hub_config(module: SeqRecModule, fp16: bool = False) -> dict:
    """The `config.json` record: enough to rebuild the module (`SeqRecModule(**architecture)`) and to tell
    which library version and objectives produced it."""
    return {
        "library_name": LIBRARY_NAME,
        "library_version": __version__,
        "format_version": FORMAT_VERSION,
        "architecture": module.architecture,
        "objectives": {name: type(objective).__name__ for name, objective in module.objectives.items()},
        "eval_ks": list(module.eval_ks),
        "weights_dtype": "float16" if fp16 else "float32",
    }


def _write_weights(path: Path, state: dict[str, torch.Tensor], architecture: dict, vocab: dict) -> None:
    """`model.safetensors` with the hashes of the architecture and vocabulary in its metadata, so a loader can
    tell that the three files belong together."""
    metadata = {"format": "pt", **integrity_record(architecture, vocab)}
    path.write_bytes(canonical_safetensors(safetensors.torch.save(state, metadata=metadata)))  # save_file: no umask


def canonical_safetensors(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted: safetensors writes the metadata in a random
    order, so equal weights would give files of different bytes (a new Hub commit for each unchanged push). The
    header stays padded with spaces to a multiple of 8 bytes, as safetensors aligns the data after it."""
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]


def seal_folder(folder: str | Path) -> Path:
    """Bring a trusted Hub folder of format 1 (no hashes) to the current format: the same weights, rewritten with
    the hashes of its `config.json` architecture and `vocab.json`. Only for folders whose origin you trust: the
    hashes then vouch for whatever the files hold now."""
    folder = Path(folder)
    _check_files(folder)
    config = _read_config(folder / CONFIG_FILE)
    vocab = _read_json(folder / VOCAB_FILE)
    weights, _ = _read_weights(folder / WEIGHTS_FILE)
    with _atomic_folder(folder) as tmp:
        for name in HUB_FILES:
            if (folder / name).is_file() and name not in (CONFIG_FILE, WEIGHTS_FILE):
                shutil.copy2(folder / name, tmp / name)
        _write_json(tmp / CONFIG_FILE, {**config, "format_version": FORMAT_VERSION})
        _write_weights(tmp / WEIGHTS_FILE, weights, config["architecture"], vocab)
    return folder


def hub_state_dict(module: SeqRecModule, fp16: bool = False) -> dict[str, torch.Tensor]:
    """The weights that score: the state dict without objective or evaluator state, as contiguous CPU tensors
    (floating ones halved when `fp16`)."""
    state = {}
    for key, tensor in scoring_weights(module.state_dict()).items():
        tensor = tensor.detach().cpu()
        state[key] = (tensor.half() if fp16 and tensor.is_floating_point() else tensor).contiguous()
    return state


def model_card(
    module: SeqRecModule,
    name: str,
    metrics: Mapping[str, float],
    dataset: Mapping[str, str],
    fingerprint: str | None,
    recipe: str | None,
    license: str,
    seeds: Sequence[SeedRecord] = (),
    spread: Mapping[str, float] | None = None,
) -> str:
    """`README.md`: YAML metadata (library, license, datasets, tags, model-index, and the seeds' runs when there are
    several) and a markdown body whose numbers are exactly the `metrics` (and `spread`, `seeds`) given."""
    backbone = module.architecture["backbone"]
    values = {key: float(value) for key, value in metrics.items()}
    meta: dict = {"library_name": LIBRARY_NAME, "license": license}
    if dataset.get("name"):
        meta["datasets"] = [dataset["name"]]
    meta["tags"] = ["sequential-recommendation", "recommendation", backbone, LIBRARY_NAME]
    if values:
        meta["model-index"] = [_model_index(name, dataset["name"], values)]
    sds = {key: float(value) for key, value in (spread or {}).items() if key in values}
    if seeds:
        meta[SEEDS_KEY] = {"sd": sds, "runs": [record.as_metadata() for record in seeds]}
    objectives = ", ".join(f"`{k}` ({type(o).__name__})" for k, o in module.objectives.items())
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A `{backbone}` sequential recommender trained with {LIBRARY_NAME} {__version__} "
        f"(objectives: {objectives}). It scores all {module.num_items} items of its vocabulary from the last "
        f"{module.max_len} items of a history{'; items already seen are masked' if module.mask_seen else ''}.",
        "",
        "## Results",
        "",
        *(_results_table(values, sds, seeds) if values else ["No metrics were recorded for this model."]),
        "",
        "## Data",
        "",
        *[f"- {DATA_LABELS.get(key, key)}: {value}" for key, value in dataset.items()],
        f"- fingerprint (sha256 of the prepared data): {f'`{fingerprint}`' if fingerprint else 'not recorded'}",
        "",
        "## Recipe",
        "",
        *(["```", recipe, "```"] if recipe else ["Not recorded."]),
        "",
        "## Usage",
        "",
        "```python",
        "from lightning_seqrec.hub import load",
        "",
        f'model = load("local-dir:{name}")  # or load("hf-hub:ORG/REPO"), or a zoo name',
        "model.recommend([history], k=10)  # history: raw item IDs, oldest first",
        "```",
        "",
    ]
    return "\n".join(lines)


def _model_index(name: str, dataset: str, metrics: Mapping[str, float]) -> dict:
    """One `model-index` entry in the Hub's schema: metric `type` is the name without its stage prefix."""
    return {
        "name": name,
        "results": [
            {
                "task": {"type": "sequential-recommendation", "name": "Sequential recommendation"},
                "dataset": {"name": dataset, "type": dataset},
                "metrics": [{"type": k.rsplit("/", 1)[-1], "name": k, "value": v} for k, v in metrics.items()],
            }
        ],
    }


def _results_table(metrics: Mapping[str, float], sds: Mapping[str, float], seeds: Sequence[SeedRecord]) -> list[str]:
    """The metrics; with several seeds, as mean ± sd, then one row per seed (the shipped one marked)."""
    if not seeds:
        return ["| metric | value |", "| --- | ---: |", *[f"| {k} | {v:.4f} |" for k, v in metrics.items()]]
    shipped = next(record for record in seeds if record.shipped)
    lines = [
        f"Mean ± sample sd over {len(seeds)} seeds ({', '.join(str(r.seed) for r in seeds)}), one training run each. "
        f"The weights are seed {shipped.seed}'s, the best by {shipped.monitor} on validation.",
        "",
        "| metric | mean | sd |",
        "| --- | ---: | ---: |",
        *[f"| {k} | {v:.4f} | {sds[k]:.4f} |" if k in sds else f"| {k} | {v:.4f} | |" for k, v in metrics.items()],
        "",
        "### Seeds",
        "",
        f"| seed | {shipped.monitor} | test/ndcg@10 | test/hr@10 | weights | run |",
        "| ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in seeds:
        cells = [f"{r.metrics[k]:.4f}" if r.metrics.get(k) is not None else "-" for k in ("test/ndcg@10", "test/hr@10")]
        weights = "shipped" if r.shipped else ""
        lines.append(f"| {r.seed} | {r.val_score:.4f} | {' | '.join(cells)} | {weights} | {r.how} |")
    return lines


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@contextmanager
def _atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty sibling folder that replaces `folder` only when the block completes; removed otherwise."""
    if folder.is_file():
        raise ConfigError(f"{folder} is a file; save_pretrained writes a folder, so pass a folder path.")
    if folder.exists():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in HUB_FILES)
        if foreign:
            raise ConfigError(
                f"{folder} exists and holds other files ({', '.join(foreign)}); save_pretrained replaces the whole "
                "folder, so pass a new or empty folder (or delete this one first)."
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        if folder.exists():
            old = tmp.with_suffix(".old")
            folder.rename(old)
            try:
                tmp.rename(folder)
            except OSError:
                old.rename(folder)
                raise
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- loading
def from_pretrained(
    folder_or_spec: str | Path, *, map_location: str | torch.device = "cpu", cache_dir: str | Path | None = None
) -> SeqRecModule:
    """A ready-to-score module (eval mode, vocabulary and titles restored) from a Hub folder, or from a name in
    any form `load` accepts. Nothing in the files is executed: weights are read with safetensors only."""
    path = Path(folder_or_spec)
    if isinstance(folder_or_spec, str) and not path.exists() and _is_spec(folder_or_spec):
        path = resolve(folder_or_spec, cache_dir=cache_dir)
    return _read_folder(path, map_location)


def load(name: str, *, map_location: str | torch.device = "cpu", cache_dir: str | Path | None = None) -> SeqRecModule:
    """Load `local-dir:PATH`, `hf-hub:ORG/REPO[@REVISION]` or a zoo name; `cache_dir` overrides the Hub cache."""
    return _read_folder(resolve(name, cache_dir=cache_dir), map_location)


def _is_spec(text: str) -> bool:
    """Whether a string that is not an existing path reads as a name rather than a (mistyped) folder path."""
    return text.startswith(("local-dir:", "hf-hub:")) or ("/" not in text and os.sep not in text)


def _read_folder(folder: Path, map_location: str | torch.device) -> SeqRecModule:
    _check_files(folder)
    config = _read_config(folder / CONFIG_FILE)
    vocab_state = _read_json(folder / VOCAB_FILE)
    vocab, titles = _read_vocab(folder / VOCAB_FILE, vocab_state)
    weights, metadata = _read_weights(folder / WEIGHTS_FILE)
    extra = {"eval_ks": config["eval_ks"]} if "eval_ks" in config else {}
    module = build_module(config["architecture"], weights, f"{folder} ({CONFIG_FILE} + {WEIGHTS_FILE})", **extra)
    module.vocab, module.item_titles = vocab, titles
    check_vocab_size(vocab, module.item_embedding.num_embeddings, str(folder / VOCAB_FILE), WEIGHTS_FILE)
    try:
        verify_integrity(metadata, config["architecture"], vocab_state)
    except CheckpointError as err:
        raise CheckpointError(f"{folder} ({CONFIG_FILE}, {VOCAB_FILE}, {WEIGHTS_FILE}): {err}") from err
    return module.to(map_location).eval()


def _check_files(folder: Path) -> None:
    """Refuse a missing folder, pickled weights in place of safetensors, and missing files, before reading any."""
    if not folder.is_dir():
        raise CheckpointError(f"Hub folder {str(folder)!r} does not exist; pass a folder written by save_pretrained.")
    if not (folder / WEIGHTS_FILE).is_file():
        pickles = sorted({p.name for pattern in PICKLE_PATTERNS for p in folder.glob(pattern)})
        if pickles:
            raise CheckpointError(
                f"{folder} holds {', '.join(pickles)} instead of {WEIGHTS_FILE}. Pickled weights can run arbitrary "
                "code when loaded, so they are never read (there is no pickle fallback). Ask the publisher for "
                f"{WEIGHTS_FILE}, or load the trusted checkpoint yourself and re-export it with save_pretrained."
            )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder} is missing {', '.join(missing)}; a Hub folder needs {', '.join(REQUIRED_FILES)}. "
            "Re-download it or re-export it with save_pretrained."
        )


def _read_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); re-download or re-export the folder.") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} must hold a JSON object; re-download or re-export the folder.")
    return payload


def _read_config(path: Path) -> dict:
    """`config.json`, checked to be ours, of a format this version reads, and to carry an architecture."""
    config = _read_json(path)
    if config.get("library_name") != LIBRARY_NAME:
        raise CheckpointError(
            f"{path} was not written by {LIBRARY_NAME} (library_name={config.get('library_name')!r}); "
            "load it with the library that wrote it."
        )
    version = config.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path} has no integer 'format_version'; re-export the folder with save_pretrained.")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}, written by a newer {LIBRARY_NAME} "
            f"({config.get('library_version')}); this version ({__version__}) reads format "
            f"{FORMAT_VERSION} and older. Upgrade: pip install -U {LIBRARY_NAME}."
        )
    if not isinstance(config.get("architecture"), dict):
        raise CheckpointError(f"{path} has no 'architecture' object; re-export the folder with save_pretrained.")
    return config


def _read_vocab(path: Path, state: dict) -> tuple[ItemVocab, dict]:
    """The vocabulary and titles of `vocab.json`'s parsed `state`."""
    try:
        vocab = ItemVocab.from_dict(state)
    except SeqRecError as err:
        raise CheckpointError(f"{path}: {err} Re-export the folder with save_pretrained.") from err
    titles = state.get("titles") or {}
    if not isinstance(titles, dict):
        raise CheckpointError(f"{path}: 'titles' must map item IDs to titles; re-export the folder.")
    return vocab, {str(k): str(v) for k, v in titles.items()}


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors file and its metadata (safetensors parses a bounded JSON header and raw
    tensor bytes: nothing in it can run)."""
    try:
        with safetensors.safe_open(path, framework="pt", device="cpu") as file:
            return {key: file.get_tensor(key) for key in file.keys()}, dict(file.metadata() or {})
    except (safetensors.SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt: {err}). Re-download the folder "
            "or re-export it with save_pretrained."
        ) from err


# --------------------------------------------------------------------------------------------- names
def resolve(name: str, *, cache_dir: str | Path | None = None) -> Path:
    """The local folder holding `name`'s Hub files, fetched into (or read from) the Hub cache when needed.

    A zoo entry's `local` folder (default `hub/<name>` beside the index) wins when it exists; otherwise its `hub`
    repo is used.
    """
    if name.startswith("local-dir:"):
        return Path(name.removeprefix("local-dir:")).expanduser()
    if name.startswith("hf-hub:"):
        repo_id, _, revision = name.removeprefix("hf-hub:").partition("@")
        return download(repo_id, revision or None, cache_dir=cache_dir)
    entry, base = _zoo_entry(name)
    local = zoo_folder(name, entry, base)
    if local.is_dir():
        return local
    if not entry.get("hub"):
        raise ConfigError(f"Zoo entry {name!r} has no folder at {local} and no 'hub' repo to fetch it from.")
    try:
        return download(entry["hub"], entry.get("revision"), cache_dir=cache_dir)
    except CheckpointError as err:
        raise CheckpointError(
            f"Zoo model {name!r} has no local folder at {local}, and: {err} For a zoo name, `seqrec zoo pull {name}` "
            "(online, once) puts it in the Hub cache."
        ) from err


def download(repo_id: str, revision: str | None = None, *, cache_dir: str | Path | None = None) -> Path:
    """Snapshot of the Hub files of `repo_id` (only those four names) through the Hub cache; offline
    (`HF_HUB_OFFLINE=1`) it is served from the cache alone."""
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(HUB_FILES)
        )
    except HFValidationError as err:
        raise ConfigError(f"{repo_id!r} is not a Hub repo id ({err}); use {NAME_FORMS}.") from err
    except (LocalEntryNotFoundError, HfHubHTTPError) as err:
        raise CheckpointError(
            f"Could not fetch hf-hub:{repo_id}@{revision or 'main'}: {str(err).splitlines()[0]} "
            "Offline (HF_HUB_OFFLINE=1) only repos already in the Hub cache load: fetch it once online "
            "(or point HF_HUB_CACHE / cache_dir at a cache holding it), or load a folder with 'local-dir:PATH'."
        ) from err
    return Path(path)


def zoo_index_path() -> Path:
    """The packaged zoo index (`zoo/index.yaml` in a checkout), or the file named by `SEQREC_ZOO_INDEX`."""
    return Path(os.environ.get("SEQREC_ZOO_INDEX") or DEFAULT_ZOO_INDEX)


def zoo_index() -> tuple[dict[str, dict], Path]:
    """The zoo index (name -> entry mapping) and the folder its relative paths start from: the index's own folder,
    so the index and its recipes resolve the same in a checkout and in an installed wheel."""
    path = zoo_index_path()
    if not path.is_file():
        raise ConfigError(f"The zoo index {path} does not exist (SEQREC_ZOO_INDEX names another). Use {NAME_FORMS}.")
    try:
        index = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"The zoo index {path} is not valid YAML: {err}") from err
    if not isinstance(index, dict) or not all(isinstance(entry, dict) for entry in index.values()):
        raise ConfigError(f"The zoo index {path} must map each model name to a mapping (hub, local, recipe, ...).")
    return index, path.resolve().parent


def zoo_folder(name: str, entry: Mapping, base: Path) -> Path:
    """Where a zoo entry's Hub folder lives locally: its `local` path, by default `hub/<name>` beside the index."""
    return base / str(entry.get("local") or f"hub/{name}")


def _zoo_entry(name: str) -> tuple[dict, Path]:
    """The index entry of `name` and the folder its relative paths start from."""
    index, base = zoo_index()
    if name not in index:
        known = ", ".join(sorted(index)) or "none"
        raise ConfigError(
            f"{name!r} is not in the zoo index {zoo_index_path()} (known names: {known}). Use {NAME_FORMS}."
        )
    return index[name], base


# --------------------------------------------------------------------------------------------- pushing
def upload_operations(folder: str | Path) -> list[huggingface_hub.CommitOperationAdd]:
    """The commit operations a push of `folder` sends, prepared as `HfApi.upload_folder` prepares them (files
    filtered by the Hub-file patterns, each hashed into a `CommitOperationAdd`) with no network call; the folder
    must load with `from_pretrained` and its card must parse as a Hub model card."""
    folder = Path(folder)
    _read_folder(folder, "cpu")
    if (folder / CARD_FILE).is_file():
        try:
            huggingface_hub.ModelCard.load(folder / CARD_FILE)
        except (ValueError, yaml.YAMLError) as err:
            raise CheckpointError(f"{folder / CARD_FILE} is not a valid Hub model card ({err}); re-export it.") from err
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    names = filter_repo_objects(files, allow_patterns=list(HUB_FILES))
    return [huggingface_hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in names]


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    private: bool = False,
    commit_message: str = f"Upload {LIBRARY_NAME} model",
) -> huggingface_hub.CommitInfo:
    """Upload a Hub folder to `repo_id` (created if needed; `revision` names a branch, created if needed).

    The folder must load with `from_pretrained` and a token must be available (argument, `HF_TOKEN` or a stored
    login); both are checked before any network call. Returns huggingface_hub's commit info.
    """
    token = token or huggingface_hub.get_token()
    if not token:
        raise ConfigError(
            "No Hugging Face token: run `hf auth login` (or set HF_TOKEN, or pass token=...) with a token that "
            "has write access, then push again. Nothing was sent to the Hub."
        )
    folder = Path(folder)
    _read_folder(folder, "cpu")
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=commit_message,
        allow_patterns=list(HUB_FILES),
    )
