"""The cluster file (TOML or YAML): hosts, engine, model, preset, engine args, TLS and token paths.

Schema-checked with pydantic, unknown keys refused. Every problem is one line naming the file, the
line where it could be found, and the key path (`hosts[1].gpus[0]`); `load_cluster` raises
ClusterFileError holding all of them. The file holds paths only: token and key contents are read
where they are used (the coordinator's by `sut.security`, the workers' on their own hosts).
"""
from __future__ import annotations

import os
import pathlib
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.deploy.errors import ClusterFileError
from sut.engines import engine_names
from sut.security import is_loopback
from sut.worker.preset import FORBIDDEN, PresetError, load_preset

# flags the cluster sets itself for every worker: not allowed in engine_args
OWN_FLAGS = frozenset({"engine", "model", "host", "port", "worker-id", "preset", "auth-token-file", "tls-cert",
                       "tls-key", "tls-client-ca", "insecure", "tensor-parallel-size"})
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecurityConfig(_Strict):
    """`token_file`, `tls_*` without `worker_`: files on the coordinator; `worker_*`: on each host."""
    token_file: str | None = None
    tls_ca: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_server_name: str | None = None
    worker_token_file: str | None = None
    worker_tls_cert: str | None = None
    worker_tls_key: str | None = None
    worker_tls_client_ca: str | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _pairs(self):
        if (self.worker_tls_cert is None) != (self.worker_tls_key is None):
            raise ValueError("worker_tls_cert and worker_tls_key go together")
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError("tls_client_cert and tls_client_key go together")
        if (self.worker_tls_cert is None) != (self.tls_ca is None):
            raise ValueError("TLS needs both sides: worker_tls_cert/worker_tls_key on the hosts and tls_ca on "
                             "the coordinator")
        if (self.worker_token_file is None) != (self.token_file is None):
            raise ValueError("a token needs both sides: worker_token_file (on the hosts) and token_file "
                             "(on the coordinator)")
        return self

    @property
    def authenticated(self) -> bool:
        return bool(self.worker_token_file or self.worker_tls_client_ca)

    def worker_flags(self) -> list[str]:
        flags = []
        for flag, value in (("--auth-token-file", self.worker_token_file), ("--tls-cert", self.worker_tls_cert),
                            ("--tls-key", self.worker_tls_key), ("--tls-client-ca", self.worker_tls_client_ca)):
            if value:
                flags += [flag, value]
        return flags + (["--insecure"] if self.insecure else [])

    def host_files(self) -> list[str]:
        return [f for f in (self.worker_token_file, self.worker_tls_cert, self.worker_tls_key,
                            self.worker_tls_client_ca) if f]


class HostConfig(_Strict):
    address: str = Field(min_length=1)
    name: str | None = None                 # default: address
    port: int = Field(22, ge=1, le=65535)   # SSH
    user: str | None = None                 # default: the coordinator's user
    key_file: str | None = None             # default: the SSH agent's and ~/.ssh's keys
    known_hosts: str | None = None          # default: ~/.ssh/known_hosts
    python: str = "python3"                 # the venv's interpreter, e.g. /opt/venv/bin/python
    workdir: str | None = None              # the workers' working directory (default: the SSH user's home)
    env: dict[str, str] = {}
    gpus: list[int | list[int]] = Field(min_length=1)  # GPU indices, or explicit tensor-parallel groups
    tensor_parallel: int = Field(1, ge=1)   # GPUs per worker when gpus is a flat list
    base_port: int | None = Field(None, ge=1, le=65535)      # default: the cluster's
    advertise: str | None = None            # the address the coordinator dials (default: address)

    @field_validator("gpus")
    @classmethod
    def _indices(cls, gpus):
        if len({isinstance(item, list) for item in gpus}) > 1:
            raise ValueError("either GPU indices [0, 1] or GPU groups [[0, 1], [2, 3]], not both")
        flat = [g for item in gpus for g in (item if isinstance(item, list) else [item])]
        if any(g < 0 for g in flat):
            raise ValueError("GPU indices are >= 0")
        if len(set(flat)) != len(flat):
            raise ValueError(f"a GPU is listed twice: {flat}")
        if any(isinstance(item, list) and not item for item in gpus):
            raise ValueError("an empty GPU group")
        return gpus

    @model_validator(mode="after")
    def _groups(self):
        if self.name is not None and not NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: letters, digits, '_', '.', '-' only")
        if isinstance(self.gpus[0], int) and len(self.gpus) % self.tensor_parallel:
            raise ValueError(f"tensor_parallel {self.tensor_parallel} must divide the {len(self.gpus)} GPUs")
        if isinstance(self.gpus[0], list) and self.tensor_parallel != 1:
            raise ValueError("give either GPU groups or tensor_parallel, not both")
        return self

    @property
    def label(self) -> str:
        return self.name or self.address

    def gpu_groups(self) -> list[tuple[int, ...]]:
        if isinstance(self.gpus[0], list):
            return [tuple(group) for group in self.gpus]
        tp = self.tensor_parallel
        return [tuple(self.gpus[i:i + tp]) for i in range(0, len(self.gpus), tp)]


class ClusterConfig(_Strict):
    name: str
    engine: str
    model: str = Field(min_length=1)        # the model directory on every host (or the sim's name)
    preset: str | None = None               # a tuned preset on the coordinator; shipped to each host
    engine_args: dict[str, str | int | float | bool | None] = {}
    bind: str = "0.0.0.0"
    base_port: int = Field(50051, ge=1, le=65535)
    remote_dir: str = "~/.mlperf-harness/clusters"
    ready_timeout_s: float = Field(900.0, gt=0)
    security: SecurityConfig = SecurityConfig()
    hosts: list[HostConfig] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, name):
        if not NAME.match(name):
            raise ValueError("letters, digits, '_', '.', '-' only (it names a folder on every host)")
        return name

    @field_validator("engine")
    @classmethod
    def _engine(cls, engine):
        if engine not in engine_names():
            raise ValueError(f"{engine!r} is not one of {', '.join(engine_names())}")
        return engine

    @field_validator("engine_args")
    @classmethod
    def _engine_args(cls, args):
        for key in args:
            flag = key.replace("_", "-")
            if flag in FORBIDDEN:
                raise ValueError(f"{key!r} changes sampling (not allowed in the closed division)")
            if flag in OWN_FLAGS:
                raise ValueError(f"{key!r} is set by the cluster file's own keys")
        return args

    @model_validator(mode="after")
    def _whole(self):
        labels = [h.label for h in self.hosts]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two hosts share a name: {labels} (give each a distinct name)")
        if not is_loopback(self.bind) and not (self.security.authenticated or self.security.insecure):
            raise ValueError(f"bind {self.bind!r} is reachable from other hosts: set security.worker_token_file "
                             f"(+ token_file) or security.worker_tls_client_ca, or security.insecure on a "
                             f"trusted network")
        return self

    def host(self, label: str) -> HostConfig | None:
        return next((h for h in self.hosts if h.label == label), None)


def load_cluster(path: str | os.PathLike) -> ClusterConfig:
    file = pathlib.Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ClusterFileError([f"{file}: cannot read it ({exc.strerror or exc})"]) from None
    data, lines = _parse(file, text)
    if not isinstance(data, dict):
        raise ClusterFileError([f"{file}: expected a table of keys (name, engine, model, hosts, ...)"])
    try:
        config = ClusterConfig.model_validate(data)
    except ValidationError as exc:
        problems = {}  # one line per key: a union's members each report the same bad value
        for err in exc.errors():
            loc, line = _problem(file, lines, err)
            problems.setdefault(loc, line)
        raise ClusterFileError(list(problems.values())) from None
    problems = _local_files(file, lines, config)
    if problems:
        raise ClusterFileError(problems)
    return config


def _parse(file: pathlib.Path, text: str) -> tuple[object, dict[tuple, int]]:
    if file.suffix in (".yaml", ".yml"):
        import yaml
        try:
            return yaml.safe_load(text), _yaml_lines(yaml.compose(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark else ""
            raise ClusterFileError([f"{file}: {where}not YAML ({getattr(exc, 'problem', None) or exc})"]) from None
    if file.suffix == ".toml":
        import tomllib
        try:
            return tomllib.loads(text), _toml_lines(text)
        except tomllib.TOMLDecodeError as exc:
            raise ClusterFileError([f"{file}: not TOML ({exc})"]) from None
    raise ClusterFileError([f"{file}: a cluster file ends in .toml, .yaml or .yml"])


def _yaml_lines(node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if node.id == "mapping":
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _yaml_lines(value, path + (key.value,), out)
    elif node.id == "sequence":
        for i, item in enumerate(node.value):
            _yaml_lines(item, path + (i,), out)
    return out


def _toml_lines(text: str) -> dict[tuple, int]:
    """Lines of keys in the shapes a cluster file has: top-level keys, [table], [[array]] of tables."""
    out: dict[tuple, int] = {}
    table: tuple = ()
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if match := re.match(r"^\[\[\s*([\w.-]+)\s*\]\]", stripped):
            name = match.group(1)
            counts[name] = counts.get(name, -1) + 1
            table = (name, counts[name])
            out.setdefault((name,), number)
            out[table] = number
        elif match := re.match(r"^\[\s*([\w.-]+)\s*\]", stripped):
            table = tuple(match.group(1).split("."))
            out[table] = number
        elif match := re.match(r"^([\w-]+)\s*=", stripped):
            out.setdefault(table + (match.group(1),), number)
    return out


def key_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _problem(file: pathlib.Path, lines: dict[tuple, int], err: dict) -> tuple[tuple, str]:
    # pydantic adds the union member it tried (int | list[int]) to loc: drop those labels
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not re.match(r"^(list|int|str|float|bool)\[?", p))
    line = _line_of(lines, loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    return loc, f"{file}: {f'line {line}: ' if line else ''}key {key_path(loc)}: {message}"


def _local_files(file: pathlib.Path, lines: dict[tuple, int], config: ClusterConfig) -> list[str]:
    """The coordinator's own files (relative paths: to the cluster file's folder) must be readable now."""
    problems = []
    checks = [(("security", key), getattr(config.security, key))
              for key in ("token_file", "tls_ca", "tls_client_cert", "tls_client_key")]
    checks += [(("preset",), config.preset)]
    checks += [(("hosts", i, "key_file"), h.key_file) for i, h in enumerate(config.hosts)]
    checks += [(("hosts", i, "known_hosts"), h.known_hosts) for i, h in enumerate(config.hosts)]
    for loc, value in checks:
        if value is None:
            continue
        resolved = resolve_local(file, value)
        if not os.access(resolved, os.R_OK) or not resolved.is_file():
            line = _line_of(lines, loc)
            problems.append(f"{file}: {f'line {line}: ' if line else ''}key {key_path(loc)}: {resolved} is not a "
                            f"readable file on this machine")
    if config.preset and not problems:
        try:
            preset = load_preset(str(resolve_local(file, config.preset)))
            if preset["engine"] != config.engine:
                raise PresetError(f"its engine is {preset['engine']!r}, the cluster's {config.engine!r}")
        except PresetError as exc:
            line = _line_of(lines, ("preset",))
            problems.append(f"{file}: {f'line {line}: ' if line else ''}key preset: {exc}")
    return problems


def resolve_local(cluster_file: str | os.PathLike, value: str) -> pathlib.Path:
    path = pathlib.Path(value).expanduser()
    return path if path.is_absolute() else pathlib.Path(cluster_file).resolve().parent / path
