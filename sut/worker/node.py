"""The worker's node as Info's `versions` shows it (`node.*` keys), so that two "identical" hosts running
at different speeds can be told apart: GPU model, driver, CUDA, clocks and power from NVML where
there is one (nvidia-ml-py), the CPU model, cores and OS always. Not pinned by the coordinator
(clocks and power change while a worker runs); nothing here is secret.
"""
from __future__ import annotations

import os
import platform

PREFIX = "node."


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _visible_gpu_indices(count: int) -> list[int]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    indices = [int(v) for v in visible.split(",") if v.strip().isdigit()]
    return [i for i in indices if i < count]


def _nvml() -> dict[str, str]:
    try:
        import pynvml
    except ImportError:
        return {"nvml": "absent: nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"nvml": f"absent: {exc} (no NVIDIA driver: a CPU host)"}
    try:
        found = {"nvml": "present", "driver": _text(pynvml.nvmlSystemGetDriverVersion())}
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        found["cuda"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        gpus = _visible_gpu_indices(pynvml.nvmlDeviceGetCount())
        found["gpu_count"] = str(len(gpus))
        for n, index in enumerate(gpus):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            key = "gpu" if n == 0 else f"gpu{n}"
            found[key] = _text(pynvml.nvmlDeviceGetName(handle))
            for name, read in ((f"{key}_sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                               (f"{key}_max_sm_clock_mhz",
                                lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                               (f"{key}_power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000),
                               (f"{key}_power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000),
                               (f"{key}_memory_mib", lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).total >> 20)):
                try:
                    found[name] = f"{read():g}"
                except pynvml.NVMLError:
                    pass  # not every board reports every figure
        return found
    except pynvml.NVMLError as exc:
        return {"nvml": f"error: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def node_fingerprint() -> dict[str, str]:
    found = {"hostname": platform.node(), "os": f"{platform.system()} {platform.release()}",
             "cpu": _cpu_model(), "cpu_count": str(os.cpu_count() or 0), "python": platform.python_version()}
    found.update(_nvml())
    return {PREFIX + key: value for key, value in found.items()}
