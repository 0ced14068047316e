"""A small OpenAI-compatible HTTP server, so tests exercise the real OpenAI clients over HTTP.

OpenAI itself is unreachable from the test machine, and mocking the client would hide exactly
the bugs we care about (wrong base URL, missing key, retries, streaming parsing). This server
speaks the wire format of `/v1/models`, `/v1/embeddings`, `/v1/chat/completions` (with vision
content parts) and `/v1/images/generations` and answers deterministically:

* embeddings are a signed hashed bag of lowercase words, L2-normalised, so texts that share
  words are similar and unrelated texts are not;
* chat answers are `ECHO: <start of the last user message>`, so a test can see which prompt
  (question plus retrieved context) reached the model (`--echo-tail`: its end, which holds
  the question, so answers differ per question even where the sources are the same); each
  `image_url` part it sent adds `[image <first 8 hex of the SHA-256 of its bytes> <n> bytes]`;
* image generation draws a 16x16 PNG in a colour derived from the prompt, answered as
  `b64_json` (models named `gpt-image-*`, or `response_format: b64_json`) or as a `url` that
  this server serves under `/files/` without a key, as OpenAI's do.

Every `/v1` request is appended to a JSONL log (`--log`) before it is answered, with the
Authorization value replaced by a presence flag. `--fail-first N` answers the first N `/v1`
requests with 429 (or `--fail-status`: 401, 500, 503), to test client retries and refusals;
`--delay S` answers every `/v1` request S seconds late, to test timeouts.
`--embed-delay-ms N` answers embeddings N ms after they arrive (a remote embedding service's
latency, its own work included; Nagle's algorithm is off, so no delayed ACK adds to it), and
`--storm-rate P --storm-seconds S` answers a fraction P of the `/v1` requests with 429 (with
Retry-After) for S seconds from the first one (a rate-limit storm; every 1/P-th request, so a
run is reproducible). Each log entry carries `in_flight`, the `/v1` requests being answered
when it arrived (itself included), so a test can see a client's concurrency.

For LLM-as-judge tests, `--script FILE` scripts chat replies: a JSON list of rules
`{"contains": text, "reply"?: text, "refusal"?: text, "status"?: code, "delay_ms"?: n,
"times"?: n}`; the first rule whose `contains` occurs in the request's messages (image parts
tagged as above) or image prompt, and that has `times` left, decides the reply text, a refusal,
an injected error status (400 is a content-policy refusal), or a delay (longer than the
client's timeout: a timeout).
`--delay-ms` delays every chat reply; `--logprobs` answers `logprobs: true` requests with a
log-probability of -0.5 per word-piece (so perplexity is e^0.5).

It uses only the standard library so it runs as a plain script
(`python tests/support/openai_server.py --port N`) or as `python -m tests.support.openai_server`.
`running_openai_server()` starts it as a subprocess for the duration of a `with` block.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import math
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

WORD = re.compile(r"[a-z0-9]+")
STREAM_PIECE = re.compile(r"\S+\s*|\s+")
BEARER = re.compile(r"Bearer\s+\S+")
MODELS = ("gpt-4o-mini", "text-embedding-3-small", "text-embedding-3-large")
RETRY_AFTER_MS = "20"
FAULTS = {
    400: (
        "Your request was rejected as a result of our safety system (injected by the test server).",
        "image_generation_user_error",
        "content_policy_violation",
    ),
    401: (
        "Incorrect API key provided (injected by the test server).",
        "invalid_request_error",
        "invalid_api_key",
    ),
    429: ("Rate limit reached (injected by the test server).", "requests", "rate_limit_exceeded"),
    500: ("Internal error (injected by the test server).", "server_error", "internal_error"),
    503: ("Service unavailable (injected by the test server).", "server_error", "overloaded"),
}


@dataclass(frozen=True)
class ServerOptions:
    """Behaviour switches of the server (all reachable from the command line)."""

    dim: int = 64
    log_path: Path | None = None
    fail_first: int = 0
    fail_status: int = 429
    echo_chars: int = 200
    script_path: Path | None = None
    delay_ms: int = 0
    logprobs: bool = False
    #: Seconds every `/v1` request waits before it is answered (a slow server).
    delay: float = 0.0
    echo_tail: bool = False
    embed_delay_ms: int = 0
    storm_rate: float = 0.0
    storm_seconds: float = 0.0


@dataclass
class Reply:
    """A response decided before anything is written, so it can be logged first."""

    status: int
    body: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    #: A non-JSON body (a served image) and its content type.
    raw: bytes | None = None
    content_type: str = "application/json"


class ApiError(Exception):
    """An error answered with OpenAI's `{"error": {...}}` body shape."""

    def __init__(self, status: int, message: str, kind: str, code: str) -> None:
        super().__init__(message)
        self.reply = Reply(status, {"error": {"message": message, "type": kind, "code": code}})


def embed(text: str, dim: int) -> list[float]:
    """Signed feature hashing of lowercase words; an empty text maps to the first unit vector."""
    vector = [0.0] * dim
    for word in WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        return [1.0] + [0.0] * (dim - 1)
    return [value / norm for value in vector]


def encode_embedding(vector: list[float], encoding_format: str) -> list[float] | str:
    """Floats as JSON, or little-endian float32 in base64 (the openai client's default)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def input_texts(raw: Any) -> list[str]:
    """Normalise `input` (string, list of strings, token array or list of token arrays)."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, int) for item in raw):
        return [tokens_text(raw)]
    if isinstance(raw, list) and raw and all(isinstance(item, str | list) for item in raw):
        return [item if isinstance(item, str) else tokens_text(item) for item in raw]
    raise ApiError(
        400, "'input' must be a non-empty string or list.", "invalid_request_error", "invalid_input"
    )


def tokens_text(tokens: list[Any]) -> str:
    """Give token ids word-like features, so identical token arrays embed identically."""
    return " ".join(f"token{token}" for token in tokens)


def word_count(texts: list[str]) -> int:
    """A stand-in for token usage: the number of words."""
    return sum(len(WORD.findall(text.lower())) for text in texts)


def content_text(content: Any) -> str:
    """Text of a chat message `content`: a string or a list of `{"type": "text"}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last `user` message, or "" if there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def usage(prompt: list[str], completion: str) -> dict[str, int]:
    """OpenAI's usage block, counted in words."""
    prompt_tokens, completion_tokens = word_count(prompt), word_count([completion])
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class OpenAICompatibleServer(ThreadingHTTPServer):
    """Holds the options, the request log and the fault budget shared by handler threads."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a concurrent client (the
    # judge's 16 calls in flight) connects faster than the accept loop; the client then retries
    # with back-off and the run degrades to serial.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], options: ServerOptions) -> None:
        super().__init__(address, RequestHandler)
        self.options = options
        self._lock = threading.Lock()
        self._faults_left = options.fail_first
        self._ids = itertools.count(1)
        self._storm_started: float | None = None
        self._storm_requests = 0
        self.in_flight = 0
        #: Generated images answered by URL, by file name.
        self.files: dict[str, bytes] = {}
        self.rules: list[dict[str, Any]] = (
            json.loads(options.script_path.read_text(encoding="utf-8"))
            if options.script_path
            else []
        )

    def take_rule(self, text: str) -> dict[str, Any] | None:
        """The first scripted rule matching `text` that has uses left (consuming one)."""
        with self._lock:
            for rule in self.rules:
                if rule["contains"] in text and rule.get("times", 1) != 0:
                    if "times" in rule:
                        rule["times"] -= 1
                    return rule
        return None

    def take_fault(self) -> bool:
        """True for each of the first `fail_first` requests."""
        with self._lock:
            if self._faults_left <= 0:
                return False
            self._faults_left -= 1
            return True

    def take_storm_fault(self) -> bool:
        """True for every 1/storm_rate-th request within storm_seconds of the first request."""
        with self._lock:
            now = time.monotonic()
            if self._storm_started is None:
                self._storm_started = now
            rate = self.options.storm_rate
            if rate <= 0 or now - self._storm_started > self.options.storm_seconds:
                return False
            n = self._storm_requests
            self._storm_requests += 1
            return math.floor((n + 1) * rate) > math.floor(n * rate)

    def entered(self, change: int) -> int:
        """Count a `/v1` request in (+1) or out (-1); the number in flight after."""
        with self._lock:
            self.in_flight += change
            return self.in_flight

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def record(self, entry: dict[str, Any]) -> None:
        """Append one JSON line and flush, so tests can read it while the server runs."""
        if self.options.log_path is None:
            return
        with self._lock, self.options.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")


class RequestHandler(BaseHTTPRequestHandler):
    """Routes requests; every `/v1` request is logged, then answered."""

    protocol_version = "HTTP/1.1"
    # The headers and the body are two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux), which a latency benchmark would count.
    disable_nagle_algorithm = True
    server: OpenAICompatibleServer

    def do_GET(self) -> None:
        self.handle_request()

    def do_POST(self) -> None:
        self.handle_request()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr lines; the JSONL log is the record."""

    def handle_request(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_reply(Reply(200, {"status": "ok"}))
            return
        if self.command == "GET" and path.startswith("/files/"):
            data = self.server.files.get(path.removeprefix("/files/"))
            found = Reply(200, raw=data, content_type="image/png") if data else None
            self.send_reply(found or Reply(404, {"error": {"message": "no such file"}}))
            return
        body = parse_json(raw)
        in_flight = self.server.entered(+1)
        try:
            time.sleep(self.server.options.delay)
            reply = self.decide(path, body)
        finally:
            self.server.entered(-1)
        entry = self.log_entry(path, body, raw, reply.status)
        self.server.record({**entry, "in_flight": in_flight})
        self.send_reply(reply)

    def decide(self, path: str, body: Any) -> Reply:
        try:
            if self.server.take_fault():
                raise injected_fault(self.server.options.fail_status)
            if self.server.take_storm_fault():
                raise injected_fault(429)
            if not BEARER.fullmatch(self.headers.get("Authorization", "").strip()):
                raise ApiError(
                    401,
                    "Missing or invalid API key (expected 'Bearer <key>').",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            return route(self.command, path, body, self.server)
        except ApiError as error:
            return error.reply

    def log_entry(self, path: str, body: Any, raw: bytes, status: int) -> dict[str, Any]:
        """The JSONL record: the body as JSON (raw text if not JSON, None if empty), the headers
        without Authorization, and only whether Authorization was sent."""
        headers = {
            name.lower(): value
            for name, value in self.headers.items()
            if name.lower() != "authorization"
        }
        return {
            "method": self.command,
            "path": path,
            "authorization": "Authorization" in self.headers,
            "headers": headers,
            "body": body if body is not None or not raw else raw.decode("utf-8", "replace"),
            "status": status,
        }

    def send_reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.events:
            self.send_events(reply.events)
            return
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def send_events(self, events: list[dict[str, Any]]) -> None:
        """Server-sent events in chunked transfer encoding, ending with `data: [DONE]`."""
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in [*(json.dumps(event) for event in events), "[DONE]"]:
            chunk = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def parse_json(raw: bytes) -> Any:
    """The decoded JSON body, or None if it is empty or not JSON."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def injected_fault(status: int) -> ApiError:
    message, kind, code = FAULTS.get(status, FAULTS[500])
    error = ApiError(status, message, kind, code)
    error.reply.headers["retry-after-ms"] = RETRY_AFTER_MS
    return error


def route(method: str, path: str, body: Any, server: OpenAICompatibleServer) -> Reply:
    if (method, path) == ("GET", "/v1/models"):
        return list_models()
    if method == "POST" and path in (
        "/v1/embeddings",
        "/v1/chat/completions",
        "/v1/images/generations",
    ):
        if not isinstance(body, dict):
            raise ApiError(
                400,
                "The request body must be a JSON object.",
                "invalid_request_error",
                "invalid_json",
            )
        if path == "/v1/embeddings":
            return embeddings(body, server.options)
        if path == "/v1/images/generations":
            return image_generation(body, server)
        return chat_completion(body, server, f"chatcmpl-{server.next_id()}")
    raise ApiError(
        404, f"Unknown endpoint {method} {path}.", "invalid_request_error", "unknown_url"
    )


def list_models() -> Reply:
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "test"} for name in MODELS]
    return Reply(200, {"object": "list", "data": data})


def embeddings(body: dict[str, Any], options: ServerOptions) -> Reply:
    """Vectors for `input`, answered `embed_delay_ms` after the request began (the time spent
    computing them counts toward it, as a remote service's latency includes its work)."""
    answer_at = time.monotonic() + options.embed_delay_ms / 1000
    texts = input_texts(body.get("input"))
    dim = int(body.get("dimensions") or options.dim)
    encoding_format = body.get("encoding_format") or "float"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode_embedding(embed(text, dim), encoding_format),
        }
        for index, text in enumerate(texts)
    ]
    tokens = word_count(texts)
    time.sleep(max(0.0, answer_at - time.monotonic()))
    return Reply(
        200,
        {
            "object": "list",
            "data": data,
            "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def scripted(text: str, server: OpenAICompatibleServer) -> dict[str, Any]:
    """Apply the first rule matching `text`: sleep, raise its status, or return it ({} if none)."""
    rule = server.take_rule(text)
    delay_ms = (rule or {}).get("delay_ms", server.options.delay_ms)
    if delay_ms:
        time.sleep(delay_ms / 1000)
    if rule is None:
        return {}
    if rule.get("status", 200) != 200:
        raise injected_fault(rule["status"])
    return rule


def image_parts(messages: list[dict[str, Any]]) -> list[str]:
    """`[image <sha8> <n> bytes]` for each inline (data URL) image the messages carry."""
    found = []
    for message in messages:
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if url.startswith("data:") and "," in url:
                data = base64.b64decode(url.split(",", 1)[1])
                found.append(f"[image {hashlib.sha256(data).hexdigest()[:8]} {len(data)} bytes]")
    return found


def png_bytes(rgb: bytes, size: int = 16) -> bytes:
    """A solid-colour RGB PNG, written with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    rows = b"".join(b"\x00" + rgb * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def image_generation(body: dict[str, Any], server: OpenAICompatibleServer) -> Reply:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "'prompt' is required.", "invalid_request_error", "invalid_prompt")
    scripted(prompt, server)
    image = png_bytes(hashlib.blake2b(prompt.encode(), digest_size=3).digest())
    model = str(body.get("model", ""))
    if model.startswith("gpt-image") or body.get("response_format") == "b64_json":
        item = {"b64_json": base64.b64encode(image).decode("ascii")}
    else:
        name = f"img-{server.next_id()}.png"
        server.files[name] = image
        host, port = server.server_address[:2]
        item = {"url": f"http://{host}:{port}/files/{name}", "revised_prompt": prompt}
    return Reply(200, {"created": int(time.time()), "data": [item]})


def token_logprobs(answer: str) -> dict[str, Any]:
    """OpenAI's `logprobs.content`: one entry per word-piece, each with log-probability -0.5."""
    content = []
    for piece in STREAM_PIECE.findall(answer):
        token = {"token": piece, "logprob": -0.5, "bytes": list(piece.encode())}
        content.append({**token, "top_logprobs": [token]})
    return {"content": content, "refusal": None}


def chat_completion(
    body: dict[str, Any], server: OpenAICompatibleServer, completion_id: str
) -> Reply:
    options = server.options
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ApiError(
            400, "'messages' must be a list.", "invalid_request_error", "invalid_messages"
        )
    texts = [content_text(m.get("content")) for m in messages]
    rule = scripted("\n".join([*texts, *image_parts(messages)]), server)
    answer = rule.get("reply")
    refusal = rule.get("refusal")
    if refusal:
        answer = ""
    elif answer is None:
        text = last_user_text(messages)
        echoed = text[-options.echo_chars :] if options.echo_tail else text[: options.echo_chars]
        answer = " ".join(["ECHO: " + echoed, *image_parts(messages)])
    counted = usage([content_text(message.get("content")) for message in messages], answer)
    base = {"id": completion_id, "created": int(time.time()), "model": body.get("model", "")}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return Reply(200, events=stream_events(base, answer, counted if include_usage else None))
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": answer or None, "refusal": refusal},
        "finish_reason": "stop",
        "logprobs": token_logprobs(answer) if options.logprobs and body.get("logprobs") else None,
    }
    return Reply(200, {**base, "object": "chat.completion", "choices": [choice], "usage": counted})


def stream_events(
    base: dict[str, Any], answer: str, counted: dict[str, int] | None
) -> list[dict[str, Any]]:
    """Chunks in OpenAI's order: role, one chunk per word, finish reason, optional usage."""
    chunk = {**base, "object": "chat.completion.chunk"}

    def choice(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **chunk,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }

    events = [choice({"role": "assistant", "content": ""})]
    events += [choice({"content": piece}) for piece in STREAM_PIECE.findall(answer)]
    events.append(choice({}, "stop"))
    if counted is not None:
        events.append({**chunk, "choices": [], "usage": counted})
    return events


def option_arguments(options: ServerOptions) -> list[str]:
    """The command-line flags that reproduce `options`."""
    arguments = [
        "--dim",
        str(options.dim),
        "--fail-first",
        str(options.fail_first),
        "--fail-status",
        str(options.fail_status),
        "--echo-chars",
        str(options.echo_chars),
        "--delay-ms",
        str(options.delay_ms),
        "--delay",
        str(options.delay),
        "--embed-delay-ms",
        str(options.embed_delay_ms),
        "--storm-rate",
        str(options.storm_rate),
        "--storm-seconds",
        str(options.storm_seconds),
    ]
    if options.script_path is not None:
        arguments += ["--script", str(options.script_path)]
    if options.logprobs:
        arguments.append("--logprobs")
    if options.echo_tail:
        arguments.append("--echo-tail")
    if options.log_path is not None:
        arguments += ["--log", str(options.log_path)]
    return arguments


@contextlib.contextmanager
def running_openai_server(
    *,
    dim: int = 64,
    log_path: Path | None = None,
    fail_first: int = 0,
    fail_status: int = 429,
    echo_chars: int = 200,
    script_path: Path | None = None,
    delay_ms: int = 0,
    logprobs: bool = False,
    delay: float = 0.0,
    echo_tail: bool = False,
    embed_delay_ms: int = 0,
    storm_rate: float = 0.0,
    storm_seconds: float = 0.0,
    startup_timeout: float = 30.0,
) -> Iterator[str]:
    """Run the server as a subprocess on a free port; yield its base URL (`.../v1`)."""
    # Imported here: the module body stays stdlib-only so it also runs as a plain script.
    from tests.support.ports import free_port

    port = free_port()
    options = ServerOptions(
        dim,
        log_path,
        fail_first,
        fail_status,
        echo_chars,
        script_path,
        delay_ms,
        logprobs,
        delay,
        echo_tail,
        embed_delay_ms,
        storm_rate,
        storm_seconds,
    )
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--port",
        str(port),
        *option_arguments(options),
    ]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(process, port, startup_timeout, output)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            stop_process(process)


def wait_until_healthy(
    process: subprocess.Popen[bytes], port: int, timeout: float, output: IO[bytes]
) -> None:
    """Poll `/health` until it answers; fail with the server's output if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"OpenAI test server exited early:\n{output_tail(output)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"OpenAI test server not healthy after {timeout}s:\n{output_tail(output)}")


def output_tail(output: IO[bytes], limit: int = 4000) -> str:
    output.seek(0)
    return output.read().decode("utf-8", "replace")[-limit:]


def stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Terminate, then kill if it does not exit within `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--dim", type=int, default=64, help="default embedding dimension")
    parser.add_argument("--log", type=Path, help="append every /v1 request to this JSONL file")
    parser.add_argument("--fail-first", type=int, default=0, help="fail the first N requests")
    parser.add_argument("--fail-status", type=int, default=429, choices=sorted(FAULTS))
    parser.add_argument(
        "--echo-chars",
        type=int,
        default=200,
        help="how much of the last user message the answer echoes",
    )
    parser.add_argument(
        "--echo-tail", action="store_true", help="echo the end of the message, not its start"
    )
    parser.add_argument("--script", type=Path, help="JSON rules scripting chat replies")
    parser.add_argument("--delay-ms", type=int, default=0, help="delay every chat reply")
    parser.add_argument("--logprobs", action="store_true", help="answer logprobs requests")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds to wait before answering each request"
    )
    parser.add_argument(
        "--embed-delay-ms", type=int, default=0, help="delay every embeddings reply"
    )
    parser.add_argument(
        "--storm-rate", type=float, default=0.0, help="fraction of requests answered with 429"
    )
    parser.add_argument(
        "--storm-seconds",
        type=float,
        default=0.0,
        help="how long the 429 storm lasts, from the first /v1 request",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    options = ServerOptions(
        args.dim,
        args.log,
        args.fail_first,
        args.fail_status,
        args.echo_chars,
        args.script,
        args.delay_ms,
        args.logprobs,
        args.delay,
        args.echo_tail,
        args.embed_delay_ms,
        args.storm_rate,
        args.storm_seconds,
    )
    with OpenAICompatibleServer((args.host, args.port), options) as server:
        print(f"serving on http://{args.host}:{server.server_port}/v1", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
