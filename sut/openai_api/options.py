"""An OpenAI-compatible endpoint's address and its options, all in one URL so that `--workers` can
mix endpoints and gRPC workers:

    openai+http://HOST:PORT/v1?max_concurrency=256&tokenizer=DIR&model=NAME&api_key_file=PATH

`http://` and `https://` mean the same as `openai+http://` and `openai+https://`. An API key is
never part of the address (addresses are recorded in the manifest): it comes from `api_key_file`,
`api_key_env`, or the coordinator's `--auth-token-file`.
"""
from __future__ import annotations

import os
import pathlib
import urllib.parse
from dataclasses import dataclass

DEFAULT_MAX_CONCURRENCY = 256
# what an endpoint's info says about its ids (harness.run.validity reads them for the division)
KEY_OUTPUT_IDS = "identity.output_ids"    # "server": the endpoint's own ids; "retokenized": counted here
ARG_PROMPT = "prompt"                      # engine_args: "ids" or "text"
PROMPT_MODES = ("auto", "ids", "text")
SECRET_KEYS = ("api_key", "key", "token")
KNOWN_KEYS = {"max_concurrency", "tokenizer", "model", "prompt", "api_key_file", "api_key_env", "connect_timeout",
              "heartbeat_timeout"}


class EndpointError(ValueError):
    """A malformed endpoint address or option (one line, naming the address and the option)."""


@dataclass(frozen=True)
class EndpointOptions:
    address: str            # as given: the worker's name in the manifest and in messages
    base_url: str           # http(s)://host:port/prefix, without a trailing slash
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    tokenizer: str | None = None
    model: str | None = None
    prompt: str = "auto"
    api_key_file: str | None = None
    api_key_env: str | None = None
    connect_timeout_s: float = 5.0
    heartbeat_timeout_s: float = 30.0  # /models unanswered this long: the endpoint is down

    def api_key(self, fallback: str | None = None) -> str | None:
        """Read at connect time (a rotated key file is picked up on reconnect); never stored in info."""
        if self.api_key_file:
            try:
                key = pathlib.Path(self.api_key_file).read_text().strip()
            except OSError as exc:
                raise EndpointError(f"{self.address}: api_key_file {self.api_key_file}: {exc.strerror or exc}") from None
            if not key:
                raise EndpointError(f"{self.address}: api_key_file {self.api_key_file} is empty")
            return key
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise EndpointError(f"{self.address}: api_key_env {self.api_key_env} is not set or empty")
            return key
        return fallback


def redacted(address: str) -> str:
    """The address as messages may show it: no user or password, no value of a key-like option."""
    url = urllib.parse.urlsplit(address)
    netloc = url.netloc.rpartition("@")[2] if "@" in url.netloc else url.netloc
    query = "&".join(f"{k}=***" if k in SECRET_KEYS else f"{k}={v}"
                     for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((url.scheme, ("***@" if "@" in url.netloc else "") + netloc, url.path, query,
                                    url.fragment))


def parse_endpoint(address: str) -> EndpointOptions:
    url = urllib.parse.urlsplit(address)
    if url.username or url.password or any(k in url.query for k in SECRET_KEYS):
        address = redacted(address)
    scheme = url.scheme.lower().removeprefix("openai+")
    if scheme not in ("http", "https"):
        raise EndpointError(f"{address}: scheme {url.scheme!r} is not http, https, openai+http or openai+https")
    if url.username or url.password:
        raise EndpointError(f"{address}: no user or key in the address (it is recorded in the manifest); "
                            f"use api_key_file=PATH or api_key_env=NAME")
    if not url.hostname:
        raise EndpointError(f"{address}: no host")
    try:
        port = url.port
    except ValueError:
        raise EndpointError(f"{address}: the port is not a number in 0..65535") from None
    if url.fragment:
        raise EndpointError(f"{address}: a '#' fragment means nothing here")
    try:
        pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
    except ValueError:
        raise EndpointError(f"{address}: the options after '?' are not KEY=VALUE&...") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in SECRET_KEYS:
            raise EndpointError(f"{address}: option {key}: never put a key in the address (it is recorded in the "
                                f"manifest); use api_key_file=PATH or api_key_env=NAME")
        if key not in KNOWN_KEYS:
            raise EndpointError(f"{address}: unknown option {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})")
        if key in options:
            raise EndpointError(f"{address}: option {key} is given twice")
        options[key] = value
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    base = f"{scheme}://{host}{f':{port}' if port else ''}{url.path.rstrip('/')}"
    kwargs: dict = {}
    if "max_concurrency" in options:
        text = options["max_concurrency"]
        if not text.isdigit() or not 1 <= int(text) <= 100000:
            raise EndpointError(f"{address}: option max_concurrency={text!r} is not a number in 1..100000")
        kwargs["max_concurrency"] = int(text)
    for key in ("connect_timeout", "heartbeat_timeout"):
        if key in options:
            try:
                seconds = float(options[key])
            except ValueError:
                seconds = -1.0
            if not 0 < seconds <= 600:
                raise EndpointError(f"{address}: option {key}={options[key]!r} is not seconds in (0, 600]")
            kwargs[f"{key}_s"] = seconds
    if options.get("prompt", "auto") not in PROMPT_MODES:
        raise EndpointError(f"{address}: option prompt={options['prompt']!r} is not one of {', '.join(PROMPT_MODES)}")
    for key in ("tokenizer", "model", "prompt", "api_key_file", "api_key_env"):
        if key in options:
            if not options[key]:
                raise EndpointError(f"{address}: option {key} is empty")
            kwargs[key] = options[key]
    if "api_key_file" in kwargs and "api_key_env" in kwargs:
        raise EndpointError(f"{address}: give api_key_file or api_key_env, not both")
    if "tokenizer" in kwargs and not pathlib.Path(kwargs["tokenizer"]).is_dir():
        raise EndpointError(f"{address}: option tokenizer={kwargs['tokenizer']}: not a directory")
    if kwargs.get("prompt") == "text" and "tokenizer" not in kwargs:
        raise EndpointError(f"{address}: option prompt=text needs tokenizer=DIR (the prompt's ids become text)")
    return EndpointOptions(address=address, base_url=base, **kwargs)
