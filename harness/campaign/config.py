"""The campaign file (TOML or YAML), checked with pydantic: every unknown key, missing field, wrong
type or impossible combination is one line `FILE: key.path[i]: problem`, all of them at once.

Relative paths are relative to the current directory, as the harness's flags are.
"""
from __future__ import annotations

import pathlib
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.benchmarks.definitions import BENCHMARKS, FOLDERS
from harness.benchmarks.scenarios import SCENARIOS
from harness.run.preflight import PreflightError, parse_workers
from harness.submission.rules import DIVISIONS

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, as a package (setup.py)
    import tomli as tomllib

# the step kinds a campaign file may ask for, in the order they run (harness.campaign.plan declares
# what each needs)
STEP_KINDS = ("find-qps", "performance", "accuracy", "TEST06", "package", "check")


class ConfigError(ValueError):
    """One or more problems, each a full line naming the file and the key."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _one_of(what: str, names) -> AfterValidator:
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"unknown {what} {value!r} (choose from {', '.join(names)})")
        return value
    return AfterValidator(check)


def _no_repeats(values: list) -> list:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"listed twice: {', '.join(twice)}")
    return values


StepName = Annotated[str, _one_of("step", STEP_KINDS)]
ScenarioName = Annotated[str, _one_of("scenario", tuple(SCENARIOS))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalWorkers(Strict):
    """Workers the campaign starts on this machine for its whole length (and stops at the end)."""
    engine: str = "hf"
    count: int = Field(2, ge=1)
    model: str | None = None          # None: the embedded default model (engine hf)
    args: list[str] = []              # extra `python -m sut.worker` flags
    ready_timeout_s: float = Field(600.0, gt=0)


class Workers(Strict):
    addresses: list[str] | None = None
    local: LocalWorkers | None = None
    auth_token_file: str | None = None
    tls_ca: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_server_name: str | None = None
    reachable_timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def one_kind(self):
        if (self.addresses is None) == (self.local is None):
            raise ValueError("give exactly one of workers.addresses and [workers.local]")
        return self


class LoadGenSettings(Strict):
    """user.conf for every run: the file `user_conf` (if any), then these values on top."""
    user_conf: str | None = None
    min_duration_ms: int | None = Field(None, ge=0)
    min_query_count: int | None = Field(None, ge=1)
    performance_sample_count: int | None = Field(None, ge=1)
    offline_target_qps: float | None = Field(None, gt=0)
    target_qps: dict[Literal["Server", "Interactive"], float] = {}  # else the find-qps step finds it


class RunSettings(Strict):
    """Flags for every `python -m harness run` of the campaign."""
    samples: int | None = Field(None, ge=1)  # --total-sample-count
    max_new_tokens: int | None = Field(None, ge=1)
    min_new_tokens: int | None = Field(None, ge=1)
    args: list[str] = []


class FindQpsSettings(Strict):
    probe_duration_ms: int = Field(60000, ge=1)
    confirm_duration_ms: int = Field(600000, ge=1)
    max_probes: int = Field(12, ge=2)
    budget_s: float = Field(7200.0, gt=0)
    offline_qps: float | None = Field(None, gt=0)
    offline_samples: int = Field(1000, ge=1)
    no_confirm: bool = False
    args: list[str] = []


class CampaignConfig(Strict):
    benchmark: Annotated[str, _one_of("benchmark", FOLDERS)] = "llama3.1-8b"
    scenarios: Annotated[list[ScenarioName], AfterValidator(_no_repeats)] = Field(min_length=1)
    steps: Annotated[list[StepName], AfterValidator(_no_repeats)] = Field(min_length=1)
    repeat: int = Field(1, ge=1)     # performance runs per scenario; the first is packaged
    output: str
    organisation: str = Field(min_length=1)
    division: Annotated[str, _one_of("division", DIVISIONS)] = "closed"
    dataset: str | None = None       # None: the embedded default's evaluation set (SmolLM2 token ids)
    tokenizer: str | None = None     # scoring accuracy runs (default: local hf workers' model, else with
    #                                  the embedded dataset the embedded model)
    eos_ids: list[int] | None = None
    system: str | dict[str, Any] | None = None  # system description: a JSON file, or its fields here
    smoke: bool = False              # marks every run a smoke run (short settings, not a submission)
    allow_unofficial: bool = False   # package smoke runs, simulated workers, forced output lengths
    allow_mixed_revisions: bool = False
    workers: Workers
    loadgen: LoadGenSettings = LoadGenSettings()
    run: RunSettings = RunSettings()
    find_qps: FindQpsSettings = FindQpsSettings()

    @property
    def uses_embedded_default(self) -> bool:
        local = self.workers.local
        return local is not None and local.model is None


def _path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _pydantic_lines(source: str, exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if error["type"] == "extra_forbidden":
            text = "unknown key"
        elif error["type"] == "missing":
            text = "required key is missing"
        else:
            text = error["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {_path(loc)}: {text}")
    return lines


def _semantic_lines(source: str, c: CampaignConfig) -> list[str]:
    """What pydantic's types cannot say: names known to the harness, and combinations."""
    bad = []
    allowed = next(b for b in BENCHMARKS if b.folder == c.benchmark).allowed_scenarios
    for i, scenario in enumerate(c.scenarios):
        if scenario not in allowed:
            bad.append(f"scenarios[{i}]: {scenario} is not a scenario of {c.benchmark} (choose from "
                       f"{', '.join(allowed)})")
    server_like = [s for s in c.scenarios if s in SCENARIOS and SCENARIOS[s].server_like and s != "SingleStream"]
    if "performance" in c.steps and "find-qps" not in c.steps:
        for scenario in server_like:
            if scenario not in c.loadgen.target_qps:
                bad.append(f"loadgen.target_qps.{scenario}: required key is missing ({scenario} performance needs "
                           f"a target_qps here, or the step 'find-qps')")
    if "check" in c.steps and "package" not in c.steps:
        bad.append("steps: 'check' needs the step 'package'")
    if "package" in c.steps and c.system is None:
        bad.append("system: required key is missing (the package step needs a system description: a JSON file "
                   "or a table of its fields)")
    local = c.workers.local
    if "accuracy" in c.steps and c.tokenizer is None and c.dataset is not None and not (local and local.engine == "hf"):
        bad.append("tokenizer: required key is missing (the accuracy step scores its run with a tokenizer; "
                   "local hf workers lend their model's, the embedded dataset the embedded model's)")
    if local is not None and local.model is None and local.engine != "hf":
        bad.append(f"workers.local.model: required key is missing (engine {local.engine!r} has no embedded "
                   f"default model)")
    if c.workers.addresses is not None:
        try:
            parse_workers(",".join(c.workers.addresses))
        except PreflightError as exc:
            bad.append(f"workers.addresses: {str(exc).removeprefix('--workers: ')}")
    for key, value in (("dataset", c.dataset), ("tokenizer", c.tokenizer), ("loadgen.user_conf", c.loadgen.user_conf),
                       ("system", c.system if isinstance(c.system, str) else None),
                       ("workers.auth_token_file", c.workers.auth_token_file), ("workers.tls_ca", c.workers.tls_ca),
                       ("workers.local.model", local.model if local and local.engine == "hf" else None)):
        if value is not None and not pathlib.Path(value).exists():
            bad.append(f"{key}: {value} does not exist")
    return [f"{source}: {line}" for line in bad]


def parse_text(text: str, source: str) -> dict:
    """The file's mapping; its syntax errors as one ConfigError line with the parser's position."""
    if source.endswith((".yaml", ".yml")):
        import yaml
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise ConfigError([f"{source}: {where}not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{source}: not valid TOML ({exc})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a table of keys, not {type(data).__name__}"])
    return data


def validate(data: dict, source: str) -> CampaignConfig:
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_lines(source, exc)) from None
    lines = _semantic_lines(source, config)
    if lines:
        raise ConfigError(lines)
    return config


def load(path: pathlib.Path) -> tuple[CampaignConfig, str]:
    """The checked config and the file's text (its hash identifies the campaign in every manifest)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None
    return validate(parse_text(text, str(path)), str(path)), text
