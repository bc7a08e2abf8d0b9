"""`python -m harness [COMMAND] ...`: one entry point; each command's module owns its flags.

With no command, or a first argument that is a flag, the command is `run`, so
`python -m harness --scenario Offline` runs one LoadGen test as it always has.
"""
from __future__ import annotations

import importlib
import sys

# command -> (module with main(argv) -> exit code, one line of help)
COMMANDS = {
    "run": ("harness.ops.recorded_run", "one LoadGen test, recorded in the history (the default command)"),
    "package": ("harness.submission.package", "build the submission tree from run directories"),
    "check": ("harness.submission.check", "apply the submission checker's rules to a tree"),
    "accuracy": ("harness.submission.accuracy.report", "score an accuracy log against the benchmark's targets"),
    "synthetic": ("harness.run.synthetic", "write a synthetic cnn_eval.json-format dataset"),
    "find-qps": ("harness.tune.find_qps", "the highest VALID Server/Interactive target_qps, on real runs"),
    "tune": ("harness.tune.engine_search", "search engine settings for Offline tokens/s; write a preset"),
    "report": ("harness.ops.report.command", "an HTML report (offline) and markdown summary of run directories"),
    "history": ("harness.ops.history", "list and filter recorded runs; `history import RUN_DIR...` backfills"),
    "schedule": ("harness.ops.schedule", "run a harness command on a cron schedule (crontab, systemd or foreground)"),
    "campaign": ("harness.campaign.command", "from a config file to a checked submission tree; resumable"),
    "cluster": ("harness.deploy.cli", "workers on GPU hosts over SSH (up, status, logs, down); Kubernetes"),
}


def usage() -> str:
    lines = ["usage: python -m harness [COMMAND] [ARGS...]   (COMMAND defaults to run)", "", "commands:"]
    lines += [f"  {name:10s} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines + ["", "python -m harness COMMAND --help lists a command's flags"])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "run")
    command, rest = argv[0], argv[1:]
    if command == "help":
        print(usage())
        return 0
    if command not in COMMANDS:
        print(f"{usage()}\nerror: unknown command {command!r}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[command][0]).main(rest)
