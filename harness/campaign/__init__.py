"""python -m harness campaign: many runs, planned, resumable, packaged and checked."""
