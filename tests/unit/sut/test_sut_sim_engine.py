"""SimEngine built from its CLI flags: deterministic outputs, lengths, --instant, continuous batching
with --max-seqs, abort, max_model_len, progress. Step times of ~1 ms keep every test fast."""
from __future__ import annotations

import argparse
import asyncio

import pytest

from sut.engines.base import EngineError, SamplingParams
from sut.engines.sim import SimEngine

FAST = ["--step-ms", "1", "--step-ms-per-seq", "0", "--prefill-tps", "1e9"]


def make_engine(*flags: str) -> SimEngine:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sim-model")
    SimEngine.add_arguments(parser)
    return SimEngine.from_args(parser.parse_args([*FAST, *flags]))


async def collect(engine: SimEngine, request_id: str, prompt, params: SamplingParams) -> list[list[int]]:
    return [delta async for delta in engine.generate(request_id, prompt, params)]


def flat(deltas: list[list[int]]) -> list[int]:
    return [t for d in deltas for t in d]


def test_flags_reach_the_engine_and_its_info():
    engine = make_engine("--model", "m", "--max-seqs", "7", "--vocab-size", "500", "--max-model-len", "99",
                         "--speed", "2")
    info = engine.info()
    assert (info.engine, info.model, info.max_concurrency, info.max_model_len, info.vocab_size) == ("sim", "m", 7, 99, 500)
    assert info.simulated is True
    assert info.engine_args["max_seqs"] == "7" and info.engine_args["speed"] == "2.0"


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="--speed"):
        make_engine("--speed", "0")


def test_same_prompt_gives_the_same_output_on_two_engines():
    async def main():
        a, b = make_engine(), make_engine()
        await a.start()
        await b.start()
        params = SamplingParams(max_new_tokens=6)
        out_a = await collect(a, "x", [1, 2, 3], params)
        out_b = await collect(b, "y", [1, 2, 3], params)
        other = await collect(a, "z", [1, 2, 4], params)
        await a.close()
        await b.close()
        return out_a, out_b, other
    out_a, out_b, other = asyncio.run(main())
    assert flat(out_a) == flat(out_b) and len(flat(out_a)) == 6
    assert flat(other) != flat(out_a)
    assert all(0 <= t < 128256 for t in flat(out_a))
    assert out_a[0] == flat(out_a)[:1]  # the first delta is the first token alone


def test_output_length_follows_max_new_tokens_output_tokens_and_min_new_tokens():
    async def main():
        plain, fixed = make_engine(), make_engine("--output-tokens", "3")
        await plain.start()
        await fixed.start()
        lengths = [
            len(flat(await collect(plain, "a", [5, 6], SamplingParams(max_new_tokens=9)))),
            len(flat(await collect(plain, "b", [5, 6], SamplingParams(max_new_tokens=4, min_new_tokens=6)))),
            len(flat(await collect(fixed, "c", [5, 6], SamplingParams(max_new_tokens=9)))),
            len(flat(await collect(fixed, "d", [5, 6], SamplingParams(max_new_tokens=9, min_new_tokens=5)))),
        ]
        await plain.close()
        await fixed.close()
        return lengths
    assert asyncio.run(main()) == [9, 6, 3, 5]


def test_instant_returns_the_whole_output_in_one_delta():
    async def main():
        engine = make_engine("--instant", "--step-ms", "10000")  # the step time would never pass
        await engine.start()
        deltas = await asyncio.wait_for(collect(engine, "a", [9, 9], SamplingParams(max_new_tokens=5)), 1.0)
        await engine.close()
        return engine, deltas
    engine, deltas = asyncio.run(main())
    assert deltas == [engine.output_for([9, 9], SamplingParams(max_new_tokens=5))] and len(deltas[0]) == 5


def test_continuous_batching_admits_a_third_request_only_after_one_finishes():
    async def main():
        engine = make_engine("--max-seqs", "2")
        await engine.start()
        log: list[tuple[str, int]] = []

        async def one(i: int):
            first = True
            async for delta in engine.generate(f"r{i}", [i, i], SamplingParams(max_new_tokens=4)):
                if delta and first:
                    log.append(("start", i))
                    first = False
            log.append(("done", i))

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(4))), 5.0)
        await engine.close()
        return log
    log = asyncio.run(main())
    running, peak = 0, 0
    for kind, _ in log:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2, log
    first_done = min(log.index(("done", 0)), log.index(("done", 1)))
    assert log.index(("start", 2)) > first_done and log.index(("start", 3)) > first_done, log
    assert sorted(i for kind, i in log if kind == "done") == [0, 1, 2, 3]


def test_abort_ends_the_stream_and_frees_the_slot():
    async def main():
        engine = make_engine("--max-seqs", "1")
        await engine.start()
        long_stream = engine.generate("long", [1], SamplingParams(max_new_tokens=100_000))  # ~100 s if run out
        first = await asyncio.wait_for(long_stream.__anext__(), 2.0)
        short = asyncio.create_task(collect(engine, "short", [2], SamplingParams(max_new_tokens=2)))
        await asyncio.sleep(0.02)
        assert not short.done()  # the only slot is taken
        await engine.abort("long")
        rest = [delta async for delta in long_stream]
        short_out = await asyncio.wait_for(short, 3.0)  # aborted seqs leave within 64 steps
        await engine.close()
        return first, rest, short_out
    first, rest, short_out = asyncio.run(main())
    assert len(first) == 1 and rest == []
    assert len(flat(short_out)) == 2


def test_prompt_beyond_max_model_len_raises_engine_error():
    async def main():
        engine = make_engine("--max-model-len", "16")
        await engine.start()
        ok = await collect(engine, "ok", list(range(11)), SamplingParams(max_new_tokens=5))  # 11 + 5 = 16
        with pytest.raises(EngineError, match="max_model_len 16"):
            await collect(engine, "too-long", list(range(12)), SamplingParams(max_new_tokens=5))
        await engine.close()
        return ok
    assert len(flat(asyncio.run(main()))) == 5


def test_progress_rises_while_generating():
    async def main():
        engine = make_engine()
        await engine.start()
        assert engine.progress() == 0
        samples = []
        gen = asyncio.gather(*(collect(engine, f"r{i}", [i], SamplingParams(max_new_tokens=20)) for i in range(2)))
        task = asyncio.ensure_future(gen)
        while not task.done():
            samples.append(engine.progress())
            await asyncio.sleep(0.002)
        await task
        final = engine.progress()
        await engine.close()
        return samples, final
    samples, final = asyncio.run(main())
    assert samples == sorted(samples)
    assert len(set(samples)) > 2  # it rose during the generation, not just at the end
    assert final == 40  # 2 sequences × 20 steps each


@pytest.mark.parametrize("instant", [False, True])
@pytest.mark.parametrize("max_new, min_new", [(0, 0), (0, 1), (-4, 0)])
def test_max_new_tokens_below_one_is_an_engine_error_not_a_hang(instant, max_new, min_new):
    async def main():
        engine = make_engine(*(["--instant"] if instant else []))
        await engine.start()
        try:
            with pytest.raises(EngineError, match="max_new_tokens"):
                await asyncio.wait_for(collect(engine, "x", [1, 2], SamplingParams(max_new_tokens=max_new,
                                                                                   min_new_tokens=min_new)), 1.0)
        finally:
            await engine.close()
    asyncio.run(main())


def test_min_new_tokens_beyond_max_model_len_is_refused_before_building_the_output():
    async def main():
        engine = make_engine("--max-model-len", "100", "--instant")
        await engine.start()
        with pytest.raises(EngineError, match="max_model_len 100"):
            await collect(engine, "x", [1], SamplingParams(max_new_tokens=4, min_new_tokens=10 ** 9))
        await engine.close()
    asyncio.run(main())


def test_fp8_is_modelled_as_faster_and_shown_in_info():
    bf16 = make_engine("--step-ms", "10", "--step-ms-per-seq", "0.5", "--prefill-tps", "1000",
                       "--kv-cache-tokens", "4096")
    fp8 = make_engine("--step-ms", "10", "--step-ms-per-seq", "0.5", "--prefill-tps", "1000",
                      "--kv-cache-tokens", "4096", "--quantization", "fp8", "--kv-cache-dtype", "fp8")
    assert bf16.timing.effective() == bf16.timing
    t = fp8.timing.effective()
    assert t.step_ms < 10 and t.prefill_tps > 1000 and t.step_ms_per_seq < 0.5 and t.kv_cache_tokens == 8192
    assert fp8.timing.step_ms == 10  # the flags stay as given; the step loop uses the effective timing
    assert (fp8.info().engine_args["quantization"], fp8.info().engine_args["kv_cache_dtype"]) == ("fp8", "fp8")
    with pytest.raises(SystemExit):
        make_engine("--quantization", "int4")
