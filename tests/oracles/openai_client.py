#!/usr/bin/env python3
"""The official `openai` client against `tinygpt serve`: the oracle of tests/serve.rs.

    python3 tests/oracles/openai_client.py BASE_URL [API_KEY] < requests.json > results.json

Reads a JSON list of requests, each {"kind": "completion" | "chat" | "models", "stream": bool,
"args": {...the client's keyword arguments...}}, and with "parallel": N runs the whole list N
at a time on threads (concurrent clients). Writes one result per request, in order: the text
of every choice (streamed chunks joined), the finish reasons, the usage when the server sent
one, the chunk count, or the API error's status and message.
"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import openai


def run(client, request):
    kind, args, stream = request["kind"], request.get("args", {}), request.get("stream", False)
    try:
        if kind == "models":
            return {"ids": [m.id for m in client.models.list().data]}
        call = client.completions.create if kind == "completion" else client.chat.completions.create
        if not stream:
            response = call(**args)
            texts = [c.text if kind == "completion" else c.message.content for c in response.choices]
            return {
                "texts": texts,
                "finish_reasons": [c.finish_reason for c in response.choices],
                "usage": response.usage.model_dump() if response.usage else None,
                "object": response.object,
            }
        n = args.get("n", 1)
        texts, reasons, usage, chunks = [""] * n, [None] * n, None, 0
        for chunk in call(stream=True, **args):
            chunks += 1
            if chunk.usage:
                usage = chunk.usage.model_dump()
            for c in chunk.choices:
                piece = c.text if kind == "completion" else (c.delta.content or "")
                texts[c.index] += piece
                if c.finish_reason:
                    reasons[c.index] = c.finish_reason
            if request.get("stop_after_chunks") and chunks >= request["stop_after_chunks"]:
                break
        return {"texts": texts, "finish_reasons": reasons, "usage": usage, "chunks": chunks}
    except openai.APIStatusError as e:
        return {"status": e.status_code, "message": str(e)}


def main():
    base_url = sys.argv[1]
    key = sys.argv[2] if len(sys.argv) > 2 else "none"
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
    payload = json.load(sys.stdin)
    requests, parallel = payload["requests"], payload.get("parallel", 1)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(lambda r: run(client, r), requests))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
