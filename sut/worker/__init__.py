"""Backend worker process: `python -m sut.worker --engine hf|vllm|sim --model DIR --host H --port P`."""
