#!/usr/bin/env python3
"""Load on `tinygpt serve`: decode throughput with 1 and with N concurrent streaming clients,
and the time to first token of a prompt that fills the context, side by side in one run.

    tinygpt serve --run runs/shakespeare-modern --port 8080 &
    python3 bench/serve_load.py --url http://127.0.0.1:8080 [--clients 16] [--tokens 256]

Every client streams a greedy completion of `--tokens` tokens (one token per text chunk for a
character model; `usage` counts them exactly). Rounds alternate 1 client and N clients, and
the figure for each is the median over rounds. Time to first token: `--ttft-runs` requests,
one at a time, of a prompt of `--prompt-tokens` characters and max_tokens 1, from sending the
request to the first text chunk; the median is reported. Uses only the standard library.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

PROSE = ("ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet "
         "is the sun. Arise, fair sun, and kill the envious moon, who is already sick and pale. ")


def stream(host, port, body):
    """Streams one completion; returns (seconds to the first text chunk, completion tokens)."""
    connection = http.client.HTTPConnection(host, port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status}: {response.read()[:300]!r}")
    # The client must not be what is measured (it shares the machine): it parses only the
    # usage chunk, and looks for the first text without parsing.
    first, tokens = None, 0
    for line in response:
        if first is None and b'"text":"' in line and b'"text":""' not in line:
            first = time.perf_counter() - started
        if b'"usage"' in line:
            tokens = json.loads(line.strip()[6:])["usage"]["completion_tokens"]
    connection.close()
    return first, tokens


def throughput(host, port, clients, tokens):
    """Total generated tokens per second of `clients` streaming at once."""
    results = [None] * clients

    def client(i):
        body = {"prompt": PROSE[i % 40:i % 40 + 8], "max_tokens": tokens, "temperature": 0,
                "stream": True, "stream_options": {"include_usage": True}}
        results[i] = stream(host, port, body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return sum(r[1] for r in results) / wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--ttft-runs", type=int, default=50)
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    host, port = url.hostname, url.port or 80

    stream(host, port, {"prompt": "A", "max_tokens": 8, "stream": True})  # warm up
    one, many = [], []
    for _ in range(args.rounds):
        one.append(throughput(host, port, 1, args.tokens))
        many.append(throughput(host, port, args.clients, args.tokens))
    prompt = (PROSE * 4)[:args.prompt_tokens]
    ttft = [stream(host, port, {"prompt": prompt, "max_tokens": 1, "temperature": 0, "stream": True})[0]
            for _ in range(args.ttft_runs)]
    result = {
        "one_client_tok_s": statistics.median(one),
        "clients": args.clients,
        "many_clients_tok_s": statistics.median(many),
        "ratio": statistics.median(many) / statistics.median(one),
        "rounds": {"one": one, "many": many},
        "ttft_ms_median": 1000 * statistics.median(ttft),
        "ttft_ms_p90": 1000 * sorted(ttft)[int(0.9 * len(ttft)) - 1],
        "prompt_tokens": args.prompt_tokens,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
