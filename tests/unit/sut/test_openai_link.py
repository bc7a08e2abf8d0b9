"""The OpenAI-compatible link against a scripted server on a real socket: dialect probing, events,
errors that fail one attempt, errors that drop the endpoint, identity, cancel, credit, API key."""
from __future__ import annotations

import asyncio
import time

import pytest

from sut.engines.base import SamplingParams
from sut.links import make_link
from sut.openai_api.link import OpenAILink
from sut.proto import backend_pb2 as pb
from sut.wire import INVALID_REQUEST_PREFIX, pack_tokens, params_to_proto, unpack_tokens
from tests.openai_stub import StubServer

PARAMS = SamplingParams(max_new_tokens=4, min_new_tokens=1, ignore_eos=True)


class Recorder:
    def __init__(self):
        self.events: list[pb.Event] = []
        self.ups = 0
        self.downs: list[str] = []

    def on_ready(self, link):
        self.ups += 1

    def on_down(self, link, reason):
        self.downs.append(reason)

    def on_events(self, link, events):
        self.events.extend(events)

    def kinds(self, request_id):
        return [e.WhichOneof("kind") for e in self.events if e.request_id == request_id]

    def last(self, request_id):
        return [e for e in self.events if e.request_id == request_id][-1]


async def until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def request(request_id, prompt=(5, 6, 7), params=PARAMS):
    return pb.GenerateRequest(request_id=request_id, prompt=pack_tokens(list(prompt)), params=params_to_proto(params))


def with_link(test, address_suffix="", **behavior):
    """Run test(server, link, recorder) with a started stub and a link to it."""
    async def main():
        server = await StubServer(**behavior).start()
        recorder = Recorder()
        link = OpenAILink(server.url + address_suffix, recorder)
        link.start()
        try:
            await test(server, link, recorder)
        finally:
            await link.close()
            await server.stop()
    asyncio.run(main())


def test_stream_gives_first_token_and_the_servers_ids():
    async def test(server, link, rec):
        await until(lambda: link.ready)
        assert link.info["model"] == "stub-model" and link.info["versions"]["identity.output_ids"] == "server"
        assert link.info["versions"]["identity.dialect"] == "ids+vllm" and link.info["max_model_len"] == 4096
        link.send(request(1))
        await until(lambda: "completion" in rec.kinds(1))
        assert rec.kinds(1) == ["first_token", "completion"]
        ids = unpack_tokens(rec.last(1).completion.tokens).tolist()
        assert ids == [(18 + i) % 90 + 10 for i in range(4)]
        assert unpack_tokens(rec.events[0].first_token.tokens).tolist() == ids[:1]
        body = server.requests[-1]
        assert body["prompt"] == [5, 6, 7] and body["stream"] and body["max_tokens"] == 4
        assert body["temperature"] == 0.0 and body["min_tokens"] == 1 and body["ignore_eos"] is True
        assert body["return_token_ids"] is True and body["model"] == "stub-model"
    with_link(test)


def test_without_first_tokens_one_json_answer_per_request():
    async def test(server, link, rec):
        rec.needs_first_token = False  # the dispatcher's flag (Offline)
        await until(lambda: link.ready)
        link.send(request(1))
        await until(lambda: "completion" in rec.kinds(1))
        assert rec.kinds(1) == ["completion"] and server.requests[-1]["stream"] is False
        assert unpack_tokens(rec.last(1).completion.tokens).tolist() == [(18 + i) % 90 + 10 for i in range(4)]
    with_link(test)


def test_make_link_chooses_by_scheme():
    async def main():
        assert isinstance(make_link("openai+http://127.0.0.1:1/v1", Recorder()), OpenAILink)
        assert type(make_link("127.0.0.1:1", Recorder())).__name__ == "WorkerLink"
        with pytest.raises(ValueError, match="no link type serves the scheme 'grpc'"):
            make_link("grpc://127.0.0.1:1", Recorder())
    asyncio.run(main())


def test_server_without_token_id_prompts_needs_a_tokenizer():
    async def test(server, link, rec):
        await until(lambda: link.last_error is not None)
        assert "give tokenizer=DIR" in link.last_error and not link.ready and not link.reached
    with_link(test, accept_ids=False, give_ids=False)


def test_text_endpoint_is_retokenized_with_the_tokenizer(tiny_model):
    async def test(server, link, rec):
        await until(lambda: link.ready, 30)
        assert link.info["versions"]["identity.output_ids"] == "retokenized"
        assert link.info["engine_args"]["prompt"] == "text" and link.info["vocab_size"] > 0
        link.send(request(1))
        await until(lambda: "completion" in rec.kinds(1))
        prompt = server.requests[-1]["prompt"]
        assert prompt == link.tokenizer.decode([5, 6, 7])
        text = "".join(f" t{(len(prompt) + i) % 90 + 10}" for i in range(4))  # what the stub generates
        ids = unpack_tokens(rec.last(1).completion.tokens).tolist()
        assert ids == link.tokenizer.encode(text, add_special_tokens=False)[:4]
    with_link(test, f"?tokenizer={tiny_model}", accept_ids=False, give_ids=False)


@pytest.mark.parametrize("behavior, message, invalid", [
    ({"fault": "malformed"}, "not JSON", False), ({"fault": "error_event"}, "CUDA out of memory", False),
    ({"fault": "cut"}, "without 'data: [DONE]' or a finish_reason", False),
    ({"status": 500}, "HTTP 500", False), ({"status": 503}, "HTTP 503", False), ({"status": 429}, "HTTP 429", False),
    ({"status": 400}, "HTTP 400", True), ({"status": 422}, "HTTP 422", True)])
def test_a_bad_answer_fails_that_attempt_only(behavior, message, invalid):
    async def test(server, link, rec):
        await until(lambda: link.ready)
        server.behavior.update(behavior)
        link.send(request(1))
        await until(lambda: "error" in rec.kinds(1))
        error = rec.last(1).error.message
        assert message in error and error.startswith(INVALID_REQUEST_PREFIX) == invalid
        assert link.ready and not rec.downs
    with_link(test)


def test_a_dropped_connection_takes_the_endpoint_down_and_it_comes_back():
    async def test(server, link, rec):
        await until(lambda: link.ready)
        server.behavior["fault"] = "drop"
        link.send(request(1))
        await until(lambda: rec.downs)
        assert "completion" not in rec.kinds(1)
        server.behavior["fault"] = None
        await until(lambda: link.ready and rec.ups == 2)
        link.send(request(2))
        await until(lambda: "completion" in rec.kinds(2))
    with_link(test)


def test_a_stopped_server_is_noticed_by_the_heartbeat():
    async def test(server, link, rec):
        await until(lambda: link.ready)
        await server.stop()
        await until(lambda: rec.downs, timeout=8)
        assert not link.ready
    with_link(test)


def test_model_must_be_named_among_several_and_must_be_served():
    async def several(server, link, rec):
        await until(lambda: link.last_error is not None)
        assert "lists 2 models (a, b): name one with model=NAME" in link.last_error
    with_link(several, models=["a", "b"])

    async def missing(server, link, rec):
        await until(lambda: link.last_error is not None)
        assert "model 'c' is not served here (served: a, b)" in link.last_error and not link.reached
    with_link(missing, "?model=c", models=["a", "b"])


def test_a_different_model_after_first_contact_drops_the_endpoint():
    async def test(server, link, rec):
        await until(lambda: link.ready)
        server.behavior["models"] = ["impostor"]
        await until(lambda: rec.downs, timeout=8)
        await until(lambda: "'stub-model', served at first contact, is no longer served (now: impostor)" in (link.last_error or ""), timeout=8)
        assert rec.ups == 1
    with_link(test)


def test_cancel_reports_the_tokens_generated():
    async def test(server, link, rec):
        await until(lambda: link.ready)
        server.behavior["token_delay_s"] = 0.2
        link.send(request(1, params=SamplingParams(max_new_tokens=50)))
        await until(lambda: "first_token" in rec.kinds(1))
        link.cancel(1)
        await until(lambda: "cancelled" in rec.kinds(1))
        assert 1 <= rec.last(1).cancelled.generated_tokens < 50
    with_link(test)


def test_at_most_max_concurrency_streams_are_open():
    async def test(server, link, rec):
        await until(lambda: link.ready)
        server.behavior["token_delay_s"] = 0.05
        for rid in range(1, 7):
            link.send(request(rid))
        await until(lambda: all("completion" in rec.kinds(rid) for rid in range(1, 7)))
        assert server.peak_streams == 2 and link.capacity == 2
    with_link(test, "?max_concurrency=2")


def test_api_key_from_a_file_is_sent_and_never_shown(tmp_path):
    key = tmp_path / "key"
    key.write_text("sk-secret-123\n")

    async def test(server, link, rec):
        await until(lambda: link.ready)
        assert server.headers[-1]["authorization"] == "Bearer sk-secret-123"
        assert "sk-secret" not in repr(link.info) and link.info["engine_args"]["api_key"] == "yes"
    with_link(test, f"?api_key_file={key}")


def test_unauthorized_endpoint_is_refused_with_a_hint():
    async def test(server, link, rec):
        await until(lambda: link.last_error is not None)
        assert "HTTP 401" in link.last_error and "check the API key" in link.last_error and not link.reached
    with_link(test, models_status=401)
