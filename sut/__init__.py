"""System under test: the LoadGen-facing SUT, the dispatcher, the gRPC transport, workers and engines."""

__version__ = "0.1.0"
