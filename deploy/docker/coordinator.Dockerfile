# The coordinator: LoadGen, the harness and its dispatcher; no GPU, no torch.
# Build from the repository root:  docker build -f deploy/docker/coordinator.Dockerfile -t mlperf-harness-coordinator .
FROM python:3.11-slim
WORKDIR /opt/mlperf-harness
COPY setup.py README.md user.conf mlperf.conf ./
COPY audit ./audit
COPY harness ./harness
COPY sut ./sut
# editable: the harness finds audit/ beside its code; hf + accuracy score AccuracyOnly runs (tokenizer,
# ROUGE); deploy brings dnspython for SRV discovery
RUN pip install --no-cache-dir -e ".[hf,accuracy,deploy]"
RUN useradd --create-home --uid 1000 mlperf
USER mlperf
ENTRYPOINT []
CMD ["python", "-m", "harness", "help"]
