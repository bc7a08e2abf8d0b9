"""The state file of a search (`find-qps.json`, `tune.json`): written after every probe (atomically),
read back by a re-run with the same output folder, which replays finished probes instead of running
them again. A search is deterministic given its probes' results, so a replay asks for the same probes
in the same order."""
from __future__ import annotations

import json
import os
import pathlib

from harness.tune.probe import Probe


class StateError(ValueError):
    pass


class State:
    def __init__(self, path: pathlib.Path, settings: dict):
        self.path = path
        self.data = {"settings": settings, "probes": [], "result": None}
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except ValueError as exc:
                raise StateError(f"{path}: not a readable state file ({exc}); move it away to start over") from None
            changed = [k for k, v in settings.items() if old.get("settings", {}).get(k) != v]
            if changed:
                raise StateError(f"{path} was made with other settings ({', '.join(sorted(changed))}); use another "
                                 f"--output or the same flags to resume")
            self.data["probes"] = old.get("probes", [])
        self.resumed = len(self.data["probes"])
        self.replayed = 0
        self._asked: dict[str, int] = {}

    @staticmethod
    def key(probe: Probe) -> str:
        config = json.dumps(probe.config, sort_keys=True) if probe.config else ""
        return f"{probe.kind}|{probe.qps:.4f}|{probe.duration_ms}|{config}"

    def replay(self, probe: Probe) -> Probe | None:
        """The stored result of this probe if an earlier run finished it (the n-th time it is asked
        for in this run matches the n-th stored one), else None."""
        key = self.key(probe)
        occurrence = self._asked.get(key, 0)
        self._asked[key] = occurrence + 1
        hits = [p for p in self.data["probes"] if p.get("key") == key]
        if occurrence < len(hits):
            self.replayed += 1
            return Probe.from_dict(hits[occurrence])
        return None

    def record(self, probe: Probe) -> None:
        self.data["probes"].append(dict(probe.to_dict(), key=self.key(probe)))
        self.save()

    def probes(self) -> list[Probe]:
        return [Probe.from_dict(p) for p in self.data["probes"]]

    def set(self, **values) -> None:
        self.data.update(values)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)
