"""A stand-in for cron's `crontab` command (this host may have no cron): `-l` prints the table, `-`
replaces it. Put its folder first on PATH; FAKE_CRONTAB_FILE names the table."""
from __future__ import annotations

import os
import pathlib
import stat

SCRIPT = """#!/bin/sh
table="$FAKE_CRONTAB_FILE"
case "$1" in
  -l) if [ -f "$table" ]; then cat "$table"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat > "$table" ;;
  *) echo "unsupported: $*" >&2; exit 2 ;;
esac
"""


def fake_crontab_env(folder: pathlib.Path) -> dict[str, str]:
    """The environment changes that make `crontab` the stand-in, its table in folder/table."""
    bin_dir = folder / "fake-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "crontab").write_text(SCRIPT)
    (bin_dir / "crontab").chmod(stat.S_IRWXU)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_CRONTAB_FILE": str(folder / "table")}
