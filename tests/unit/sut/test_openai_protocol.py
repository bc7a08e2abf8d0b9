"""The OpenAI wire without sockets: endpoint addresses, request bodies, statuses, SSE parsing."""
from __future__ import annotations

import pytest

from harness.run.preflight import PreflightError, parse_workers
from harness.run.validity import result_validity
from sut.engines.base import SamplingParams
from sut.openai_api.options import EndpointError, parse_endpoint
from sut.openai_api.protocol import (DIALECTS, Outcome, SSEReader, StreamError, StreamState, classify_status,
                                     completion_body, error_text)


def test_endpoint_options_are_read_from_the_address(tmp_path):
    options = parse_endpoint(f"openai+https://[::1]:8443/v1/?max_concurrency=64&tokenizer={tmp_path}&model=m"
                             f"&prompt=text&api_key_env=KEY&heartbeat_timeout=9")
    assert options.base_url == "https://[::1]:8443/v1" and options.max_concurrency == 64
    assert options.tokenizer == str(tmp_path) and options.model == "m" and options.prompt == "text"
    assert options.heartbeat_timeout_s == 9.0 and parse_endpoint("http://h/v1").max_concurrency == 256


@pytest.mark.parametrize("address, message", [
    ("http://h:1/v1?max_concurrency=0", "max_concurrency='0' is not a number in 1..100000"),
    ("http://h:1/v1?max_concurrency=2&max_concurrency=3", "option max_concurrency is given twice"),
    ("http://h:1/v1?prompt=tokens", "prompt='tokens' is not one of auto, ids, text"),
    ("http://h:1/v1?tokenizer=/no/such/dir", "tokenizer=/no/such/dir: not a directory"),
    ("http://h:1/v1?heartbeat_timeout=never", "heartbeat_timeout='never' is not seconds"),
    ("http://h:1/v1?api_key_file=a&api_key_env=B", "not both"),
    ("http://h:1/v1?token=sk-123", "token=***: option token: never put a key in the address"),
    ("http://bob:sk-123@h:1/v1", "http://***@h:1/v1: no user or key in the address"),
    ("http://h:1/v1#frag", "fragment"),
    ("http:///v1", "no host"),
])
def test_bad_endpoint_addresses_are_one_line_errors_without_secrets(address, message):
    with pytest.raises(EndpointError) as error:
        parse_endpoint(address)
    assert message in str(error.value) and "sk-123" not in str(error.value) and "\n" not in str(error.value)


def test_api_key_sources(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(EndpointError, match="is empty"):
        parse_endpoint(f"http://h/v1?api_key_file={empty}").api_key()
    with pytest.raises(EndpointError, match="api_key_env UNSET_KEY is not set"):
        parse_endpoint("http://h/v1?api_key_env=UNSET_KEY").api_key()
    monkeypatch.setenv("MY_KEY", "sk-1")
    assert parse_endpoint("http://h/v1?api_key_env=MY_KEY").api_key("fallback") == "sk-1"
    assert parse_endpoint("http://h/v1").api_key("from --auth-token-file") == "from --auth-token-file"


def test_workers_flag_mixes_endpoints_and_grpc_workers():
    assert parse_workers("h:1,openai+http://h:8000/v1") == ["h:1", "openai+http://h:8000/v1"]
    with pytest.raises(PreflightError, match="given twice"):
        parse_workers("http://h:8000/v1,http://h:8000/v1")
    with pytest.raises(PreflightError, match="--workers: grpc://h:1: no link type serves the scheme 'grpc'"):
        parse_workers("grpc://h:1")


def test_request_bodies_per_dialect():
    params = SamplingParams(max_new_tokens=128, min_new_tokens=128, ignore_eos=True)
    vllm = completion_body("m", [1, 2], params, DIALECTS[0])
    assert vllm["prompt"] == [1, 2] and vllm["temperature"] == 0.0 and vllm["min_tokens"] == 128
    assert vllm["ignore_eos"] and vllm["return_token_ids"] and vllm["stream_options"] == {"include_usage": True}
    assert "top_k" not in vllm  # greedy: no top_k needed
    plain = completion_body("m", "text", params, DIALECTS[-1], stream=False)
    assert "min_tokens" not in plain and "stream_options" not in plain and not plain["stream"]


def test_statuses():
    assert [classify_status(s) for s in (500, 502, 429, 408)] == [Outcome.RETRY] * 4
    assert [classify_status(s) for s in (400, 413, 422)] == [Outcome.INVALID] * 3
    assert [classify_status(s) for s in (401, 403, 404, 405)] == [Outcome.ENDPOINT] * 4
    assert error_text(500, b'{"error": {"message": "boom\\n  here"}}') == "HTTP 500: boom here"
    assert error_text(422, b'{"detail": "bad"}') == "HTTP 422: bad"
    assert error_text(502, b"<html>bad gateway</html>") == "HTTP 502: <html>bad gateway</html>"


def test_sse_events_span_lines_and_skip_comments():
    reader = SSEReader()
    lines = [": ping", "", "event: x", "data: {\"a\":", "data: 1}", "", "data:[DONE]\r\n", ""]
    assert [e for e in map(reader.feed, lines) if e is not None] == ['{"a":\n1}', "[DONE]"]
    assert reader.end() is None
    tail = SSEReader()
    tail.feed("data: last")
    assert tail.end() == "last"


@pytest.mark.parametrize("chunks, message", [
    (["not json"], "not JSON"), (["[1]"], "not a JSON object"), (['{"x": 1}'], "no 'choices' list"),
    (['{"choices": [{"index": 1, "text": "a"}]}'], "index 0"),
    (['{"choices": [{"text": 5}]}'], "'text' is not a string"),
    (['{"choices": [{"text": "a", "token_ids": [1, "2"]}]}'], "not a list of integers"),
    (['{"choices": [{"text": "a", "token_ids": [1]}]}', '{"choices": [{"text": "b"}]}'], "in some chunks but not"),
    (['{"error": "overloaded"}'], "mid-stream: overloaded"),
])
def test_malformed_streams(chunks, message):
    state = StreamState()
    with pytest.raises(StreamError, match=message):
        for chunk in chunks:
            state.add(chunk)


def test_a_stream_adds_up():
    state = StreamState()
    assert not state.add('{"choices": [{"index": 0, "text": "", "token_ids": []}]}')  # chunked prefill: nothing yet
    assert state.add('{"choices": [{"index": 0, "text": "", "token_ids": [5, 6]}]}')
    assert state.add('{"choices": [{"index": 0, "text": "", "token_ids": [7], "finish_reason": "length"}]}')
    assert not state.add('{"choices": [], "usage": {"completion_tokens": 3}}')
    assert not state.add("[DONE]")
    assert state.ids == [5, 6, 7] and state.server_ids and state.done and state.completion_tokens == 3
    assert state.finish_reason == "length"


def test_result_validity():
    grpc = {"engine": "vllm", "versions": {}, "engine_args": {}}
    exact = {"engine": "openai-http", "versions": {"identity.output_ids": "server"}, "engine_args": {"prompt": "ids"},
             "address": "http://a/v1"}
    text = {"engine": "openai-http", "versions": {"identity.output_ids": "retokenized"},
            "engine_args": {"prompt": "text"}, "address": "http://b/v1"}
    assert result_validity([grpc, exact])["divisions"] == ["closed", "open"]
    mixed = result_validity([grpc, text])
    assert mixed["divisions"] == ["open"] and not mixed["comparable"] and len(mixed["reasons"]) == 2
    assert all(r.startswith("http://b/v1: ") for r in mixed["reasons"])
