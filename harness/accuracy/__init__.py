"""`python -m harness.accuracy`: an alias of `python -m harness accuracy`."""
