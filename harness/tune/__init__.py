"""Automatic search on real LoadGen runs: `find-qps` (highest valid Server/Interactive target_qps)
and `tune` (engine settings for Offline tokens/s, written as a preset). See DESIGN.md."""
