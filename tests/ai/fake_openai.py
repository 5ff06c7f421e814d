#!/usr/bin/env python3
"""fake_openai.py: a fake OpenAI Chat Completions server for tests/ai
(standard library only).

Listens on 127.0.0.1 on a free port, prints the port on the first line of
stdout, and exits when its stdin closes (the test ended or died) or on
SIGTERM.

POST <anything>/v1/chat/completions answers like the API, plain JSON or,
when the request says "stream": true, Server-Sent Events (chunked; the
events are written in small pieces so that lines and JSON are split across
reads; a ": keep-alive" comment comes first; "data: [DONE]" ends it). Any
other path gets a 404 with an API error body.

Every request is recorded (path, lower-cased headers, JSON body, arrival
time) under its model name. What a request gets is scripted per model name:
  POST /_script?key=MODEL   body: a JSON list of behaviours; each request
                            for MODEL takes the next one (then the default)
  GET  /_requests?key=MODEL the recorded requests, JSON
A behaviour is an object; every field is optional:
  status        reply status (default 200)
  headers       {name: value} extra reply headers
  error         {message, type, code}: the error body of a non-200 reply
  echo_key      true: the error message quotes the Authorization header
  body          a raw reply body (overrides everything else)
  content       the reply text (default: "echo: " + the user message)
  null_content  true: "content": null
  refusal       a refusal text
  finish_reason default "stop"
  usage         {prompt_tokens, completion_tokens} (default: from lengths)
  model         the reply's model (default: the request's + "-0001")
  delay         seconds to wait before replying
  hang          seconds to wait before replying at all (the client times out)
  split         streaming: write the stream in pieces of this many bytes
                (default 7)
  crlf          streaming: lines end with CRLF
  truncate      streaming: "event" ends the body cleanly in the middle of an
                event; "drop" closes the connection mid-stream; "no_done"
                sends every event but not [DONE]
  error_event   streaming: an error event after the first delta
  plain_stream  streaming requested, but answer one JSON reply
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
RECORDS = []          # dicts, in arrival order
SCRIPTS = {}          # model -> list of behaviours


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, headers=(), ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        key = q.get("key", [None])[0]
        if u.path == "/_requests":
            with LOCK:
                out = [r for r in RECORDS if key is None or r["key"] == key]
            self.reply(200, json.dumps(out))
        else:
            self.reply(404, "{}")

    def do_POST(self):
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if u.path == "/_script":
            key = parse_qs(u.query).get("key", [""])[0]
            with LOCK:
                SCRIPTS.setdefault(key, []).extend(json.loads(raw))
            self.reply(200, "{}")
            return
        try:
            req = json.loads(raw)
        except ValueError:
            req = raw.decode("utf-8", "replace")
        key = req.get("model", "") if isinstance(req, dict) else ""
        with LOCK:
            RECORDS.append({"key": key, "path": u.path, "t": time.time(),
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": req})
            queue = SCRIPTS.get(key) or []
            b = queue.pop(0) if queue else {}
        if not u.path.endswith("/v1/chat/completions"):
            err = {"error": {"message": "Unknown request URL: POST %s" % u.path,
                             "type": "invalid_request_error", "code": "unknown_url"}}
            self.reply(404, json.dumps(err))
            return
        if b.get("hang"):
            time.sleep(b["hang"])
            self.close_connection = True
            return
        if b.get("delay"):
            time.sleep(b["delay"])
        self.answer(req if isinstance(req, dict) else {}, b)

    def answer(self, req, b):
        status = b.get("status", 200)
        headers = list((b.get("headers") or {}).items())
        if "body" in b:
            self.reply(status, b["body"], headers)
            return
        if status != 200:
            err = dict(b.get("error") or {"message": "error %d" % status,
                                           "type": "server_error", "code": None})
            if b.get("echo_key"):
                err["message"] += " (you sent: %s)" % self.headers.get("Authorization", "")
            self.reply(status, json.dumps({"error": err}), headers)
            return
        user = ""
        for m in req.get("messages") or []:
            if m.get("role") == "user":
                user = m.get("content") or ""
        content = b.get("content", "echo: " + user)
        model = b.get("model", str(req.get("model", "")) + "-0001")
        usage = b.get("usage") or {
            "prompt_tokens": sum(len(m.get("content") or "") for m in req.get("messages") or []) // 4 + 1,
            "completion_tokens": len(content) // 4 + 1}
        usage = dict(usage, total_tokens=usage["prompt_tokens"] + usage["completion_tokens"])
        finish = b.get("finish_reason", "stop")
        if req.get("stream") and not b.get("plain_stream"):
            self.stream(req, b, content, model, usage, finish, headers)
            return
        msg = {"role": "assistant", "content": None if b.get("null_content") else content}
        if "refusal" in b:
            msg["refusal"] = b["refusal"]
        out = {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
               "model": model, "choices": [{"index": 0, "message": msg, "logprobs": None,
                                            "finish_reason": finish}],
               "usage": usage}
        self.reply(200, json.dumps(out), headers)

    def stream(self, req, b, content, model, usage, finish, headers):
        nl = "\r\n" if b.get("crlf") else "\n"
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}

        def event(choices, **extra):
            d = dict(base, choices=choices, **extra)
            return "data: " + json.dumps(d) + nl + nl

        events = [": keep-alive" + nl + nl,
                  event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                          "finish_reason": None}])]
        pieces = [content[i:i + 3] for i in range(0, len(content), 3)]
        for i, p in enumerate(pieces):
            events.append(event([{"index": 0, "delta": {"content": p}, "finish_reason": None}]))
            if i == 0 and b.get("error_event"):
                events.append("data: " + json.dumps({"error": {
                    "message": "the server had an error", "type": "server_error"}}) + nl + nl)
        if "refusal" in b:
            events.append(event([{"index": 0, "delta": {"refusal": b["refusal"]},
                                  "finish_reason": None}]))
        events.append(event([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if (req.get("stream_options") or {}).get("include_usage"):
            events.append(event([], usage=usage))
        truncate = b.get("truncate")
        if truncate != "no_done":
            events.append("data: [DONE]" + nl + nl)
        text = "".join(events).encode()
        if truncate in ("event", "drop"):
            cut = text.index(b'"content": "', len(text) // 2)  # inside an event's JSON
            text = text[:cut + 5]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        step = int(b.get("split", 7))
        for i in range(0, len(text), step):
            piece = text[i:i + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if step < 64:
                time.sleep(0.001)
        if truncate == "drop":
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
