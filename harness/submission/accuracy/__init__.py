"""ROUGE accuracy of an MLPerf llama3.1-8b accuracy log, as MLCommons' evaluation script computes it."""
