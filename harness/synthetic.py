"""`python -m harness.synthetic`: an alias of `python -m harness synthetic`."""
from harness.run.synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
