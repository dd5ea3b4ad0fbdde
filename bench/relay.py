"""Relay benchmark for the core: how fast do engine lines become events, and what does a turn cost?

    .venv/bin/python bench/relay.py [--lines 20000] [--turns 200]

1. A fake ``claude`` prints N stream-json text lines as fast as it can → events/s through
   ``Assistant.chat()``.
2. T short turns → overhead per turn = time the caller receives ``completion`` minus the moment
   the engine wrote its final line (p50, p99). Target: p99 < 5 ms.
Loopback/local only; bounded loops.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import golembot  # noqa: E402

FAKE = r'''#!/usr/bin/env python3
import json, os, sys, time
argv = sys.argv[1:]
prompt = argv[argv.index("-p") + 1]
n = int(prompt.split(":", 1)[1]) if prompt.startswith("LINES:") else 1
out = sys.stdout.buffer
line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "chunk of text\n"}]}}).encode() + b"\n"
out.write(json.dumps({"type": "system", "subtype": "init", "session_id": "bench"}).encode() + b"\n")
out.write(line * n)
out.flush()
# The timestamp is taken just before the final line: GolemBot stops the engine (SIGTERM to its
# group) as soon as that line arrives, so nothing after the write is guaranteed to run.
with open(os.environ["BENCH_EXIT_LOG"], "a") as f:
    f.write(f"{time.time()}\n")
out.write(json.dumps({"type": "result", "subtype": "success", "is_error": False, "session_id": "bench", "result": "ok"}).encode() + b"\n")
out.flush()
os._exit(0)
'''


def make_dir():
    root = tempfile.mkdtemp(prefix="golem-bench-")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    path = os.path.join(bindir, "claude")
    with open(path, "w") as f:
        f.write(FAKE)
    os.chmod(path, 0o755)
    bot = os.path.join(root, "bot")
    os.makedirs(bot)
    with open(os.path.join(bot, "golem.yaml"), "w") as f:
        f.write("name: bench\nengine: claude-code\n")
    os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
    os.environ["HOME"] = root
    os.environ["BENCH_EXIT_LOG"] = os.path.join(root, "exit.log")
    return bot, os.environ["BENCH_EXIT_LOG"]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--turns", type=int, default=200)
    args = ap.parse_args()
    bot_dir, exit_log = make_dir()
    bot = golembot.create_assistant(bot_dir)

    t0 = time.perf_counter()
    n_text = sum(1 for e in bot.chat(f"LINES:{args.lines}", session_key="throughput")
                 if e["type"] == "text")
    dt = time.perf_counter() - t0
    print(f"throughput: {n_text} text events in {dt:.3f} s = {n_text / dt:,.0f} events/s "
          f"(incl. process start)")

    overheads, totals = [], []
    for i in range(args.turns):
        start = time.perf_counter()
        for e in bot.chat("hi", session_key=f"t{i}"):
            if e["type"] == "completion":
                got = time.time()
        totals.append((time.perf_counter() - start) * 1000)
        with open(exit_log) as f:
            engine_exit = float(f.read().splitlines()[-1])
        overheads.append((got - engine_exit) * 1000)
    print(f"short turns: {args.turns}, wall per turn p50 {statistics.median(totals):.1f} ms")
    print(f"overhead per turn (completion received - engine exit): "
          f"p50 {pct(overheads, 50):.2f} ms, p99 {pct(overheads, 99):.2f} ms, max {max(overheads):.2f} ms")


if __name__ == "__main__":
    main()
