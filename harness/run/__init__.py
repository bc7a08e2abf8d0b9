"""One LoadGen test: inputs, workers, the SUT, the verdict, the run directory. See DESIGN.md."""
