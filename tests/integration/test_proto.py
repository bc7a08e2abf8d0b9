"""The committed gRPC modules are exactly what the pinned grpcio-tools makes from backend.proto."""
import pathlib

from sut.proto.generate import generate

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "sut" / "proto"


def test_generated_code_matches_proto(tmp_path):
    generate(tmp_path)
    for name in ("backend_pb2.py", "backend_pb2_grpc.py"):
        fresh = (tmp_path / "sut" / "proto" / name).read_text()
        assert fresh == (PROTO_DIR / name).read_text(), f"{name} is stale: run python -m sut.proto.generate"
