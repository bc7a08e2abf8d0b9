"""`campaign-state.json` in the output folder: one record per step (status, fingerprint, run directory,
duration, attempts, what it found), written atomically after every change, so a campaign killed at
any point leaves a readable file. A lock (flock, released by the kernel even on SIGKILL) keeps two
campaigns off one output folder."""
from __future__ import annotations

import fcntl
import json
import os
import pathlib
import time

STATE_NAME = "campaign-state.json"
FINISHED = ("passed", "invalid")            # a result exists (INVALID ones are packaged and reported)
STATUSES = FINISHED + ("failed", "interrupted", "blocked", "running")


class StateError(ValueError):
    pass


class CampaignLock:
    def __init__(self, out: pathlib.Path):
        self.path = out / ".campaign.lock"
        self.handle = None

    def __enter__(self) -> "CampaignLock":
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "?"
            self.handle.close()
            raise StateError(f"{self.path.parent}: another campaign (pid {holder}) is running on this output "
                             f"folder; wait for it or choose another output") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


class CampaignState:
    def __init__(self, out: pathlib.Path):
        self.path = out / STATE_NAME
        self.data: dict = {"steps": {}, "history": []}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise StateError(f"{self.path}: not a readable campaign state ({exc}); move it away to start "
                                 f"over") from None
            if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
                raise StateError(f"{self.path}: not a campaign state file (no 'steps' table)")
            self.data = data
        self.resumed = bool(self.data["steps"])
        self.listener = None  # called with a copy of the data after each save (the live status page)

    def step(self, step_id: str) -> dict:
        return self.data["steps"].get(step_id, {})

    def update(self, step_id: str, **fields) -> dict:
        record = self.data["steps"].setdefault(step_id, {})
        record.update(fields)
        self.save()
        return record

    def note(self, text: str) -> None:
        self.data["history"].append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": text})
        self.save()

    def set(self, **fields) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps(self.data, indent=2, default=str)
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        if self.listener is not None:
            self.listener(json.loads(text))
