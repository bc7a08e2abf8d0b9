# The GPU worker: vLLM's own image (CUDA, torch, vLLM) plus this repository's `sut` package.
# Build from the repository root:  docker build -f deploy/docker/worker.Dockerfile -t mlperf-harness-worker .
ARG VLLM_IMAGE=vllm/vllm-openai:v0.26.0
# grpc_health_probe: the standard gRPC health check client, for the readiness probe when workers serve TLS
FROM ghcr.io/grpc-ecosystem/grpc-health-probe:v0.4.40 AS probe
FROM ${VLLM_IMAGE}
COPY --from=probe /ko-app/grpc-health-probe /usr/local/bin/grpc_health_probe
WORKDIR /opt/mlperf-harness
COPY setup.py README.md ./
COPY harness ./harness
COPY sut ./sut
# vLLM, torch and CUDA come with the base image: install the harness without touching them
RUN python3 -m pip install --no-cache-dir --no-deps . \
 && python3 -m pip install --no-cache-dir "grpcio>=1.84.0,<2" "grpcio-health-checking>=1.84.0,<2" \
        "protobuf>=7.35.1,<8" "rich>=13,<16" "pydantic==2.13.4" "asyncssh==2.24.1" "PyYAML==6.0.3"
# the vLLM image's entrypoint serves OpenAI's API; the StatefulSet sets the command, this is the default
ENTRYPOINT []
CMD ["python3", "-m", "sut.worker", "--help"]
