"""A small OpenAI-compatible chat-completions server over any cj2 sampler.

``serve_openai(sampler)`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` from a thread, so a
local model (the ``hf`` backend) can stand in for a remote generator: the ``openai`` backend's tests use
it, and it lets several processes share one loaded model. Requests are answered one at a time (the
sampler is not assumed thread-safe). Fields understood: ``messages``, ``n``, ``max_tokens`` (or
``max_completion_tokens``), ``temperature`` (default 1.0, as in OpenAI's API), ``top_p``, ``top_k``,
``stop``, ``seed`` (default: a random one). It is a development server: plain HTTP, no TLS; bind it to
127.0.0.1 unless the network is trusted.

Command line::

    python -m cj2.generation.serve --model tiny --port 8000 [--api-key-env MY_KEY]
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cj2.generation.base import Sampler, SamplingParams

log = logging.getLogger(__name__)

_MAX_BODY_BYTES = 32 * 1024 * 1024


class _BadRequest(ValueError):
    pass


def _params_from_request(body: dict[str, Any]) -> tuple[list[dict[str, str]], int, SamplingParams]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list")
    n = body.get("n", 1)
    if not isinstance(n, int) or n < 1:
        raise _BadRequest("'n' must be an integer >= 1")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 256))
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    seed = body.get("seed")
    if seed is None:
        seed = random.randrange(2**31 - 1)
    try:
        params = SamplingParams(
            max_new_tokens=max_tokens,
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            top_k=max(int(body.get("top_k", 0) or 0), 0),
            stop=tuple(stop),
            seed=int(seed),
        )
    except (TypeError, ValueError) as err:
        raise _BadRequest(str(err)) from None
    return messages, n, params


def _make_handler(sampler: Sampler, model_name: str, lock: threading.Lock, api_key: str | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
            log.debug("serve_openai: " + format, *args)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def _authorised(self) -> bool:
            if api_key is None:
                return True
            given = self.headers.get("Authorization", "")
            # Constant-time comparison; the key is never echoed.
            return hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not self._authorised():
                self._error(401, "invalid or missing API key", "authentication_error")
            elif self.path.rstrip("/") == "/v1/models":
                self._send(
                    200,
                    {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "cj2"}]},
                )
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY_BYTES:
                self._error(413, "request body too large")
                return
            raw = self.rfile.read(length)
            if not self._authorised():
                self._error(401, "invalid or missing API key", "authentication_error")
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw.decode("utf-8"))
                if not isinstance(body, dict):
                    raise _BadRequest("the body must be a JSON object")
                messages, n, params = _params_from_request(body)
                with lock:
                    samples = sampler.generate([messages], n, params)[0]
                    count = getattr(sampler, "count_prompt_tokens", None)
                    prompt_tokens = int(count(messages)) if callable(count) else 0
            except (_BadRequest, json.JSONDecodeError, UnicodeDecodeError) as err:
                self._error(400, str(err))
                return
            except ValueError as err:  # the sampler rejected the prompt (e.g. a malformed message)
                self._error(400, str(err))
                return
            except Exception as err:  # noqa: BLE001 - report, keep serving
                log.exception("serve_openai: generation failed")
                self._error(500, f"{type(err).__name__}: {err}", "server_error")
                return
            completion_tokens = sum(s.n_tokens for s in samples)
            self._send(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model") or model_name,
                    "choices": [
                        {
                            "index": s.sample_index,
                            "message": {"role": "assistant", "content": s.text},
                            "finish_reason": "length" if s.finish_reason == "length" else "stop",
                        }
                        for s in samples
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

    return Handler


def serve_openai(
    sampler: Sampler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    model_name: str = "cj2",
    api_key: str | None = None,
) -> tuple[ThreadingHTTPServer, threading.Thread, str]:
    """Serve ``sampler`` over HTTP in a daemon thread; return ``(server, thread, base_url)``.

    ``port=0`` picks a free port; ``base_url`` is ``http://host:port/v1`` (what the ``openai`` backend and
    the OpenAI SDK take). ``api_key``, if given, is required as ``Authorization: Bearer <key>``. Stop the
    server with ``server.shutdown(); server.server_close()``.
    """
    lock = threading.Lock()
    server = ThreadingHTTPServer((host, port), _make_handler(sampler, model_name, lock, api_key))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="cj2-serve-openai", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}/v1"
    log.info("serve_openai: serving %r at %s", model_name, url)
    return server, thread, url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a local model over an OpenAI-compatible API.")
    parser.add_argument("--model", default="smollm2_135m", help="cj2 model name, HF id or local folder")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--api-key-env",
        default=None,
        help="name of an environment variable holding the key clients must send",
    )
    args = parser.parse_args(argv)
    from cj2.generation.hf import HFSampler
    from cj2.models import load_model, load_tokenizer

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"environment variable {args.api_key_env} is not set")
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, dtype=args.dtype, tokenizer=tokenizer)
    sampler = HFSampler(model, tokenizer, batch_size=args.batch_size)
    server, thread, url = serve_openai(sampler, args.host, args.port, model_name=args.model, api_key=api_key)
    print(f"serving {args.model} at {url} (Ctrl-C stops)", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
