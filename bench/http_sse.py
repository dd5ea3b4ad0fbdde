"""HTTP/SSE benchmark: many concurrent ``POST /chat`` streams against the fake ``claude``.

    .venv/bin/python bench/http_sse.py [--waves 50,200] [--rounds 1]

A real ``golembot`` server (``start_server``: gevent, one process) serves a bot whose engine is
``tests/fake_bin/claude``. Each wave opens N streams at once (distinct session keys,
``max_concurrent`` raised to fit) and reads every one to its ``completion``. Printed per wave:

* time to first event (request sent → first ``data:`` frame), p50/p99 — mostly the fake
  engine's start-up (a Python process per turn);
* overhead per turn: the client's receipt of ``completion`` minus the moment the engine had
  written its last line (the server stops reading there and kills the process group, so this
  is the engine's effective end). A small wrapper around the fake (first on PATH) relays the
  fake's stdout line by line and logs ``$EPOCHREALTIME`` after writing the last line, keyed
  by ``GOLEM_SESSION_KEY``. The overhead covers parsing the final line, the completion bookkeeping
  (history line, sessions.json), the relay to the response greenlet and the SSE write — not
  the engine's own run time. (The bash wrapper adds a few ms to time-to-first-event.);
* events/s over the wave (all data frames received / wave wall time);
* server RSS (current and peak) after the wave.

Loopback only, bounded: every wave has a deadline, the server is stopped at the end.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_BIN = os.path.join(ROOT, "tests", "fake_bin")
FIXTURES = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures", "engines"))
TOKEN = "bench-token"
WAVE_DEADLINE_S = 120

# A bash wrapper (cheap next to a second Python start-up) that relays the fake's stdout line by
# line and logs $EPOCHREALTIME after writing the last one. The server kills the engine's process
# group as soon as it has parsed the final line, so the wrapper ignores SIGTERM (after starting
# the fake, which keeps the default) long enough to write its log line. bash's ``read`` takes a
# pipe byte by byte, so the throughput runs (FAKE_LINES) bypass the relay.
WRAPPER = r'''#!/bin/bash
case "$*" in *FAKE_LINES*) exec {fake} "$@";; esac  # throughput runs: no relay in between
exec 3< <(exec {fake} "$@")
trap '' TERM PIPE
last=
while IFS= read -r -u 3 line || [ -n "$line" ]; do
  printf '%s\n' "$line" || break
  last=$EPOCHREALTIME
done
[ -n "$last" ] && printf '%s %s\n' "$last" "$GOLEM_SESSION_KEY" >> "$BENCH_EXIT_LOG"
exit 0
'''


# The server process, instrumented in two places (both append one line per turn):
# * its assistant notes when it yields the completion (end of the core's part);
# * a WSGI middleware (Flask's ``app.wsgi_app``) notes when the server has written the
#   completion frame to the socket (the server asks for the next chunk only after that).
SERVER = r"""
import json, os, sys, time
from golembot.assistant import Assistant
from golembot.server import serving

def note(env, key):
    with open(os.environ[env], "a") as f:
        f.write(f"{time.time()} {key}\n")

class Timed(Assistant):
    def chat(self, message, session_key="default", images=None, files=None):
        for event in super().chat(message, session_key, images, files):
            if event.get("type") == "completion":
                note("BENCH_YIELD_LOG", session_key)
            yield event

def written(wsgi_app):
    def app(environ, start_response):
        body = wsgi_app(environ, start_response)
        def chunks():
            try:
                for chunk in body:
                    yield chunk
                    if chunk.startswith(b'data: {"type":"completion"'):
                        words = json.loads(chunk[6:]).get("finalText", "").split()
                        if words:
                            note("BENCH_WRITE_LOG", words[-1])
            finally:
                getattr(body, "close", lambda: None)()
        return chunks()
    return app

create_app = serving.create_app
def instrumented(*args, **kwargs):
    flask_app = create_app(*args, **kwargs)
    flask_app.wsgi_app = written(flask_app.wsgi_app)
    return flask_app
serving.create_app = instrumented

a = Timed(sys.argv[1], max_concurrent=int(sys.argv[3]), max_queue_per_session=3)
serving.start_server(a, port=int(sys.argv[2]), token=sys.argv[4], hostname="127.0.0.1")
"""


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(max_concurrent: int):
    root = tempfile.mkdtemp(prefix="golem-bench-http-")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    wrapper = os.path.join(bindir, "claude")
    with open(wrapper, "w") as f:
        f.write(WRAPPER.replace("{fake}", shlex.quote(os.path.join(FAKE_BIN, "claude"))))
    os.chmod(wrapper, 0o755)
    bot = os.path.join(root, "bot")
    os.makedirs(bot)
    with open(os.path.join(bot, "golem.yaml"), "w") as f:
        f.write("name: bench\nengine: claude-code\n")
    home = os.path.join(root, "home")
    os.makedirs(home)
    exit_log = os.path.join(root, "exit.log")
    env = dict(os.environ, PATH=bindir + os.pathsep + FAKE_BIN + os.pathsep + os.environ["PATH"],
               HOME=home, BENCH_EXIT_LOG=exit_log, GOLEM_FIXTURES=FIXTURES,
               BENCH_YIELD_LOG=os.path.join(root, "yield.log"),
               BENCH_WRITE_LOG=os.path.join(root, "write.log"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GOLEM_FAKE_LOG", None)
    env.pop("GOLEM_TOKEN", None)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, bot, str(port), str(max_concurrent),
                             TOKEN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)
    return proc, port, root


def one_stream(port: int, key: str, message: str) -> dict:
    """One /chat over a bare socket: timestamps of send, first frame, completion; frame count."""
    body = json.dumps({"message": message, "sessionKey": key}).encode()
    req = (f"POST /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n").encode() + body
    out = {"key": key, "events": 0, "first": None, "completion": None, "status": None}
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        out["sent"] = time.time()
        sock.sendall(req)
        buf = b""
        while out["completion"] is None:
            chunk = sock.recv(262144)
            if not chunk:
                break
            buf += chunk
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            # Complete frames only (the chunked-encoding size lines between them do not matter).
            block, buf = buf[:end + 2], buf[end + 2:]
            frames = block.count(b"data: ")
            if not frames:
                continue
            now = time.time()
            if out["first"] is None:
                out["first"] = now
            out["events"] += frames
            at = block.find(b'data: {"type":"completion"')
            if at >= 0:
                event = json.loads(block[at + 6:block.index(b"\n\n", at)])
                out["completion"] = now
                out["status"] = event.get("status")
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> tuple[int, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class Logs:
    """The wrapper's engine-end log and the server's completion-yield log, read incrementally."""

    def __init__(self, root: str):
        self.paths = {"exit": os.path.join(root, "exit.log"),
                      "yield": os.path.join(root, "yield.log"),
                      "write": os.path.join(root, "write.log")}
        self.offsets = {k: 0 for k in self.paths}

    def read_new(self) -> dict:
        out = {}
        for name, path in self.paths.items():
            out[name] = {}
            if not os.path.exists(path):
                continue
            with open(path) as f:
                f.seek(self.offsets[name])
                for line in f:
                    ts, _, key = line.strip().partition(" ")
                    try:
                        out[name][key] = float(ts)
                    except ValueError:
                        continue  # not a turn of ours (e.g. a throughput reply's last word)
                self.offsets[name] = f.tell()
        return out


def summary(label: str, values: list, unit="ms", digits=2) -> str:
    if not values:
        return f"{label}: no samples"
    return (f"{label}: p50 {pct(values, 50):.{digits}f} {unit}, p99 {pct(values, 99):.{digits}f} "
            f"{unit}, max {max(values):.{digits}f} {unit} (n={len(values)})")


def report(title: str, results: list, n: int, wall: float, logs: Logs, hold=False) -> None:
    complete = [r for r in results if r["completion"] is not None]
    keys = {r["key"] for r in complete}
    marks = logs.read_new()
    deadline = time.monotonic() + 5  # the engine wrapper may log just after the client is done
    while hold is not None and not keys <= set(marks["exit"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        for name, got in logs.read_new().items():
            marks[name].update(got)
    statuses = {}
    for r in complete:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    ttfe = [(r["first"] - r["sent"]) * 1000 for r in complete]
    parts = {"total": [], "core": [], "server": [], "client": []}
    for r in complete:
        end = marks["exit"].get(r["key"])
        yielded = marks["yield"].get(r["key"])
        wrote = marks["write"].get(r["key"])
        if None in (end, yielded, wrote):
            continue
        parts["total"].append((r["completion"] - end) * 1000)
        parts["core"].append((yielded - end) * 1000)
        parts["server"].append((wrote - yielded) * 1000)
        parts["client"].append((r["completion"] - wrote) * 1000)
    events = sum(r["events"] for r in results)
    print(f"\n== {title} ==")
    print(f"streams ended with their completion: {len(complete)}/{n}  statuses: {statuses}")
    print("  " + summary("time to first event" + (" (includes the hold)" if hold else ""), ttfe,
                         digits=1))
    if parts["total"]:
        print("  " + summary("overhead per turn (client has completion - engine's last line)",
                             parts["total"]))
        print("    " + summary("core: engine's last line -> completion yielded", parts["core"]))
        print("    " + summary("HTTP server: completion yielded -> frame written to the socket",
                               parts["server"]))
        print("    " + summary("loopback + client: written -> parsed by the client",
                               parts["client"]))
    print(f"  events: {events} in {wall:.2f} s = {events / wall:,.0f} events/s")


def wave(port: int, n: int, logs: Logs, tag: str, message: str, title: str,
         server_pid: int | None = None) -> None:
    logs.read_new()
    cpu0 = cpu_s(server_pid) if server_pid else None
    t0 = time.time()
    jobs = [gevent.spawn(one_stream, port, f"{tag}-{i}", message.format(key=f"{tag}-{i}"))
            for i in range(n)]
    gevent.joinall(jobs, timeout=WAVE_DEADLINE_S)
    wall = time.time() - t0
    results = [j.value for j in jobs if j.successful() and j.value]
    timed = "FAKE_LINES" not in message  # throughput runs bypass the timing wrapper
    report(title, results, n, wall, logs, hold=("FAKE_SLOW" in message) if timed else None)
    if server_pid:
        cur, peak = rss_kb(server_pid)
        print(f"  server: CPU {(cpu_s(server_pid) - cpu0) * 1000 / n:.1f} ms per turn, "
              f"RSS {cur / 1024:.1f} MiB (peak {peak / 1024:.1f} MiB)")


def sequential(port: int, n: int, logs: Logs) -> None:
    logs.read_new()
    t0 = time.time()
    results = [one_stream(port, f"seq-{i}", f"FAKE_SAY:reply seq-{i}") for i in range(n)]
    report(f"{n} turns one after another (no contention)", results, n, time.time() - t0, logs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--waves", default="50,200", help="comma-separated stream counts")
    ap.add_argument("--sequential", type=int, default=30, help="uncontended turns first")
    ap.add_argument("--lines", type=int, default=20000, help="events in the throughput stream")
    ap.add_argument("--hold-per-stream", type=float, default=0.1,
                    help="seconds of FAKE_SLOW per concurrent stream in the held wave, so every "
                         "engine has started before the first one answers")
    args = ap.parse_args()
    sizes = [int(x) for x in args.waves.split(",") if x]
    proc, port, root = setup(max(sizes + [10]) + 10)
    logs = Logs(root)
    try:
        wave(port, 5, logs, "warmup", "FAKE_SAY:reply {key}", "warm-up: 5 streams", proc.pid)
        if args.sequential:
            sequential(port, args.sequential, logs)
        for n in sizes:
            wave(port, n, logs, f"b{n}", "FAKE_SAY:reply {key}",
                 f"{n} concurrent streams, all engines answer at once (start-up storm)",
                 proc.pid)
            hold = max(2.0, n * args.hold_per_stream)
            wave(port, n, logs, f"h{n}", f"FAKE_SLOW:{hold:.1f} FAKE_SAY:reply {{key}}",
                 f"{n} concurrent streams held open {hold:.0f} s, then the engines answer",
                 proc.pid)
        if args.lines:
            wave(port, 1, logs, "lines", f"FAKE_LINES:{args.lines}",
                 f"throughput: 1 stream of {args.lines} text events", proc.pid)
            wave(port, 20, logs, "lines20", f"FAKE_LINES:{args.lines // 10}",
                 f"throughput: 20 concurrent streams of {args.lines // 10} text events", proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
