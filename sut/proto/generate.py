"""Regenerate the gRPC modules from backend.proto: python -m sut.proto.generate [OUT_DIR].

Pinned grpcio-tools (setup.py) makes the output reproducible; tests/test_proto.py checks that
the committed modules equal a fresh generation.
"""
import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def generate(out_dir: pathlib.Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{ROOT}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
            str(HERE.relative_to(ROOT) / "backend.proto")]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on sut/proto/backend.proto")


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
