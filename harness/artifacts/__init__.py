"""What a LoadGen test reads and writes, read back: the dataset (cnn_eval.json) and LoadGen's logs.
Below run/ and submission/, which both use it; it imports nothing else of harness but benchmarks."""
