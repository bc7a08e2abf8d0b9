"""find-qps's model of latency vs load and run length: headroom h = 1/r (r = the larger of p99/limit
for TTFT and TPOT) falls linearly with the rate to 0 at saturation, as in a queue, and near
saturation the knee of a run of length T is about mu + c/T (an overloaded queue's wait grows
linearly with time). The step rule that narrows the knee, the margin below the best pass that the
confirming run's length needs, and the rate after an INVALID confirming run."""
from __future__ import annotations

from harness.tune.probe import Probe

RETRY_STEP = 0.05  # a confirming run that failed at a small margin: the model was optimistic, step well down


def next_target(upper: float, probes: list[Probe], tolerance: float, start: float = 0.7) -> float | None:
    """The next rate to probe, or None when the bracket is narrow enough (or nothing passes)."""
    passes = [p for p in probes if p.within_limits]
    lo = max(passes, key=lambda p: p.qps) if passes else None
    above = [p for p in probes if not p.within_limits and (lo is None or p.qps > lo.qps)]
    hi = min(above, key=lambda p: p.qps) if above else None
    if lo is None:
        if hi is None:
            return start * upper
        target = 0.5 * hi.qps
        return target if target >= 0.01 * upper else None
    hi_q, hi_h = (hi.qps, 1 / hi.ratio if hi.ratio > 0 else 0.0) if hi else (upper, 0.0)
    span = hi_q - lo.qps
    if span <= tolerance * hi_q:
        return None
    last = probes[-2:]
    if len(last) == 2 and last[0].within_limits == last[1].within_limits:
        return lo.qps + span / 2  # guard (as Illinois' rule): the same side moved twice, bisect
    h_lo = 1 / lo.ratio
    guess = lo.qps + (h_lo - 1) / max(h_lo - hi_h, 1e-9) * span
    return min(max(guess, lo.qps + 0.1 * span), hi_q - 0.1 * span)


def headroom_slope(best: Probe, probes: list[Probe]) -> float | None:
    """Headroom (1/r) lost per qps at one run length, between the best pass and the probe of that
    length nearest to it: near saturation headroom falls faster than further down (on the H200 at
    e8f9495, 1.2/qps between 28.5 and 29.2 qps, 0.31/qps between 20.9 and 28.5), so the local slope
    is the one that places the knee. None without another rate, or when headroom does not fall."""
    others = [p for p in probes if p.ratio and p.qps != best.qps]
    if not best.ratio or not others:
        return None
    near = min(others, key=lambda p: abs(p.qps - best.qps))
    slope = (1 / best.ratio - 1 / near.ratio) / (near.qps - best.qps)
    return slope if slope > 0 else None


def knee_margin(best: Probe, repeat: Probe | None, probes: list[Probe], confirm_ms: int,
                floor: float) -> tuple[float, str]:
    """How far below the best pass the knee of a confirm-length run is expected, from the search's
    model of latency vs load extended to run length. At one length the headroom h = 1/r falls
    linearly with the rate (`headroom_slope`). Near saturation a longer run moves that line down: in
    an overloaded queue the wait grows linearly with time, so the knee of a run of length T is about
    mu + c / T, and the repeat (twice the probe's length) measures the shift c / (2 L); from the
    repeat's length T2 to the confirm's C the knee falls by that shift x (1 - T2 / C).
    margin = 1 - knee / best, at least `floor`, at most 30 %."""
    if repeat is None or not best.ratio or not repeat.ratio:
        return max(floor, 0.05), "no repeat probe: 5 %"
    slope = headroom_slope(best, probes)
    if slope is None:
        return max(floor, 0.05), "no other rate probed at that length, or headroom does not fall with the rate: 5 %"
    h, h_long = 1 / best.ratio, 1 / repeat.ratio
    shift = max(0.0, (h - h_long) / slope)  # rate the knee lost from the probe's length to the repeat's
    knee_long = best.qps + (h_long - 1) / slope
    knee = knee_long - shift * max(0.0, 1 - repeat.duration_ms / confirm_ms)
    margin = min(0.3, max(floor, 1 - knee / best.qps))
    return margin, (f"r {best.ratio:.3f} at {best.qps:.3f} qps for {best.duration_ms / 1000:g} s and {repeat.ratio:.3f} "
                    f"for {repeat.duration_ms / 1000:g} s; headroom slope {slope:.3f}/qps (to the nearest probe): knee "
                    f"{knee_long:.3f} qps at {repeat.duration_ms / 1000:g} s, {shift:.3f} lower than at "
                    f"{best.duration_ms / 1000:g} s, so {knee:.3f} at the confirm's {confirm_ms / 1000:g} s; "
                    f"floor {100 * floor:.0f} %")


def retry_rate(failed: Probe, margin: float, slope: float | None, floor: float) -> tuple[float, str]:
    """The next confirming rate after `failed` was INVALID: RETRY_STEP lower, or lower still where the
    headroom slope through the failed run's r puts the knee (less `floor`); without a slope, the
    margin again (at least RETRY_STEP). The slope is the probes' until two confirming runs have
    failed; then the one between them, measured at the confirm's own length, replaces it."""
    if slope and failed.ratio > 1:
        step = failed.qps * (1 - RETRY_STEP)
        knee = failed.qps + (1 / failed.ratio - 1) / slope
        if knee * (1 - floor) < step:
            return round(max(knee * (1 - floor), 0.5 * failed.qps), 3), (
                f"r {failed.ratio:.3f} at {failed.qps:.3f} qps; the headroom slope {slope:.3f}/qps puts the knee at "
                f"{knee:.3f}, less {100 * floor:.0f} %")
    if slope:  # the slope puts the knee no lower, or r is within the limits (INVALID by early stopping, errors)
        return round(failed.qps * (1 - RETRY_STEP), 3), f"{100 * RETRY_STEP:.0f} % below {failed.qps:.3f} qps"
    cut = max(margin, RETRY_STEP)
    return round(failed.qps * (1 - cut), 3), f"{100 * cut:.1f} % below {failed.qps:.3f} qps"
