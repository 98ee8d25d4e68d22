"""The `seqrec` command: `seqrec train|finetune|eval|recommend [hydra overrides]` and `seqrec zoo ...`."""

from __future__ import annotations

import inspect
import logging
import os
import signal
import sys
import types
import typing
from collections.abc import Callable

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from lightning_seqrec import run
from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.data.stored_config import datamodule_from_record
from lightning_seqrec.errors import ConfigError, DataError, SeqRecError
from lightning_seqrec.explain import Explainer, describe
from lightning_seqrec.quiet import quiet

log = logging.getLogger("lightning_seqrec")

USAGE = """usage: seqrec COMMAND [key=value ...]

commands:
  train       train a model and test it     seqrec train experiment=sasrec_beauty_ce
  finetune    adapt a model to new data     seqrec finetune zoo=sasrec.ce-beauty data=sports
  eval        test metrics of a checkpoint  seqrec eval ckpt=path/to/epoch012.ckpt
  recommend   top-k for a user or history   seqrec recommend ckpt=... user=1 | history=[1,2,3]
  serve       HTTP recommendation service  seqrec serve model=sasrec.ce-beauty port=8000
  export      encoder to ONNX/TorchScript  seqrec export zoo=sasrec.ce-beauty format=onnx out=exported/
  federated   federated training (Flower)   seqrec federated experiment=fecosr_xmrec
  data stats  dataset statistics and plots  seqrec data stats data=beauty out=stats/
  zoo         list, build, push, pull zoo   seqrec zoo list | build NAME [key=value ...] | push NAME | pull NAME
  sweep       W&B sweeps (configs/sweep/)   seqrec sweep check FILE | create FILE [project=P] | agent ID [count=N]
  tune        Optuna search, same spaces    seqrec tune sasrec_ce n_trials=20 [study=NAME storage=sqlite:///F]

`seqrec COMMAND --help` says what a command does, its main keys and examples. Overrides are Hydra syntax
(`seqrec train --help` lists the config groups; `seqrec COMMAND --cfg job` prints the config).
A mistake ends in one line `seqrec: error: ...` and exit status 2; `seqrec --debug COMMAND ...` (or SEQREC_DEBUG=1,
HYDRA_FULL_ERROR=1) shows the full trace and every library's log lines.
"""


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


def _print_recommendations(module, history: list, k: int, header: str, **options) -> list[dict]:
    """Print and return the top-`k` of one history (`options` go to `module.recommend`), computed before anything
    is printed so that a bad argument ends in its error line alone."""
    entries = module.recommend([history], k=k, **options)[0]
    titles = module.item_titles
    print(f"\n{header}")
    print("  recent history: " + "; ".join(titles.get(str(i), str(i)) for i in history[-5:]))
    for rank, entry in enumerate(entries, start=1):
        name = entry.get("title", entry["item_id"])
        print(f"  {rank:>2}. {name}  (item {entry['item_id']}, score {entry['score']:.3f})")
        if "explanation" in entry:
            print(f"      {describe(entry['explanation'])}")
    return entries


def train(cfg: DictConfig) -> dict:
    """`seqrec train`: fit, test the best checkpoint (`lightning_seqrec.run.train`), print metrics and a top-k."""
    return _report(run.train(cfg), cfg)


def finetune(cfg: DictConfig) -> dict:
    """`seqrec finetune`: adapt a trained model to the data's catalog, then fit and test as `train`."""
    return _report(run.finetune(cfg), cfg)


def _report(result: run.RunResult, cfg: DictConfig) -> dict:
    """Print a finished run's test metrics and, on the global rank 0, one user's top-k."""
    if result.metrics:
        where = f"best checkpoint {result.best_checkpoint}" if result.best_checkpoint else "last weights"
        _print_metrics(f"test metrics ({where}):", result.metrics)
    if result.is_global_zero:
        datamodule = result.datamodule
        user = cfg.show_user if cfg.show_user is not None else datamodule.split.test.history.users[0]
        history = datamodule.user_history(user)
        times = {"timestamps": [datamodule.user_times(user)]} if result.module.uses_time else {}
        _print_recommendations(result.module, history, cfg.top_k, f"top-{cfg.top_k} for user {user}:", **times)
    return result.metrics


def _checkpoint_data(cfg: DictConfig, module, source: str | None = None):
    """The data a checkpoint (or the model `source` names) is evaluated, recommended or explained on: the user's
    `data=<dataset>` when given (their own config, built by Hydra); otherwise the config stored in the checkpoint,
    built only from the allow-list of `datamodule_from_record` (a checkpoint is untrusted data), with any
    `+data.KEY=VALUE` the user passed on top."""
    source = source or f"checkpoint {cfg.ckpt}"
    given = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else {}
    stored_path = None
    if "_target_" in given:
        datamodule = instantiate(cfg.data)
    else:
        stored = getattr(module, "data_config", None)
        if not stored:
            raise SeqRecError(f"{source} does not record its data; pass data=<dataset> (and data.path=...).")
        datamodule = datamodule_from_record(stored, source, overrides=given)
        stored_path = None if "path" in given else stored.get("path")
    try:
        datamodule.setup("fit")
    except DataError as err:
        if stored_path is None:
            raise
        raise DataError(
            f"{err} (data.path={stored_path} is the one recorded in {source}; if the data lives "
            "elsewhere now, pass +data.path=<its path>)"
        ) from err
    if datamodule.vocab != module.vocab:
        raise SeqRecError(
            "The data's item vocabulary differs from the checkpoint's; evaluate on the data it was trained on."
        )
    return datamodule


def evaluate(cfg: DictConfig) -> dict:
    """Full-ranking metrics of a checkpoint on its data's test (or validation) split, or (`predictions=FILE`) of
    another library's top-k lists against that split."""
    if cfg.get("predictions") is not None:
        return evaluate_predictions(cfg)
    if cfg.ckpt is None:
        raise ConfigError(
            "ckpt is required and has no value; pass ckpt=<path to a .ckpt file> "
            "(or predictions=<file> data=<dataset>)."
        )
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


def evaluate_predictions(cfg: DictConfig) -> dict:
    """`seqrec eval predictions=FILE data=...` (or `ckpt=` for the checkpoint's data): another library's top-k lists
    scored by our metrics against our split, with counts of what did not match (`lightning_seqrec.external_eval`)."""
    from lightning_seqrec.external_eval import evaluate_predictions as score_file
    from lightning_seqrec.external_eval import read_predictions

    predictions = read_predictions(cfg.predictions)
    if cfg.get("ckpt") is not None:
        module = load_checkpoint(cfg.ckpt)
        datamodule, ks = _checkpoint_data(cfg, module), module.eval_ks
    elif cfg.get("data") and "_target_" in cfg.data:
        datamodule, ks = instantiate(cfg.data), tuple(cfg.ks)
        datamodule.setup("fit")
    else:
        raise ConfigError("predictions= needs the data to score against: pass data=<dataset> (and data.path=...).")
    mask_seen = True if cfg.mask_seen is None else bool(cfg.mask_seen)
    result = score_file(predictions, datamodule, cfg.split, ks, mask_seen=mask_seen)
    _print_metrics(f"{cfg.split} metrics of {cfg.predictions} (mask_seen={mask_seen}):", result.metrics)
    print("\n" + "\n".join(f"  {name}: {count}" for name, count in result.counts.items()))
    return result.metrics


def serve(cfg: DictConfig) -> None:
    """`seqrec serve model=...`: the HTTP service of `lightning_seqrec.serve` on host:port until Ctrl-C / SIGTERM."""
    from lightning_seqrec.serve.app import bind, run_server

    app = service_app(cfg)
    sock = bind(cfg.host, cfg.port)
    print(f"serving {cfg.model_spec} on http://{cfg.host}:{sock.getsockname()[1]}", flush=True)
    run_server(app, [sock], log_level=cfg.log_level)


def service_app(cfg: DictConfig):
    """The FastAPI app `seqrec serve` runs: the model `cfg.model_spec` names, its index and limits, and with
    `explain=true` an `Explainer` fitted once on the model's data so that requests may ask for explanations."""
    try:
        from lightning_seqrec.serve import load_model
        from lightning_seqrec.serve.app import Limits, create_app, set_threads
    except ImportError as err:
        raise ConfigError(
            f"seqrec serve needs the [serve] extra ({err}); pip install 'lightning-seqrec[serve]'."
        ) from err
    set_threads(cfg.threads)
    module, metrics = load_model(str(cfg.model_spec))
    if cfg.explain:
        datamodule = _checkpoint_data(cfg, module, source=f"model {cfg.model_spec}")
        Explainer(module, datamodule.item_attributes()).fit(datamodule)
    large = cfg.large_catalog is not None and module.num_items > cfg.large_catalog
    return create_app(
        module,
        name=str(cfg.model_spec),
        metrics=metrics,
        index=cfg.large_index if large else cfg.index,
        index_kwargs=OmegaConf.to_container(cfg.index_kwargs, resolve=True) or {},
        limits=Limits(**OmegaConf.to_container(cfg.limits, resolve=True)),
        state_file=cfg.state_file,
    )


def export(cfg: DictConfig) -> dict:
    """`seqrec export ckpt=...|zoo=... format=onnx|torchscript out=DIR`: the encoder graph and what serves it."""
    from lightning_seqrec.export import export as export_model
    from lightning_seqrec.finetune import load_source

    if (cfg.ckpt is None) == (cfg.zoo is None):
        raise ConfigError("Pass exactly one of ckpt=<.ckpt file> or zoo=<zoo name | local-dir:PATH | hf-hub:ORG/REPO>.")
    module = load_source(str(cfg.ckpt if cfg.ckpt is not None else cfg.zoo))
    manifest = export_model(
        module, cfg.out, fmt=cfg.format, output=cfg.output, k=cfg.k, exclude_seen=cfg.exclude_seen, index=cfg.index
    )
    parity = manifest["parity"]
    print(
        f"exported {manifest['backbone']} to {cfg.out}/{manifest['graph']} ({cfg.format}, output={cfg.output}); "
        f"largest score difference to PyTorch {parity['max_abs_score_error']:.2e}, same top-{parity['top']}: "
        f"{parity['same_top']}"
    )
    return manifest


def recommend(cfg: DictConfig) -> list:
    """Top-k raw item IDs for a known user (looked up in the checkpoint's data, with the user's timestamps when the
    model reads time) or a given history (and its `times=`, one per item)."""
    module = load_checkpoint(cfg.ckpt)
    if (cfg.user is None) == (cfg.history is None):
        raise SeqRecError("Pass exactly one of user=<raw user id> or history=[<raw item id>, ...].")
    times = None
    if cfg.user is not None:
        if cfg.get("times") is not None:
            raise SeqRecError("times= goes with history=[...]; a user's timestamps come from the data.")
        datamodule = _checkpoint_data(cfg, module)
        history = datamodule.user_history(cfg.user)
        times = datamodule.user_times(cfg.user) if module.uses_time else None
        header = f"top-{cfg.k} for user {cfg.user}:"
    else:
        history = _history_argument(cfg.history)
        if cfg.get("times") is not None:
            times = _history_argument(cfg.times, "times")
            if len(times) != len(history):
                raise SeqRecError(
                    f"times= has {len(times)} value(s) for the {len(history)} item(s) of history=; pass one timestamp "
                    "per item, oldest first: times=[<t1>, <t2>, ...]."
                )
        header = f"top-{cfg.k} for the given history:"
    options = {"exclude_seen": cfg.exclude_seen, "unknown": cfg.unknown}
    if times is not None:
        options["timestamps"] = [times]
    if cfg.get("explain"):
        datamodule = datamodule if cfg.user is not None else _checkpoint_data(cfg, module)
        options["explain"] = Explainer(module, datamodule.item_attributes()).fit(datamodule)
    return _print_recommendations(module, history, cfg.k, header, **options)


def _history_argument(value, key: str = "history") -> list:
    """`history=` as raw item IDs (or `times=` as their timestamps, with `key="times"`): a list as given, a lone ID
    (`history=i4`) as a one-item history rather than the characters of its name."""
    history = list(value) if isinstance(value, ListConfig) else [value]
    if not history:
        what = "<raw item id>" if key == "history" else "<timestamp>"
        raise SeqRecError(
            f"{key}=[] is empty; pass {key}=[{what}, ...] (oldest first)"
            + (" or user=<raw user id>." if key == "history" else ", one per item of history=.")
        )
    return history


def federated(cfg: DictConfig) -> dict:
    """`seqrec federated`: federated training, one Flower client per market; prints the last round's test metrics."""
    from lightning_seqrec.federated.runner import run_federated  # needs the [federated] extra
    from lightning_seqrec.sweeps import log_federated

    summary = run_federated(cfg)
    log_federated(cfg, summary)  # with +logger=wandb: the rounds' metrics in a W&B run, as sweeps need
    last = summary["metrics"][max(summary["metrics"], key=int)]
    for market, metrics in last.items():
        _print_metrics(f"market {market}, test:", {k: v for k, v in metrics.items() if k.startswith("test/")})
    return summary


def data_stats(cfg: DictConfig) -> dict:
    """`seqrec data stats data=NAME`: the statistics of the data as training reads it (after its filters), printed,
    and its popularity and history-length plots (PNG) with `data_stats.json` in `out` (default: the run folder)."""
    from lightning_seqrec.data.stats import interaction_stats, save_report

    stats = interaction_stats(run.build_data(cfg.data).interactions)
    print(stats.report())
    for path in save_report(stats, cfg.out):
        print(f"wrote {path}")
    return stats.summary()


TASKS: dict[str, Callable[[DictConfig], object]] = {
    "train": train,
    "finetune": finetune,
    "eval": evaluate,
    "recommend": recommend,
    "federated": federated,
    "serve": serve,
    "export": export,
    "data_stats": data_stats,
}

SUBCOMMANDS = {"data": {"stats": "data_stats"}}
"""Two-word commands that run a Hydra task: `seqrec data stats data=beauty` is the task `data_stats`, so `data=`
stays the config group it is everywhere else."""


ZOO_USAGE = "usage: seqrec zoo list | build NAME [key=value ...] | push NAME | pull NAME"
ZOO_TABLE_METRICS = ("test/ndcg@10", "test/hr@10")


def zoo(args: list[str]) -> None:
    """seqrec zoo: the model zoo (`lightning_seqrec.zoo`), trained models with cards that record their test metrics.

    usage: seqrec zoo list | build NAME [key=value ...] | push NAME | pull NAME

      list                   every entry: built or planned, its test NDCG@10 and HR@10, its Hugging Face Hub repo
      build NAME [key=value] train the entry's recipe as `seqrec train` once per seed of the recipe (your overrides
                             after the recipe's), test each and write its Hub folder: the best-validated seed's
                             weights, the seeds' mean ± sd in the card. hydra.run.dir=DIR/seed{seed} reuses the
                             finished runs of the same config there and continues interrupted ones
      push NAME              upload a built entry to its Hub repo (needs HF_TOKEN or `hf auth login`; without a
                             token the upload is only prepared and listed)
      pull NAME              download an entry into the Hub cache, so that loading it works offline

    examples:
      seqrec zoo list
      seqrec zoo build sasrec.ce-beauty trainer.max_epochs=5
      seqrec finetune zoo=sasrec.ce-beauty data=sports     # start from a zoo model
    """
    from lightning_seqrec import zoo as model_zoo

    command, names = (args[0], args[1:]) if args else ("", [])
    if command == "list" and not names:
        _print_zoo(model_zoo.list_entries())
    elif command == "build" and names:
        built = model_zoo.build(names[0], extra_overrides=names[1:])
        seeds = f"mean over {len(built.runs)} seeds, " if len(built.runs) > 1 else ""
        _print_metrics(f"test metrics of {built.name} ({seeds}recorded in its card):", built.metrics)
        for r in built.runs:
            print(f"  seed {r.seed} ({r.how}): {r.monitor} {r.val_score:.4f}, run folder {r.run_dir}")
        print(f"\nbuilt {built.name} into {built.folder} (weights of seed {built.shipped.seed}, best on validation)")
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
    """One row per zoo entry: name, state, the test NDCG@10 and HR@10 its card records (mean ± sd over its seeds
    when it was built from several), the number of seeds and its Hub repo."""
    print(f"{'name':<28}{'status':<9}{'ndcg@10':>17}{'hr@10':>17}{'seeds':>6}  hub repo")
    for entry in entries:
        cells = "".join(f"{_mean_sd(entry, k):>17}" for k in ZOO_TABLE_METRICS)
        seeds = str(entry.num_seeds) if entry.built else "-"
        print(f"{entry.name:<28}{entry.status:<9}{cells}{seeds:>6}  {entry.repo or '-'}")
        if entry.problem:
            print(f"  {entry.problem}")


def _mean_sd(entry, metric: str) -> str:
    if metric not in entry.metrics:
        return "-"
    sd = entry.spread.get(metric)
    return f"{entry.metrics[metric]:.4f}" + (f" ± {sd:.4f}" if sd is not None and entry.num_seeds > 1 else "")


REQUIRED_VALUES = {
    "ckpt": "ckpt=<path to a .ckpt file>",
    "zoo": "zoo=<zoo name (seqrec zoo list), hf-hub:ORG/REPO, a Hub folder or a .ckpt file>",
    "data.path": "data.path=<the data file (or folder) to read>",
    "model_spec": "model=<zoo name, local-dir:PATH, hf-hub:ORG/REPO or a .ckpt file>",
    "out": "out=<folder to write the exported model into>",
}
"""How to pass each value a config leaves required (`???`); any other is named with `KEY=<value>`."""

PLAIN_TYPES = (int, float, bool, str, type(None))


def _check_config(cfg: DictConfig) -> None:
    """Refuse a config with a required value left out, or a value its target's signature rules out, before any
    work: otherwise omegaconf or the target fails with a trace, the latter only deep inside training."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        fix = REQUIRED_VALUES.get(missing[0], f"{missing[0]}=<value>")
        raise ConfigError(f"{missing[0]} is required and has no value; pass {fix}.")
    _check_types(OmegaConf.to_container(cfg, resolve=True), "")


def _check_types(node, key: str) -> None:
    """Walk a resolved config; at each `_target_`, each scalar must be of a type its parameter's annotation allows."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_types(item, f"{key}[{i}]")
    if not isinstance(node, dict):
        return
    allowed = _parameter_types(node["_target_"]) if isinstance(node.get("_target_"), str) else {}
    for name, value in node.items():
        full = f"{key}.{name}" if key else str(name)
        kinds = allowed.get(name)
        if kinds and not isinstance(value, (dict, list)) and not _fits(value, kinds):
            names = [kind.__name__ if kind is not type(None) else "null" for kind in PLAIN_TYPES if kind in kinds]
            raise ConfigError(
                f"{full}={value!r} is not {' or '.join(names)} (the {name} of {node['_target_']}); "
                f"pass {full}=<{names[0]}>."
            )
        _check_types(value, full)


def _fits(value, kinds: set) -> bool:
    if isinstance(value, bool):  # before int: bool is an int subclass, and true is no epoch count
        return bool in kinds
    if isinstance(value, int):
        return int in kinds or float in kinds
    return type(value) in kinds or not isinstance(value, PLAIN_TYPES)


def _parameter_types(target: str) -> dict[str, set]:
    """The plain types (int, float, bool, str, None) each parameter of `target` allows, for the parameters annotated
    with those alone; a class's bases count while each `__init__` passes `**kwargs` on, and a class with a made
    `__signature__` (the per-backbone modules) is read from that. Unknown targets give {}."""
    try:
        obj = hydra.utils.get_object(target)
    except Exception:  # Hydra's instantiate names a target it cannot import
        return {}
    if not isinstance(obj, type) or "__signature__" in vars(obj):
        functions = [obj]
    else:
        functions = [inspect.unwrap(vars(c)["__init__"]) for c in inspect.getmro(obj) if "__init__" in vars(c)]
    allowed: dict[str, set] = {}
    for function in functions:
        try:
            parameters = inspect.signature(function, eval_str=True).parameters
        except Exception:  # annotations this Python cannot evaluate, builtins without a signature: not checked
            return allowed
        for name, parameter in parameters.items():
            hint = parameter.annotation
            kinds = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
            if name not in allowed and kinds <= set(PLAIN_TYPES):
                allowed[name] = kinds | ({type(None)} if parameter.default is None else set())
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return allowed


DEBUG_VARIABLES = ("SEQREC_DEBUG", "HYDRA_FULL_ERROR")
"""Either set (to anything but 0) asks for full traces and every library's log lines, as `--debug` does."""


def _debugging() -> bool:
    return any(os.environ.get(name, "0") not in ("", "0") for name in DEBUG_VARIABLES)


def _exit_error(err: BaseException) -> None:
    """Print `err` as one `seqrec: error:` line and exit 2, or re-raise it for its trace when debugging (`--debug`,
    SEQREC_DEBUG or HYDRA_FULL_ERROR). An error that is not the library's own says how to get its trace."""
    if _debugging():
        raise err
    cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ is not None else err
    if isinstance(cause, SeqRecError):
        message = str(cause)
    elif isinstance(err, InstantiationException):
        message = f"a config entry could not be built: {err}; fix the key named here (`--cfg job` prints the config)."
    else:
        message = f"{type(err).__name__}: {err} (`seqrec --debug ...` shows where it came from)"
    print("seqrec: error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(2)


def _reporting(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Turn the library's own errors and bad config arguments into one clear line and exit status 2, a run stopped
    by a signal into its resume line and status 128 + the signal, and Ctrl-C outside training into status 130."""

    def reported(cfg: DictConfig):
        try:
            if isinstance(cfg, DictConfig):
                _check_config(cfg)
            return task(cfg)
        except run.RunStopped as stopped:
            print(f"seqrec: {stopped}", file=sys.stderr)
            sys.exit(128 + stopped.signum)
        except (SeqRecError, InstantiationException) as err:
            _exit_error(err)
        except KeyboardInterrupt:
            print("seqrec: interrupted (Ctrl-C).", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        except Exception as err:  # a failure that is not the user's input: one line too, the trace with --debug
            _exit_error(err)

    reported.__name__ = task.__name__
    return reported


def sweep(args: list[str]) -> None:
    """seqrec sweep: W&B sweeps whose runs are `seqrec` commands with Hydra overrides (`lightning_seqrec.sweeps`).

    usage: seqrec sweep check FILE | create FILE [project=P entity=E] | agent ID [count=N project=P entity=E]

      check FILE    compose the config of every parameter value of the sweep file (offline) and print the agent's
                    first command
      create FILE   check, then create the sweep on the W&B server and print its ID
      agent ID      run the sweep's runs here, each its command in its own process (count=N runs, then stop)

    FILE is a path or a packaged sweep of configs/sweep/: sasrec_ce, rcl, ikea, tme_psr, fecosr.
    examples:
      seqrec sweep create rcl project=seqrec-rcl
      seqrec sweep agent my-team/seqrec-rcl/abc123 count=10
    """
    from lightning_seqrec import sweeps

    sweeps.main(args)


def tune(args: list[str]) -> None:
    """seqrec tune: a sweep file's search space searched offline with Optuna, trials run here (`lightning_seqrec.tune`).

    usage: seqrec tune FILE n_trials=N [study=NAME storage=sqlite:///FILE dir=FOLDER pruner=median|hyperband|none
                                       startup_trials=5 sampler_seed=0] [hydra overrides for every trial]

    The study (SQLite, in outputs/tune/<study>/ unless storage= or dir= say otherwise) resumes: n_trials is the total
    of finished trials, so the same command after an interruption runs what is missing. Trials are pruned on the
    sweep's metric (val/ndcg@10); the best trial's parameters and value are printed and written to best.yaml.
    examples:
      seqrec tune sasrec_ce n_trials=20 trainer.max_epochs=30
      seqrec tune rcl n_trials=30 study=rcl-beauty pruner=none
    """
    from lightning_seqrec import tune as tuning

    tuning.main(args)


PLAIN_COMMANDS: dict[str, Callable[[list[str]], object]] = {"zoo": zoo, "sweep": sweep, "tune": tune}
"""Commands that read their own arguments (a sub-command and names) rather than a Hydra config."""


def plain_help(command: str) -> str:
    """The `--help` of a command that reads its own arguments: its function's docstring."""
    return inspect.getdoc(PLAIN_COMMANDS[command]) or f"usage: seqrec {command} ..."


def _check_composes(command: str, overrides: list[str]) -> None:
    """Compose the command's config before Hydra does, so that an override Hydra cannot apply (a mistyped key, a
    missing `+`, a list without brackets) ends in one `seqrec: error:` line, like every other mistake."""
    try:
        run.compose(command, overrides)
    except ConfigError as err:
        _exit_error(err)


HELP_FLAGS = ("-h", "--help")
DEBUG_FLAG = "--debug"


def main(argv: list[str] | None = None) -> None:
    """`seqrec [--debug] COMMAND [--help] [overrides]`: quiet third-party output (`lightning_seqrec.quiet`) unless
    debugging, answer `--help`, check that a Hydra command's overrides compose, then run the command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if DEBUG_FLAG in argv:  # before or after the command; Hydra's own parser would refuse it
        argv = [arg for arg in argv if arg != DEBUG_FLAG]
        for name in DEBUG_VARIABLES:
            os.environ[name] = "1"
    if not _debugging():
        quiet()
    if argv[:1] == ["help"] and len(argv) > 1:  # `seqrec help train` is `seqrec train --help`
        argv = [argv[1], "--help"]
    if not argv or argv[0] in (*HELP_FLAGS, "help"):
        print(USAGE)
        return
    command, overrides = argv[0], argv[1:]
    if command in SUBCOMMANDS:
        sub = SUBCOMMANDS[command]
        if not overrides or overrides[0] not in sub:
            _exit_error(ConfigError(f"seqrec {command} takes one of: {', '.join(sub)}, e.g. `seqrec data stats`."))
        command, overrides = sub[overrides[0]], overrides[1:]
    if command in PLAIN_COMMANDS:
        if any(arg in HELP_FLAGS for arg in overrides):
            print(plain_help(command))
            return
        _reporting(PLAIN_COMMANDS[command])(overrides)
        return
    if command not in TASKS:
        print(f"seqrec: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    if command == "serve":  # `model=` names the model to serve (key model_spec), not training's `model` config group
        overrides = ["model_spec=" + o.removeprefix("model=") if o.startswith("model=") else o for o in overrides]
    if not any(arg.startswith("-") for arg in overrides):  # Hydra's flags (--help, --cfg, -m) run as Hydra says
        _check_composes(command, overrides)
    sys.argv = [f"seqrec-{command}", *overrides]
    hydra.main(config_path="pkg://lightning_seqrec.configs", config_name=command, version_base="1.3")(
        _reporting(TASKS[command])
    )()


if __name__ == "__main__":
    main()
