"""An OpenAI-compatible API emulator: chat completions (structured output, tool calls, usage), embeddings
(deterministic vectors of the requested dimension, float or base64), audio transcriptions (multipart),
and the documented errors (401 invalid_api_key, 429 rate_limit_exceeded with Retry-After and
x-ratelimit-* headers, 500/503 server_error).

    python -m emulators.openai --port 8713

Deterministic and scriptable: a test queues replies (text, a JSON object, tool calls, a delay, an error)
with `reply()`/`fail()`; with nothing queued the default rule answers from the context it was given (the
first numbered passage "[1] ..." in the system prompt, else an echo of the customer's last message) and
fills a requested JSON schema; the copilot's tasks (summary, improved or shortened draft, translation, FAQ
pair) have their own rule computed from the request (`task_default`). Control endpoints (JSON):
POST /_emulator/reply, POST /_emulator/errors, POST /_emulator/transcript, GET /_emulator/state.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import secrets
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from emulators.base import EmulatorHandler, EmulatorServer

ERRORS: dict[int, tuple[str, str, str | None]] = {
    401: (
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    429: ("Rate limit reached for requests. Please try again in 50ms.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}
PASSAGE = re.compile(r"^\[1\](?: \([^)\n]*\))? (.+)$", re.MULTILINE)  # our prompts: "[1] (source: Doc) text"


def error_body(status: int, message: str = "", type_: str = "", code: str | None = None) -> dict[str, Any]:
    default = ERRORS.get(status, ("Invalid request", "invalid_request_error", None))
    return {
        "error": {
            "message": message or default[0],
            "type": type_ or default[1],
            "param": None,
            "code": code if code is not None else default[2],
        }
    }


@dataclass
class Reply:
    """One scripted answer. `content` is text or a dict (sent as JSON text); `tool_calls` are (name, args)."""

    content: str | dict[str, Any] | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay_s: float = 0.0
    match: str = ""  # only for a request whose last user message contains this text (empty: any)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def embedding_of(text: str, dimensions: int) -> list[float]:
    """A hashed bag of words, L2-normalised: the same text gives the same vector, shared words make
    vectors close."""
    vector = [0.0] * dimensions
    for word in words(text) or [""]:
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] % 2 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def fill_schema(schema: dict[str, Any], text: str, *, first: list[bool] | None = None) -> Any:
    """A value that satisfies `schema`: the answer text in the first string, defaults elsewhere."""
    first = first if first is not None else [True]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: fill_schema(sub, text, first=first) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind == "string":
        if first[0]:
            first[0] = False
            return text
        return ""
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    return None


def schema_problem(schema: dict[str, Any], path: str = "") -> str:
    """What the real API refuses in a strict schema: objects must list every property as required and
    forbid additional ones."""
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return f"In context={path or '()'}, 'additionalProperties' is required to be supplied and to be false."
        missing = [name for name in props if name not in (schema.get("required") or [])]
        if missing:
            return f"In context={path or '()'}, 'required' is required to include every key; missing '{missing[0]}'."
        for name, sub in props.items():
            found = schema_problem(sub, f"{path}.{name}" if path else name)
            if found:
                return found
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return schema_problem(schema["items"], f"{path}[]")
    return ""


TRANSCRIPT_LINE = re.compile(r"^(Customer|Team|Assistant): (.+)$", re.MULTILINE)
TARGET_LANGUAGE = re.compile(r"Translate [^\n]*? into ([\w-]+)")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip()]


def task_default(name: str, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The default answer to the copilot's structured tasks (by the schema's name), computed from what
    was sent, so the demo and tests get the same answer to the same request: a summary names the customer's
    first question and the team's last answer, an improved draft is tidied, a short one keeps its first
    sentence, a translation is tagged with its target language, and an FAQ pair is the customer's first
    question with the team's last answer. None: not one of these tasks (the general rule answers)."""
    system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    lines = TRANSCRIPT_LINE.findall(last_user)
    if name == "conversation_summary":
        customer = [t for who, t in lines if who == "Customer"]
        team = [t for who, t in lines if who != "Customer"]
        parts = [f"{len(lines)} messages."]
        if customer:
            parts.append(f"The customer asked: {next((t for t in customer if '?' in t), customer[0])}")
        if team:
            parts.append(f"Last answer: {team[-1]}")
        return {"summary": " ".join(parts)}
    if name in ("draft_improved", "draft_shortened"):
        sentences = _sentences(last_user)
        if name == "draft_shortened":
            sentences = sentences[:1]
        text = " ".join(sentences)
        text = text[:1].upper() + text[1:]
        if text and text[-1] not in ".!?":
            text += "."
        return {"text": text}
    if name == "translation":
        found = TARGET_LANGUAGE.search(system)
        return {"text": f"[{found.group(1) if found else '?'}] {last_user.strip()}"}
    if name == "faq_pair":
        question = next((t for who, t in lines if who == "Customer" and "?" in t), "")
        question = question or next((t for who, t in lines if who == "Customer"), "")
        answer = next((t for who, t in reversed(lines) if who == "Team"), "")
        return {"useful": bool(question and answer), "question": question, "answer": answer}
    return None


class OpenAIHandler(EmulatorHandler):
    server: OpenAIEmulator

    def _authorized(self) -> bool:
        keys = self.server.keys
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if keys is None or token in keys:
            return True
        self.send_json(401, error_body(401))
        return False

    def _failure(self) -> bool:
        with self.server.lock:
            status = self.server.failures.popleft() if self.server.failures else None
        if status is None:
            return False
        headers = {"x-request-id": f"req_{secrets.token_hex(8)}"}
        if status == 429:
            wait_ms = self.server.retry_after_ms
            headers.update(
                {
                    "retry-after-ms": str(wait_ms),
                    "retry-after": str(max(1, math.ceil(wait_ms / 1000))),
                    "x-ratelimit-limit-requests": "500",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{wait_ms}ms",
                    "x-ratelimit-limit-tokens": "200000",
                    "x-ratelimit-remaining-tokens": "199000",
                    "x-ratelimit-reset-tokens": "300ms",
                }
            )
        self.send_json(status, error_body(status), headers)
        return True

    def do_GET(self) -> None:
        if self.path_only == "/_emulator/state":
            with self.server.lock:
                state = {"requests": len(self.server.requests), "queued": len(self.server.script)}
            self.send_json(200, state)
        elif self.path_only == "/v1/models":
            if self._authorized():
                self.send_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
        else:
            self.send_json(404, error_body(404, "Not found", "invalid_request_error", "unknown_url"))

    def do_POST(self) -> None:
        path = self.path_only
        if path.startswith("/_emulator/"):
            return self._control(path, json.loads(self.body() or b"{}"))
        if path == "/v1/audio/transcriptions":
            return self._transcription()
        raw = self.body()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self.send_json(400, error_body(400, "We could not parse the JSON body of your request."))
        with self.server.lock:
            self.server.requests.append({"path": path, "json": body})
        if not self._authorized() or self._failure():
            return None
        if path == "/v1/chat/completions":
            return self._chat(body)
        if path == "/v1/embeddings":
            return self._embeddings(body)
        return self.send_json(404, error_body(404, f"Invalid URL (POST {path})", "invalid_request_error", None))

    # --- chat completions ----------------------------------------------------------------------

    def _scripted(self, last_user: str) -> Reply | None:
        with self.server.lock:
            for i, reply in enumerate(self.server.script):
                if not reply.match or reply.match.lower() in last_user.lower():
                    del self.server.script[i]
                    return reply
        return None

    def _chat(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not messages or not body.get("model"):
            return self.send_json(400, error_body(400, "'messages' and 'model' are required properties."))
        response_format = body.get("response_format") or {}
        schema: dict[str, Any] | None = None
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") or {}
            problem = schema_problem(schema) if spec.get("strict") else ""
            if problem:
                return self.send_json(
                    400,
                    error_body(
                        400,
                        f"Invalid schema for response_format '{spec.get('name', '')}': {problem}",
                        "invalid_request_error",
                        "invalid_json_schema",
                    ),
                )
        offered = {t.get("function", {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        after_tool = messages[-1].get("role") == "tool"
        reply = self._scripted(last_user)
        if reply is not None and reply.delay_s:
            time.sleep(reply.delay_s)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if reply is not None and reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{secrets.token_hex(12)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
                }
                for name, args in reply.tool_calls
            ]
            finish = "tool_calls"
        else:
            if reply is not None and reply.content is not None:
                content = reply.content
            else:
                task = task_default(str((response_format.get("json_schema") or {}).get("name") or ""), messages)
                text = self._default_text(messages, last_user, after_tool)
                content = task if task is not None else fill_schema(schema, text) if schema is not None else text
            message["content"] = json.dumps(content, ensure_ascii=False) if isinstance(content, dict) else content
        with self.server.lock:
            self.server.requests[-1]["offered_tools"] = sorted(n for n in offered if n)
        prompt_tokens = sum(len(words(_text_of(m.get("content")))) for m in messages) + 3 * len(messages)
        completion_tokens = max(1, len(words(str(message.get("content") or "")))) + 10 * len(
            message.get("tool_calls") or []
        )
        self.send_json(
            200,
            {
                "id": f"chatcmpl-{secrets.token_hex(12)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_emulator",
            },
            {"x-request-id": f"req_{secrets.token_hex(8)}", "x-ratelimit-remaining-requests": "499"},
        )
        return None

    @staticmethod
    def _default_text(messages: list[dict[str, Any]], last_user: str, after_tool: bool) -> str:
        system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
        found = PASSAGE.search(system)
        if found:
            return found.group(1).strip()
        if after_tool:
            return "Pronto, feito."
        return f"Echo: {last_user}"

    # --- embeddings ----------------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not body.get("model"):
            return self.send_json(400, error_body(400, "'input' and 'model' are required properties."))
        dimensions = int(body.get("dimensions") or self.server.default_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = embedding_of(str(text), dimensions)
            value: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(words(str(t))) for t in inputs)
        self.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
        return None

    # --- transcriptions ------------------------------------------------------------------------

    def _transcription(self) -> None:
        raw = self.body()
        content_type = self.headers.get("Content-Type", "")
        parsed = BytesParser(policy=default_policy).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        fields: dict[str, str] = {}
        audio = b""
        filename = ""
        if parsed.is_multipart():
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition") or ""
                if part.get_filename() is not None or name == "file":
                    filename = part.get_filename() or ""
                    content = part.get_payload(decode=True)
                    audio = content if isinstance(content, bytes) else b""
                else:
                    fields[str(name)] = str(part.get_content()).strip()
        with self.server.lock:
            self.server.requests.append(
                {"path": "/v1/audio/transcriptions", "fields": fields, "filename": filename, "bytes": len(audio)}
            )
        if not self._authorized() or self._failure():
            return None
        if not audio or not fields.get("model"):
            return self.send_json(400, error_body(400, "'file' and 'model' are required properties."))
        with self.server.lock:
            text = self.server.transcripts.popleft() if self.server.transcripts else self.server.default_transcript
        seconds = max(1, len(audio) // 4000)
        if fields.get("response_format") == "text":
            return self.send_bytes(text.encode(), "text/plain; charset=utf-8")
        self.send_json(200, {"text": text, "usage": {"type": "duration", "seconds": seconds}})
        return None

    # --- control -------------------------------------------------------------------------------

    def _control(self, path: str, body: dict[str, Any]) -> None:
        if path == "/_emulator/reply":
            self.server.reply(
                content=body.get("content"),
                tool_calls=[(c["name"], c.get("arguments") or {}) for c in body.get("tool_calls") or []],
                delay_s=float(body.get("delay_s") or 0),
                match=str(body.get("match") or ""),
            )
        elif path == "/_emulator/errors":
            self.server.fail(*[int(s) for s in body.get("statuses") or []])
        elif path == "/_emulator/transcript":
            self.server.transcripts.append(str(body.get("text") or ""))
        else:
            return self.send_json(404, {"error": "unknown control"})
        self.send_json(200, {"ok": True})
        return None


class OpenAIEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        port: int = 0,
        keys: set[str] | None = None,
        retry_after_ms: int = 50,
        default_dimensions: int = 1536,
        default_transcript: str = "Olá, gostaria de saber o horário de funcionamento.",
    ) -> None:
        super().__init__(OpenAIHandler, port)
        self.keys = keys  # None: any key is accepted
        self.retry_after_ms = retry_after_ms
        self.default_dimensions = default_dimensions
        self.default_transcript = default_transcript
        self.script: deque[Reply] = deque()
        self.failures: deque[int] = deque()
        self.transcripts: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def reply(
        self,
        content: str | dict[str, Any] | None = None,
        *,
        tool_calls: list[tuple[str, dict[str, Any]]] | None = None,
        delay_s: float = 0.0,
        match: str = "",
    ) -> None:
        with self.lock:
            self.script.append(Reply(content=content, tool_calls=list(tool_calls or []), delay_s=delay_s, match=match))

    def fail(self, *statuses: int) -> None:
        """The next requests answer these HTTP errors, in order (429, 500, 503, 401...)."""
        with self.lock:
            self.failures.extend(statuses)

    def reset(self) -> None:
        with self.lock:
            self.script.clear()
            self.failures.clear()
            self.transcripts.clear()
            self.requests.clear()

    def chat_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == "/v1/chat/completions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8713)
    args = parser.parse_args()
    emulator = OpenAIEmulator(port=args.port)
    emulator.start()
    print(f"OpenAI-compatible emulator on {emulator.api_base}", flush=True)  # noqa: T201
    threading.Event().wait()


if __name__ == "__main__":
    main()
