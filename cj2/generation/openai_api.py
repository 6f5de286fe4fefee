"""``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint, over plain ``urllib``.

For a generator served elsewhere (vLLM's or SGLang's OpenAI server, a hosted API): arXiv 2507.09104
draws its candidate judgments from Qwen2.5-72B-Instruct (Sec. 3.1-3.2), which usually runs as a server.

* The API key is read from the environment variable *named* by ``api_key_env`` at each request. It is
  never stored on the object, logged, put in an error message or in ``repr``; any echo of it in a
  server's error text is replaced by ``***``.
* Prompts are sent concurrently, at most ``max_concurrency`` at a time.
* 408, 409, 429 and 5xx replies, timeouts and dropped connections are retried with exponential backoff
  (``backoff_s * 2**attempt``, capped at ``backoff_max_s``, with jitter; a ``Retry-After`` header wins),
  up to ``max_retries`` times; other errors fail at once.
* One request per prompt asks for ``n`` choices, seeded with the seed of sample 0; if the server
  returns fewer choices (some ignore ``n``), each missing sample ``j`` is asked for alone with its own
  seed :func:`~cj2.generation.base.sample_seed`. A server that honours ``seed`` then gives
  reproducible results.
* ``stop`` strings are sent to the server and applied again locally; ``stop_on_verdict`` can only cut
  the text afterwards (a remote server cannot be told where a verdict ends), so it saves no tokens.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cj2.generation.base import (
    GenerationError,
    Message,
    PromptKey,
    Sample,
    SamplingParams,
    check_request,
    finalize,
    sample_seed,
)

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_ERROR_TEXT_CHARS = 500


def _public_url(url: str) -> str:
    """``url`` without user:password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class OpenAISampler:
    """Sampler over an OpenAI-compatible chat-completions endpoint (see the module docstring).

    ``base_url`` includes the API version, as in the OpenAI SDK (``http://host:8000/v1``); ``model`` is
    the served model's name. ``api_key_env`` is the *name* of the environment variable holding the key
    (``None``: send no key). ``extra_body`` adds fields to every request (e.g. vLLM's
    ``repetition_penalty``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        extra_body: Mapping[str, Any] | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url={_public_url(base_url)!r}: expected an http:// or https:// URL")
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.extra_body = dict(extra_body or {})
        self._warned_missing_key = False

    def __repr__(self) -> str:
        return (
            f"OpenAISampler(base_url={_public_url(self.base_url)!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})"
        )

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    # ---------------------------------------------------------------------------------------------
    def _key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key and not self._warned_missing_key:
            self._warned_missing_key = True
            log.warning(
                "openai sampler: environment variable %s is not set; sending no API key", self.api_key_env
            )
        return key or None

    @staticmethod
    def _redact(text: str, key: str | None) -> str:
        return text.replace(key, "***") if key else text

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.backoff_max_s)
            except ValueError:
                pass  # an HTTP date; fall back to the exponential schedule
        base = min(self.backoff_s * 2**attempt, self.backoff_max_s)
        return base * (1.0 + 0.25 * random.random())

    def _post(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        """POST ``body`` as JSON with retries; return the decoded reply or raise :class:`GenerationError`."""
        url = _public_url(self.url)
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            key = self._key()
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            retry_after = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
            except urllib.error.HTTPError as err:
                status = err.code
                retry_after = err.headers.get("Retry-After") if err.headers is not None else None
                try:
                    detail = err.read()[:_ERROR_TEXT_CHARS].decode("utf-8", "replace")
                except Exception:  # noqa: BLE001 - the body is only a hint for the message
                    detail = ""
                detail = self._redact(detail, key)
                problem = f"HTTP {status}: {detail}".strip()
                if status not in RETRY_STATUS:
                    raise GenerationError(f"{url} ({what}): {problem}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                problem = self._redact(f"{type(err).__name__}: {reason}", key)
            else:
                try:
                    reply = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise GenerationError(f"{url} ({what}): reply is not JSON ({err})") from None
                if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
                    raise GenerationError(f"{url} ({what}): reply has no 'choices' list")
                return reply
            if attempt == self.max_retries:
                raise GenerationError(f"{url} ({what}): {problem}; gave up after {attempt + 1} attempts")
            delay = self._delay(attempt, retry_after)
            log.warning(
                "openai sampler: %s (%s): %s; retry %d/%d in %.2f s",
                url,
                what,
                problem,
                attempt + 1,
                self.max_retries,
                delay,
            )
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _body(self, messages: list[Message], n: int, params: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "n": n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
        }
        if params.top_k > 0:
            body["top_k"] = params.top_k  # not in OpenAI's API; vLLM and SGLang servers accept it
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(self.extra_body)
        return body

    @staticmethod
    def _choices(reply: dict[str, Any], what: str) -> tuple[list[tuple[str, str]], int]:
        """``[(text, raw finish)]`` in choice order, and the tokens per choice."""
        out = []
        choices = sorted(reply["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        for k, choice in enumerate(choices):
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, str):
                raise GenerationError(f"{what}: choice {k} has no message.content string")
            finish = choice.get("finish_reason")
            out.append((content, "length" if finish == "length" else "stop"))
        usage = reply.get("usage") or {}
        completion = usage.get("completion_tokens") if isinstance(usage, dict) else None
        per_choice = int(completion) // max(len(out), 1) if isinstance(completion, int) else 0
        return out, per_choice

    def _one_prompt(
        self, index: int, key: PromptKey, messages: list[Message], n: int, params: SamplingParams
    ) -> list[Sample]:
        seeds = [sample_seed(params.seed, key, j) for j in range(n)]
        what = f"prompt {index}"
        reply = self._post(self._body(messages, n, params, seeds[0]), what)
        got, per_choice = self._choices(reply, what)
        drawn = [(text, raw, per_choice) for text, raw in got[:n]]
        for j in range(len(drawn), n):
            # The server gave fewer than n choices: ask for sample j alone, with its own seed.
            reply = self._post(self._body(messages, 1, params, seeds[j]), f"{what}, sample {j}")
            single, tokens = self._choices(reply, f"{what}, sample {j}")
            if not single:
                raise GenerationError(f"{what}, sample {j}: the server returned no choice")
            drawn.append((single[0][0], single[0][1], tokens))
        samples = []
        for j, (text, raw, tokens) in enumerate(drawn):
            final, finish = finalize(text, raw, params)
            samples.append(
                Sample(
                    text=final,
                    finish_reason=finish,
                    prompt_index=index,
                    sample_index=j,
                    seed=seeds[j],
                    n_tokens=tokens,
                )
            )
        return samples

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
    ) -> list[list[Sample]]:
        keys = check_request(prompts, n, keys)
        if not prompts:
            return []
        executor = ThreadPoolExecutor(
            max_workers=min(self.max_concurrency, len(prompts)), thread_name_prefix="cj2-openai"
        )
        try:
            futures = [
                executor.submit(self._one_prompt, i, key, list(messages), n, params)
                for i, (messages, key) in enumerate(zip(prompts, keys))
            ]
            return [future.result() for future in futures]
        finally:
            # On an error, pending prompts are not sent; running ones finish (threads cannot be killed).
            executor.shutdown(wait=True, cancel_futures=True)
