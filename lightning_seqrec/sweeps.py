"""W&B sweeps over Hydra overrides: the sweep files in `configs/sweep/`, `seqrec sweep create | agent | check`, and
the reading of their search spaces that `seqrec tune` (Optuna, offline) shares.

A sweep file is a W&B sweep config whose `command` runs `seqrec <task>` with fixed overrides, then
`${args_no_hyphens}`, which the W&B agent renders as one `key=value` per parameter: Hydra overrides. Each agent run is
one `seqrec` process (no Hydra multirun inside an agent, nor inside the processes DDP launches), and its W&B run
reports the sweep's metric: `logger=wandb` (`WandbTracking`) for `train` / `finetune`, `log_federated` for
`federated`.

    seqrec sweep check sasrec_ce             # every parameter's values compose with the fixed overrides (offline)
    seqrec sweep create sasrec_ce project=my-project
    seqrec sweep agent ENTITY/PROJECT/ID count=20
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from omegaconf import DictConfig

from lightning_seqrec import run
from lightning_seqrec.errors import ConfigError, SeqRecError

ARGS = "${args_no_hyphens}"
TASKS = ("train", "finetune", "federated")
METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values", "log_uniform")
"""The W&B distributions whose search space `check` composes and `seqrec tune` maps onto Optuna."""
MULTIRUN = ("-m", "--multirun", "hydra.mode=MULTIRUN")
USAGE = "usage: seqrec sweep check FILE | create FILE [project=P entity=E] | agent ID [count=N project=P entity=E]"


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file: `config` is the W&B sweep config as written (sent to W&B unchanged)."""

    name: str
    path: Path
    config: dict

    @property
    def metric(self) -> str:
        return self.config["metric"]["name"]

    @property
    def maximize(self) -> bool:
        return self.config["metric"].get("goal", "maximize") == "maximize"

    @property
    def parameters(self) -> dict[str, dict]:
        return self.config["parameters"]

    @property
    def task(self) -> str:
        """The `seqrec` command the agent runs: `train`, `finetune` or `federated`."""
        return self._parts()[0]

    @property
    def fixed_overrides(self) -> list[str]:
        """The overrides the command passes before the parameters."""
        return self._parts()[1]

    def _parts(self) -> tuple[str, list[str]]:
        command = [str(c) for c in self.config["command"]]
        start = 1 if command[0] == "${env}" else 0
        return command[start + 1], [c for c in command[start + 2 :] if c != ARGS]

    def overrides(self, values: Mapping) -> list[str]:
        """The command's Hydra overrides for parameter `values`, rendered exactly as the W&B agent renders them."""
        return [*self.fixed_overrides, *render(values)]

    def command(self, values: Mapping) -> list[str]:
        """The process the W&B agent starts for parameter `values` (`${env}` is `/usr/bin/env`, as on Linux)."""
        rendered = []
        for chunk in map(str, self.config["command"]):
            rendered += {"${env}": ["/usr/bin/env"], ARGS: render(values)}.get(chunk, [chunk])
        return rendered


def render(values: Mapping) -> list[str]:
    """`${args_no_hyphens}` for parameter `values`, through the W&B agent's own formatting (`key=value`)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})["args_no_hyphens"]


# --------------------------------------------------------------------------------------------- sweep files
def sweep_folder() -> Path:
    """`configs/sweep/` of the installed package: the sweep files a bare name (`sasrec_ce`) refers to."""
    return Path(str(resources.files("lightning_seqrec.configs") / "sweep"))


def load(spec: str | Path) -> Sweep:
    """The sweep file `spec`: a path, or the name of a packaged one (`sasrec_ce` is `configs/sweep/sasrec_ce.yaml`)."""
    path = Path(spec)
    if not path.is_file():
        path = sweep_folder() / f"{Path(spec).stem}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in sweep_folder().glob("*.yaml")))
        raise ConfigError(f"No sweep file {spec}: pass a path or one of the packaged sweeps ({known}).")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"The sweep file {path} is not valid YAML: {err}") from err
    validate(config, path)
    return Sweep(name=path.stem, path=path, config=config)


def validate(config, path: Path) -> None:
    """Refuse, in one line, a sweep file W&B or `seqrec tune` could not run as intended."""

    def fail(message: str) -> None:
        raise ConfigError(f"Sweep file {path}: {message}")

    if not isinstance(config, dict):
        fail("must be a mapping (method, metric, parameters, command).")
    if config.get("method") not in METHODS:
        fail(f"method={config.get('method')!r}; use one of {', '.join(METHODS)}.")
    metric = config.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        fail("needs metric: {name: val/ndcg@10, goal: maximize}.")
    if metric.get("goal", "maximize") not in GOALS:
        fail(f"metric.goal={metric.get('goal')!r}; use maximize or minimize.")
    command = config.get("command")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        fail(f'needs command: ["${{env}}", "seqrec", "train", "experiment=...", "logger=wandb", "{ARGS}"].')
    start = 1 if command[:1] == ["${env}"] else 0
    if command[start : start + 1] != ["seqrec"] or len(command) < start + 2 or command[start + 1] not in TASKS:
        fail(f"command must run `seqrec {' | '.join(TASKS)}`, got {command}.")
    if command.count(ARGS) != 1 or any(c.startswith("${") and c not in ("${env}", ARGS) for c in command):
        fail(f"command passes the parameters once, as {ARGS} (key=value Hydra overrides), and no other ${{...}}.")
    if any(c in MULTIRUN for c in command):
        fail("command must not start a Hydra multirun: each agent run is one `seqrec` process.")
    parameters = config.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        fail("needs parameters: {hydra.key: {values: [...]} | {min: ..., max: ...}, ...}.")
    for name, spec in parameters.items():
        if distribution(name, spec, path) not in ("constant", "categorical") and config["method"] == "grid":
            fail(f"method=grid needs `values` (or `value`) for every parameter; {name} has a range.")


def distribution(name: str, spec, path: Path | str = "") -> str:
    """The W&B distribution of parameter `name` (inferred as W&B infers it when not written), checked against
    `DISTRIBUTIONS` and the keys it needs."""
    where = f"Sweep file {path}: parameter {name}" if path else f"Sweep parameter {name}"
    if not isinstance(spec, dict) or "parameters" in spec:
        raise ConfigError(f"{where} must be {{values: [...]}}, {{value: ...}} or {{min: ..., max: ...}} (no nesting).")
    kind = spec.get("distribution")
    if kind is None:
        if "value" in spec:
            kind = "constant"
        elif "values" in spec:
            kind = "categorical"
        else:
            ints = isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int)
            kind = "int_uniform" if ints else "uniform"
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{where}: distribution {kind!r} is not supported here; use one of {', '.join(DISTRIBUTIONS)}."
        )
    needs = {"constant": ("value",), "categorical": ("values",), "q_uniform": ("min", "max", "q")}.get(
        kind, ("min", "max")
    )
    if any(key not in spec for key in needs):
        raise ConfigError(f"{where}: distribution {kind} needs {', '.join(needs)}.")
    if kind == "categorical" and (not isinstance(spec["values"], list) or not spec["values"]):
        raise ConfigError(f"{where}: values must be a non-empty list.")
    if kind not in ("constant", "categorical") and not spec["min"] < spec["max"]:
        raise ConfigError(f"{where}: min must be below max.")
    if kind == "log_uniform_values" and spec["min"] <= 0:
        raise ConfigError(f"{where}: log_uniform_values needs min > 0.")
    return kind


def bounds(spec: dict, kind: str) -> tuple[float, float]:
    """The smallest and largest value a range parameter takes (`log_uniform` gives its bounds as exponents)."""
    low, high = spec["min"], spec["max"]
    return (math.exp(low), math.exp(high)) if kind == "log_uniform" else (low, high)


def candidates(name: str, spec: dict) -> list:
    """The values `check` composes for a parameter: each of its `values`, its `value`, or both ends of its range."""
    kind = distribution(name, spec)
    if kind == "constant":
        return [spec["value"]]
    if kind == "categorical":
        return list(spec["values"])
    return list(bounds(spec, kind))


def first_values(sweep: Sweep) -> dict:
    """Each parameter at its first candidate value."""
    return {name: candidates(name, spec)[0] for name, spec in sweep.parameters.items()}


def assignments(sweep: Sweep) -> list[dict]:
    """The parameter values `check` composes: every parameter at its first candidate, every one at its last, and
    each other text value (a config-group choice such as `experiment` or `inputs`) with the rest at their first."""
    first = first_values(sweep)
    last = {name: candidates(name, spec)[-1] for name, spec in sweep.parameters.items()}
    found = [first, last] if last != first else [first]
    for name, spec in sweep.parameters.items():
        for value in candidates(name, spec)[1:-1]:
            if isinstance(value, str):
                found.append({**first, name: value})
    return found


def check(sweep: Sweep) -> list[list[str]]:
    """Compose the sweep's task config for each of `assignments(sweep)`, so that a misspelt key, a config-group value
    that does not exist or a value of the wrong type is refused before a sweep starts; returns the override lists."""
    composed = []
    for values in assignments(sweep):
        overrides = sweep.overrides(values)
        try:
            run.compose(sweep.task, overrides)
        except ConfigError as err:
            message = " ".join(str(err).split())
            raise ConfigError(f"Sweep {sweep.path}: `seqrec {sweep.task} {' '.join(overrides)}`: {message}") from err
        composed.append(overrides)
    return composed


# --------------------------------------------------------------------------------------------- W&B
def create(sweep: Sweep, project: str | None = None, entity: str | None = None) -> str:
    """Check `sweep`, then create it on the W&B server (`wandb.sweep`); returns its ID."""
    import wandb

    check(sweep)
    try:
        return wandb.sweep(sweep.config, project=project, entity=entity)
    except Exception as err:  # wandb raises its own errors, and plain ones, for an unreachable server or no login
        raise SeqRecError(_server_error("create the sweep", err)) from err


def agent(sweep_id: str, count: int | None = None, project: str | None = None, entity: str | None = None) -> None:
    """Run W&B sweep `sweep_id` here (`wandb.agent`): each run is the sweep's command in its own process."""
    import wandb

    try:
        wandb.agent(sweep_id, count=count, project=project, entity=entity)
    except Exception as err:
        raise SeqRecError(_server_error(f"run agent {sweep_id}", err)) from err


def _server_error(what: str, err: Exception) -> str:
    return (
        f"W&B could not {what} ({type(err).__name__}: {err}); sweeps need the W&B server and a login "
        "(`wandb login` or WANDB_API_KEY). Offline, `seqrec tune FILE n_trials=N` searches the same space with Optuna."
    )


def federated_score(summary: Mapping, metric: str) -> float:
    """A federated run's value of `metric` (e.g. `val/ndcg@10`): the mean over markets of its last round."""
    last = summary["metrics"][max(summary["metrics"], key=int)]
    values = [float(m[metric]) for m in last.values() if metric in m]
    if not values:
        raise ConfigError(
            f"The federated run reported no {metric}; its markets report {sorted(next(iter(last.values())))}."
        )
    return sum(values) / len(values)


def log_federated(cfg: DictConfig, summary: Mapping) -> None:
    """Log a finished `seqrec federated` run to W&B when its config has `logger.wandb` (`+logger=wandb`): the run
    config, each round's metrics per market (`<market>/val/ndcg@10`) and as the mean over markets (`val/ndcg@10`,
    what a sweep of it ranks by), with `round` as the step."""
    from hydra.utils import instantiate

    if "wandb" not in (cfg.get("logger") or {}):
        return
    experiment = instantiate(cfg.logger.wandb).experiment
    experiment.define_metric("*", step_metric="round")
    experiment.config.update(run.plain_config(cfg), allow_val_change=True)
    for round_number in sorted(summary["metrics"], key=int):
        markets = summary["metrics"][round_number]
        metrics = {f"{market}/{key}": value for market, values in markets.items() for key, value in values.items()}
        shared = [key for key in set.intersection(*(set(values) for values in markets.values())) if "/" in key]
        metrics |= {key: sum(values[key] for values in markets.values()) / len(markets) for key in shared}
        experiment.log({"round": int(round_number), **metrics})
    experiment.finish()


# --------------------------------------------------------------------------------------------- command line
def options(args: Sequence[str], allowed: Sequence[str]) -> dict[str, str]:
    """`key=value` arguments as a dict, refusing keys not in `allowed`."""
    found = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(f"`{arg}` is not one of {', '.join(f'{k}=...' for k in allowed)}; {USAGE}")
        found[key] = value
    return found


def main(args: list[str]) -> None:
    """`seqrec sweep check FILE | create FILE [project= entity=] | agent ID [count= project= entity=]`."""
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "check" and len(rest) == 1:
        sweep = load(rest[0])
        composed = check(sweep)
        print(f"{sweep.path}: {len(composed)} configs of `seqrec {sweep.task}` compose; the agent's first run:")
        print("  " + " ".join(sweep.command(first_values(sweep))))
    elif command == "create" and rest:
        sweep = load(rest[0])
        sweep_id = create(sweep, **options(rest[1:], ("project", "entity")))
        print(f"created sweep {sweep_id} from {sweep.path}; run agents with: seqrec sweep agent {sweep_id} [count=N]")
    elif command == "agent" and rest:
        chosen = options(rest[1:], ("count", "project", "entity"))
        count = chosen.pop("count", None)
        if count is not None and not (count.isdigit() and int(count) > 0):
            raise ConfigError(f"count={count} is not a positive number of runs; pass count=<N>.")
        agent(rest[0], count=int(count) if count else None, **chosen)
    else:
        raise ConfigError(f"`seqrec sweep {' '.join(args)}` is not a sweep command; {USAGE}")
