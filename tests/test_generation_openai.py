"""The openai backend against local HTTP servers: cj2's own server over the tiny model, and stubs."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from cj2.generation import GenerationError, SamplingParams, build_sampler, sample_seed
from cj2.generation.hf import HFSampler
from cj2.generation.openai_api import OpenAISampler
from cj2.generation.serve import serve_openai
from cj2.models import load_model, load_tokenizer

PROMPTS = [
    [{"role": "user", "content": "Which answer is right, A or B?"}],
    [
        {
            "role": "user",
            "content": "A longer prompt about judging two long essays on the history of tea. " * 3,
        }
    ],
    [{"role": "user", "content": "Third."}],
]
SECRET = "sk-cj2-test-SECRET-0123456789abcdef"


# ------------------------------------------------------------------------------------------------
# cj2's server over the tiny model
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_sampler():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_generation_hf.py
    tokenizer = load_tokenizer("tiny")
    yield HFSampler(load_model("tiny", seed=0, tokenizer=tokenizer), tokenizer, batch_size=8)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_server(hf_sampler):
    server, thread, url = serve_openai(hf_sampler, model_name="tiny", api_key=SECRET)
    yield url
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_openai_backend_serves_the_tiny_model(hf_sampler, tiny_server, monkeypatch):
    monkeypatch.setenv("CJ2_TEST_KEY", SECRET)
    client = OpenAISampler(tiny_server, "tiny", api_key_env="CJ2_TEST_KEY", max_concurrency=2)
    params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=5)
    got = client.generate(PROMPTS, 2, params, keys=["p0", "p1", "p2"])
    assert [[(s.prompt_index, s.sample_index) for s in row] for row in got] == [
        [(i, 0), (i, 1)] for i in range(3)
    ]
    for key, prompt, row in zip(["p0", "p1", "p2"], PROMPTS, got):
        # One request per prompt with n=2, seeded with sample 0's seed; the server derives its samples
        # from that seed exactly as the hf sampler does for a one-prompt call.
        request_seed = sample_seed(5, key, 0)
        direct = hf_sampler.generate([prompt], 2, dataclasses.replace(params, seed=request_seed))[0]
        assert [s.text for s in row] == [s.text for s in direct]
        assert [s.finish_reason for s in row] == ["length", "length"]
        assert [s.seed for s in row] == [sample_seed(5, key, j) for j in range(2)]
        assert all(s.n_tokens == 10 for s in row)


def test_server_applies_stops_and_reports_usage(hf_sampler, tiny_server):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=2)
    text = hf_sampler.generate(PROMPTS[:1], 1, params)[0][0].text
    stop = text.split()[1]
    body = {
        "model": "tiny",
        "messages": PROMPTS[0],
        "max_tokens": 12,
        "temperature": 1.0,
        "seed": 2,
        "stop": stop,
    }
    request = urllib.request.Request(
        tiny_server + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    choice = reply["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": text[: text.index(stop)]}
    assert choice["finish_reason"] == "stop"
    assert reply["usage"]["prompt_tokens"] == hf_sampler.count_prompt_tokens(PROMPTS[0])
    assert 0 < reply["usage"]["completion_tokens"] <= 12


def test_server_rejects_a_wrong_key_without_retrying(tiny_server, monkeypatch, caplog):
    monkeypatch.setenv("CJ2_TEST_KEY", "sk-wrong")
    client = OpenAISampler(tiny_server, "tiny", api_key_env="CJ2_TEST_KEY", backoff_s=0.01)
    with caplog.at_level(logging.WARNING), pytest.raises(GenerationError, match="HTTP 401"):
        client.generate(PROMPTS[:1], 1, SamplingParams(max_new_tokens=2))
    assert "retry" not in caplog.text


# ------------------------------------------------------------------------------------------------
# Stub servers
# ------------------------------------------------------------------------------------------------


class Stub:
    """An HTTP server whose replies a test scripts: ``respond(body, headers, count) -> (status, payload)``."""

    def __init__(self, respond):
        self.respond = respond
        self.requests: list[tuple[dict, dict]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append((body, dict(self.headers)))
                    count = len(stub.requests)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    status, payload = stub.respond(body, dict(self.headers), count)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def make(respond):
        made.append(Stub(respond))
        return made[-1]

    yield make
    for s in made:
        s.close()


def completion(texts, finish="stop", tokens=4):
    return {
        "choices": [
            {"index": k, "message": {"role": "assistant", "content": t}, "finish_reason": finish}
            for k, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": tokens * len(texts)},
    }


def test_retries_429_and_5xx_with_backoff_then_succeeds(stub, caplog):
    def respond(body, headers, count):
        if count == 1:
            return 429, {"error": {"message": "slow down"}}
        if count == 2:
            return 503, {"error": {"message": "overloaded"}}
        return 200, completion(["ok"] * body["n"])

    server = stub(respond)
    client = OpenAISampler(server.url, "m", api_key_env=None, backoff_s=0.01, max_retries=3)
    with caplog.at_level(logging.WARNING):
        got = client.generate(PROMPTS[:1], 2, SamplingParams(seed=1))
    assert [s.text for s in got[0]] == ["ok", "ok"]
    assert len(server.requests) == 3
    assert "HTTP 429" in caplog.text and "HTTP 503" in caplog.text and "retry 2/3" in caplog.text


def test_gives_up_after_max_retries_and_does_not_retry_400(stub):
    failing = stub(lambda body, headers, count: (500, {"error": {"message": "boom"}}))
    client = OpenAISampler(failing.url, "m", api_key_env=None, backoff_s=0.001, max_retries=2)
    with pytest.raises(GenerationError, match="HTTP 500.*gave up after 3 attempts"):
        client.generate(PROMPTS[:1], 1, SamplingParams())
    assert len(failing.requests) == 3
    bad = stub(lambda body, headers, count: (400, {"error": {"message": "bad temperature"}}))
    client = OpenAISampler(bad.url, "m", api_key_env=None, backoff_s=0.001, max_retries=2)
    with pytest.raises(GenerationError, match="HTTP 400.*bad temperature"):
        client.generate(PROMPTS[:1], 1, SamplingParams())
    assert len(bad.requests) == 1


def test_timeouts_are_retried(stub):
    def respond(body, headers, count):
        if count == 1:
            time.sleep(0.6)
        return 200, completion(["late"])

    server = stub(respond)
    client = OpenAISampler(server.url, "m", api_key_env=None, timeout_s=0.2, backoff_s=0.01, max_retries=2)
    got = client.generate(PROMPTS[:1], 1, SamplingParams())
    assert got[0][0].text == "late"
    assert len(server.requests) == 2


def test_request_fields_and_fallback_when_the_server_ignores_n(stub):
    server = stub(lambda body, headers, count: (200, completion([f"seed {body['seed']}"], finish="length")))
    client = OpenAISampler(server.url, "m", api_key_env=None)
    params = SamplingParams(max_new_tokens=7, temperature=0.7, top_p=0.9, top_k=20, stop=("END",), seed=3)
    got = client.generate(PROMPTS[:1], 3, params, keys=["item-1"])[0]
    seeds = [sample_seed(3, "item-1", j) for j in range(3)]
    assert [s.text for s in got] == [f"seed {s}" for s in seeds]
    assert [s.seed for s in got] == seeds
    assert [s.finish_reason for s in got] == ["length"] * 3
    bodies = [body for body, _ in server.requests]
    assert [(b["n"], b["seed"]) for b in bodies] == [(3, seeds[0]), (1, seeds[1]), (1, seeds[2])]
    assert bodies[0] == {
        "model": "m",
        "messages": PROMPTS[0],
        "n": 3,
        "max_tokens": 7,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": seeds[0],
        "top_k": 20,
        "stop": ["END"],
    }


def test_local_stop_and_token_counts_when_the_server_returns_n(stub):
    server = stub(lambda body, headers, count: (200, completion(["a END b", "c"], tokens=6)))
    client = OpenAISampler(server.url, "m", api_key_env=None)
    got = client.generate(PROMPTS[:1], 2, SamplingParams(stop=("END",)))[0]
    assert [(s.text, s.finish_reason, s.n_tokens) for s in got] == [("a ", "stop", 6), ("c", "stop", 6)]
    assert len(server.requests) == 1


def test_bounded_concurrency_and_prompt_order(stub):
    def respond(body, headers, count):
        time.sleep(0.1)
        return 200, completion([body["messages"][0]["content"][:5]])

    server = stub(respond)
    client = OpenAISampler(server.url, "m", api_key_env=None, max_concurrency=2)
    prompts = [[{"role": "user", "content": f"p{i:03d}-question"}] for i in range(6)]
    got = client.generate(prompts, 1, SamplingParams())
    assert [row[0].text for row in got] == [f"p{i:03d}-" for i in range(6)]
    assert server.max_in_flight == 2


def test_api_key_never_leaks(stub, monkeypatch, caplog):
    monkeypatch.setenv("CJ2_TEST_KEY", SECRET)

    def respond(body, headers, count):
        # A careless server that echoes the credentials it got in its error text.
        return 500, {"error": {"message": f"upstream failed for {headers.get('Authorization')}"}}

    server = stub(respond)
    client = build_sampler(
        {
            "backend": "openai",
            "base_url": server.url,
            "name_or_path": "m",
            "api_key_env": "CJ2_TEST_KEY",
            "backoff_s": 0.001,
            "max_retries": 2,
        }
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(GenerationError) as info:
        client.generate(PROMPTS[:1], 1, SamplingParams())
    # The key was sent ...
    assert all(headers.get("Authorization") == f"Bearer {SECRET}" for _, headers in server.requests)
    # ... and appears nowhere: not in the error, its repr or chain, the logs, or the sampler's repr.
    error = info.value
    assert "***" in str(error)
    for text in (
        str(error),
        repr(error),
        str(error.__cause__),
        str(error.__context__),
        caplog.text,
        repr(client),
        str(vars(client)),
    ):
        assert SECRET not in text
    assert "CJ2_TEST_KEY" in repr(client)


def test_missing_key_variable_warns_once_and_sends_no_key(stub, monkeypatch, caplog):
    monkeypatch.delenv("CJ2_TEST_NO_KEY", raising=False)
    server = stub(lambda body, headers, count: (200, completion(["x"])))
    client = OpenAISampler(server.url, "m", api_key_env="CJ2_TEST_NO_KEY")
    with caplog.at_level(logging.WARNING):
        client.generate(PROMPTS[:2], 1, SamplingParams())
    assert caplog.text.count("CJ2_TEST_NO_KEY is not set") == 1
    assert all("Authorization" not in headers for _, headers in server.requests)


def test_malformed_replies_and_bad_urls(stub):
    server = stub(lambda body, headers, count: (200, b"not json"))
    with pytest.raises(GenerationError, match="not JSON"):
        OpenAISampler(server.url, "m", api_key_env=None).generate(PROMPTS[:1], 1, SamplingParams())
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAISampler("ftp://user:pw@host/v1", "m")
    sampler = OpenAISampler("http://user:pw@127.0.0.1:9/v1", "m", api_key_env=None, max_retries=0)
    assert "pw" not in repr(sampler)
    with pytest.raises(GenerationError) as info:
        sampler.generate(PROMPTS[:1], 1, SamplingParams())
    assert "pw" not in str(info.value) and "gave up after 1 attempts" in str(info.value)
