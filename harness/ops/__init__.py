"""Operating the benchmark: run records, history store, schedules, alerts (see DESIGN.md)."""
