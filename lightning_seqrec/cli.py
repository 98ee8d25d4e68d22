"""The `seqrec` command: `seqrec train|finetune|eval|recommend [hydra overrides]` and `seqrec zoo ...`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.errors import SeqRecError
from lightning_seqrec.finetune import adapt_to_data, load_source

log = logging.getLogger("lightning_seqrec")

USAGE = """usage: seqrec COMMAND [key=value ...]

commands:
  train       train a model and test it     seqrec train experiment=sasrec_beauty_ce
  finetune    adapt a model to new data     seqrec finetune zoo=sasrec.ce-beauty data=sports
  eval        test metrics of a checkpoint  seqrec eval ckpt=path/to/epoch012.ckpt
  recommend   top-k for a user or history   seqrec recommend ckpt=... user=1 | history=[1,2,3]
  zoo         list, build, push, pull zoo   seqrec zoo list | build NAME [key=value ...] | push NAME | pull NAME

Overrides are Hydra syntax (`seqrec train --help` lists config groups; `--cfg job` prints the config).
"""


def _instantiate_dict(cfg: DictConfig | None) -> dict:
    return {name: instantiate(conf) for name, conf in (cfg or {}).items() if conf is not None}


def _build_data(cfg: DictConfig):
    datamodule = instantiate(cfg)
    datamodule.setup("fit")
    return datamodule


def _print_metrics(title: str, metrics: dict) -> None:
    """Metrics named like `test/ndcg@10` as a table: one row per metric, one column per cut-off."""
    table: dict[str, dict[int, float]] = {}
    for key, value in metrics.items():
        name, _, k = key.split("/")[-1].partition("@")
        table.setdefault(name, {})[int(k)] = float(value)
    ks = sorted({k for row in table.values() for k in row})
    print(f"\n{title}\n  {'':<10}" + "".join(f"{'@' + str(k):>9}" for k in ks))
    for name, row in table.items():
        print(f"  {name:<10}" + "".join(f"{row[k]:>9.4f}" if k in row else f"{'':>9}" for k in ks))


def _print_recommendations(module, history: list, k: int, header: str) -> None:
    titles = module.item_titles
    print(f"\n{header}")
    print("  recent history: " + "; ".join(titles.get(str(i), str(i)) for i in history[-5:]))
    for rank, entry in enumerate(module.recommend([history], k=k)[0], start=1):
        name = entry.get("title", entry["item_id"])
        print(f"  {rank:>2}. {name}  (item {entry['item_id']}, score {entry['score']:.3f})")


def train(cfg: DictConfig) -> dict:
    """Fit, test the best checkpoint, print metrics and one user's top-k."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = _build_data(cfg.data)
    pretrained = {}
    if cfg.get("embeddings"):
        pretrained["pretrained_embeddings"] = instantiate(cfg.embeddings)(datamodule)
    module = instantiate(
        cfg.model,
        num_items=datamodule.num_items,
        objectives=_instantiate_dict(cfg.objective),
        _convert_="all",
        **pretrained,
    )
    return _fit_and_test(cfg, module, datamodule)


def finetune(cfg: DictConfig) -> dict:
    """Adapt a trained model (zoo name, Hub folder or `.ckpt`) to the data's catalog, then fit and test as `train`."""
    L.seed_everything(cfg.seed, workers=True)
    source = load_source(cfg.zoo)  # before the data, so a wrong name fails fast
    datamodule = _build_data(cfg.data)
    module = adapt_to_data(
        source,
        datamodule,
        new_item_init=cfg.new_item_init,
        objectives=_instantiate_dict(cfg.objective),
        lr=cfg.lr,
        seed=cfg.seed,
    )
    return _fit_and_test(cfg, module, datamodule)


def _fit_and_test(cfg: DictConfig, module, datamodule) -> dict:
    """Fit with the configured trainer, callbacks and loggers, test the best checkpoint (metrics printed and
    written to `test_metrics.json`), and print one user's top-k."""
    module.data_config = OmegaConf.to_container(cfg.data, resolve=True)
    callbacks = list(_instantiate_dict(cfg.get("callbacks")).values())
    if cfg.ckpt_path:
        _continue_checkpoints(callbacks, Path(cfg.ckpt_path))
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=list(_instantiate_dict(cfg.get("logger")).values()) or False
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except SIGTERMException:  # Lightning's SystemExit(0): a stopped run would look like a finished one
        _exit_stopped(trainer)
    results = {}
    if cfg.test:
        monitored = [c for c in trainer.checkpoint_callbacks if c.monitor]  # not the every-epoch last.ckpt
        best = monitored[0].best_model_path if monitored else ""
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)[0]
        _print_metrics(f"test metrics ({'best checkpoint ' + best if best else 'last weights'}):", results)
        if trainer.is_global_zero:  # machine-readable copy for sweeps and benchmark scripts
            Path(cfg.output_dir, "test_metrics.json").write_text(json.dumps(results, indent=2))
    if trainer.is_global_zero:
        user = cfg.show_user if cfg.show_user is not None else datamodule.split.test.history.users[0]
        history = datamodule.user_history(user)
        _print_recommendations(module, history, cfg.top_k, f"top-{cfg.top_k} for user {user}:")
    return results


def _exit_stopped(trainer) -> None:
    """A run stopped by SIGTERM (preemption, `kill`) exits 143 before the test, saying how to resume it."""
    saved = [c.best_model_path for c in trainer.checkpoint_callbacks if not c.monitor and c.best_model_path]
    resume = f" Resume it with ckpt_path={saved[0]}." if saved else ""
    print(
        f"seqrec: training stopped by SIGTERM in epoch {trainer.current_epoch}, before the test.{resume}",
        file=sys.stderr,
    )
    sys.exit(128 + signal.SIGTERM)


def _continue_checkpoints(callbacks: list, ckpt: Path) -> None:
    """A resumed run writes its checkpoints next to the one it resumes from. Lightning restores a checkpoint
    callback's best score and top-k only into the folder they were saved in: in a new folder the resumed run would
    forget its best epoch so far, and the test would score whichever epoch came after the resume."""
    if not ckpt.is_file():
        raise SeqRecError(f"ckpt_path={ckpt} is not a file; pass the run's checkpoints/last.ckpt to resume it.")
    folder = os.path.realpath(ckpt.parent)
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath != folder:
            log.info("Resuming from %s: checkpoints continue in %s, with its best so far.", ckpt, folder)
            callback.dirpath = folder


def _checkpoint_data(cfg: DictConfig, module):
    data_cfg = cfg.get("data") or getattr(module, "data_config", None)
    if not data_cfg:
        raise SeqRecError("This checkpoint does not record its data; pass data=<dataset> (and data.path=...).")
    datamodule = _build_data(OmegaConf.create(data_cfg) if isinstance(data_cfg, dict) else data_cfg)
    if datamodule.vocab != module.vocab:
        raise SeqRecError(
            "The data's item vocabulary differs from the checkpoint's; evaluate on the data it was trained on."
        )
    return datamodule


def evaluate(cfg: DictConfig) -> dict:
    """Full-ranking metrics of a checkpoint on its data's test (or validation) split."""
    module = load_checkpoint(cfg.ckpt)
    if cfg.mask_seen is not None:
        module.mask_seen = bool(cfg.mask_seen)
    datamodule = _checkpoint_data(cfg, module)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    if cfg.split == "val":
        results = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    else:
        results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    _print_metrics(f"{cfg.split} metrics of {cfg.ckpt}:", results)
    return results


def recommend(cfg: DictConfig) -> list:
    """Top-k raw item IDs for a known user (looked up in the checkpoint's data) or a given history."""
    module = load_checkpoint(cfg.ckpt)
    if (cfg.user is None) == (cfg.history is None):
        raise SeqRecError("Pass exactly one of user=<raw user id> or history=[<raw item id>, ...].")
    if cfg.user is not None:
        history = _checkpoint_data(cfg, module).user_history(cfg.user)
        header = f"top-{cfg.k} for user {cfg.user}:"
    else:
        history = list(cfg.history)
        header = f"top-{cfg.k} for the given history:"
    _print_recommendations(module, history, cfg.k, header)
    return module.recommend([history], k=cfg.k, exclude_seen=cfg.exclude_seen)[0]


TASKS: dict[str, Callable[[DictConfig], object]] = {
    "train": train,
    "finetune": finetune,
    "eval": evaluate,
    "recommend": recommend,
}


ZOO_USAGE = "usage: seqrec zoo list | build NAME [key=value ...] | push NAME | pull NAME"
ZOO_TABLE_METRICS = ("test/ndcg@10", "test/hr@10")


def zoo(args: list[str]) -> None:
    """`seqrec zoo list | build NAME [overrides] | push NAME | pull NAME`: the model zoo (`lightning_seqrec.zoo`)."""
    from lightning_seqrec import zoo as model_zoo  # imported here: the zoo builds through this module's `train`

    command, names = (args[0], args[1:]) if args else ("", [])
    if command == "list" and not names:
        _print_zoo(model_zoo.list_entries())
    elif command == "build" and names:
        built = model_zoo.build(names[0], extra_overrides=names[1:])
        print(f"\nbuilt {built.name} into {built.folder} (run folder {built.run_dir})")
    elif command == "push" and len(names) == 1:
        pushed = model_zoo.push(names[0])
        sent = "not sent: no token" if pushed.skipped else pushed.commit_url
        print(f"{pushed.folder} -> hf-hub:{pushed.repo} ({sent}):")
        for op in pushed.operations:
            print(f"  {op.path_in_repo:<18}{op.upload_info.size:>12,} bytes  sha256 {op.upload_info.sha256.hex()}")
    elif command == "pull" and len(names) == 1:
        path = model_zoo.pull(names[0])
        print(f"pulled {names[0]} into {path}; load({names[0]!r}) now also works offline (HF_HUB_OFFLINE=1)")
    else:
        raise SeqRecError(f"`seqrec zoo {' '.join(args)}` is not a zoo command; {ZOO_USAGE}")


def _print_zoo(entries: list) -> None:
    """One row per zoo entry: name, state, the test NDCG@10 and HR@10 its card records, and its Hub repo."""
    print(f"{'name':<28}{'status':<9}{'ndcg@10':>9}{'hr@10':>9}  hub repo")
    for entry in entries:
        cells = "".join(f"{entry.metrics[k]:>9.4f}" if k in entry.metrics else f"{'-':>9}" for k in ZOO_TABLE_METRICS)
        print(f"{entry.name:<28}{entry.status:<9}{cells}  {entry.repo or '-'}")
        if entry.problem:
            print(f"  {entry.problem}")


def _reporting(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Turn the library's own errors and bad config arguments into one clear line and exit status 2."""

    def run(cfg: DictConfig):
        try:
            return task(cfg)
        except SeqRecError as err:
            print(f"seqrec: error: {err}", file=sys.stderr)
            sys.exit(2)
        except InstantiationException as err:
            cause = err.__cause__ if err.__cause__ is not None else err
            if isinstance(cause, SeqRecError):
                print(f"seqrec: error: {cause}", file=sys.stderr)
            else:
                print(
                    f"seqrec: error: a config entry could not be built: {err}\n"
                    "Fix the key named above (`seqrec <command> --cfg job` prints the full config).",
                    file=sys.stderr,
                )
            sys.exit(2)

    run.__name__ = task.__name__
    return run


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, overrides = argv[0], argv[1:]
    if command == "zoo":
        _reporting(zoo)(overrides)
        return
    if command not in TASKS:
        print(f"seqrec: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"seqrec-{command}", *overrides]
    hydra.main(config_path="pkg://lightning_seqrec.configs", config_name=command, version_base="1.3")(
        _reporting(TASKS[command])
    )()


if __name__ == "__main__":
    main()
