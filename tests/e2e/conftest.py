"""Fixtures for the optional end-to-end run against the real agent CLIs from npm.

Nothing here talks to the internet: the CLIs are pointed at ``shared/tools/fake_llm.py`` on
127.0.0.1, and every switch the fixtures README lists as "stops a fetch" (telemetry, plugin sync,
model catalogues, auto-update) is set in the environment or in the CLI's own config in an
isolated HOME. See the README (End-to-end tests).

* ``E2E_ENABLED`` / ``BIN_DIR``: read once, cheaply, so the default run skips at collection.
* ``fake_llm`` (module scope): the fake provider as a subprocess on a free port; yields an object
  with ``url`` and ``requests()`` (what it was asked, read from its JSONL log).
* ``real_cli_env``: PATH = the npm bin dir + the system, fresh HOME, no inherited provider
  variables, bounded retries.
* ``make_real_bot(engine, **golem_yaml)``: an assistant dir routed to the fake, and its
  :class:`~golembot.assistant.Assistant`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
FAKE_LLM = os.environ.get("GOLEM_FAKE_LLM") or os.path.abspath(
    os.path.join(ROOT, "..", "shared", "tools", "fake_llm.py"))
if not os.path.isfile(FAKE_LLM):  # the lead's checkout may keep shared/ at /work/shared
    FAKE_LLM = "/work/shared/tools/fake_llm.py"

E2E_ENABLED = os.environ.get("GOLEM_E2E") == "1"
BIN_DIR = os.environ.get("GOLEM_E2E_BIN_DIR", "/tmp/golem-real-clis/node_modules/.bin")
# golem.yaml `timeout` of every turn: the hard bound on one CLI run (they take 0.5-7 s here).
TURN_TIMEOUT_S = int(os.environ.get("GOLEM_E2E_TURN_TIMEOUT", "30"))
BINARIES = {"claude-code": "claude", "codex": "codex", "opencode": "opencode"}

# Variables a developer's shell may carry that would route a CLI elsewhere or leak a real key.
SCRUBBED = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDECODE",
            "CLAUDE_CODE_ENTRYPOINT", "IS_SANDBOX", "OPENAI_API_KEY", "OPENAI_BASE_URL",
            "CODEX_API_KEY", "CODEX_HOME", "OPENROUTER_API_KEY", "XDG_CONFIG_HOME",
            "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "GOLEM_FAKE_LOG",
            "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")

# What keeps each CLI quiet and quick (fixtures README, "Network" sections).
QUIET_ENV = {
    "LANG": "C.UTF-8",
    "NO_COLOR": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_MAX_RETRIES": "0",       # honoured by 2.1.332: a 401 fails in < 1 s
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    # OpenCode resolves packages for its config directories (@opencode-ai/plugin, ...) through
    # npm's fetch layer on every fresh HOME; offline mode keeps it off registry.npmjs.org.
    "npm_config_offline": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}

# Codex reads these from $CODEX_HOME/config.toml (= ~/.codex): no plugin catalogue sync
# (github.com, chatgpt.com) and no analytics (ab.chatgpt.com).
CODEX_CONFIG = """\
[features]
plugins = false

[analytics]
enabled = false
"""


def binary_path(engine: str) -> str:
    return os.path.join(BIN_DIR, BINARIES[engine])


def have_binary(engine: str) -> bool:
    path = binary_path(engine)
    return os.path.isfile(path) and os.access(path, os.X_OK)


class FakeLLM:
    """The running fake provider: its base URL and what it has been asked."""

    def __init__(self, proc, port: int, log_path: str):
        self.proc, self.port, self.log_path = proc, port, log_path
        self.url = f"http://127.0.0.1:{port}"

    def requests(self, since: int = 0) -> list:
        """HTTP requests logged so far (``kind == "http"`` lines), from index ``since`` on."""
        out = []
        with open(self.log_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("kind") == "http":
                    out.append(obj)
        return out[since:]

    def mark(self) -> int:
        """A position in the request log; pass it to :meth:`requests` to see only later ones."""
        return len(self.requests())


def _wait_for_port(log_path: str, proc, deadline_s: float = 10.0) -> int:
    """The port the fake picked, from the ``start`` line of its log (bounded poll)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"fake_llm.py exited with code {proc.returncode}")
        try:
            with open(log_path, encoding="utf-8") as fh:
                for line in fh:
                    obj = json.loads(line)
                    if obj.get("kind") == "start":
                        return int(obj["port"])
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("fake_llm.py did not start within 10 s")


@pytest.fixture(scope="module")
def fake_llm(tmp_path_factory):
    work = tmp_path_factory.mktemp("fake_llm")
    log_path = str(work / "fake_llm.jsonl")
    err = open(work / "fake_llm.stderr", "wb")
    proc = subprocess.Popen([sys.executable, FAKE_LLM, "--port", "0", "--log", log_path, "--quiet"],
                            stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                            start_new_session=True)
    try:
        yield FakeLLM(proc, _wait_for_port(log_path, proc), log_path)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        err.close()


def fresh_home(path) -> str:
    """An empty HOME for the CLIs (their sessions live there), with Codex's quiet config."""
    (path / ".codex").mkdir(parents=True)
    (path / ".codex" / "config.toml").write_text(CODEX_CONFIG)
    return str(path)


@pytest.fixture
def real_cli_env(monkeypatch, tmp_path):
    """The process environment golembot passes on to the CLIs; returns the fresh HOME."""
    for var in SCRUBBED:
        monkeypatch.delenv(var, raising=False)
    for var, value in QUIET_ENV.items():
        monkeypatch.setenv(var, value)
    node = shutil.which("node") or "/usr/bin/node"
    path = [BIN_DIR, os.path.dirname(node), "/usr/local/bin", "/usr/bin", "/bin"]
    monkeypatch.setenv("PATH", os.pathsep.join(dict.fromkeys(path)))
    home = fresh_home(tmp_path / "home")
    monkeypatch.setenv("HOME", home)
    return home


# provider.baseUrl per engine: Claude appends /v1/messages itself; Codex and OpenCode's built-in
# openai provider want the /v1 root. OpenCode's model needs a provider prefix so golembot knows
# which key variable (OPENAI_API_KEY) and opencode.json block to fill in.
PROVIDER = {
    "claude-code": lambda url: {"baseUrl": url, "apiKey": "fake-key", "model": "fake-model"},
    "codex": lambda url: {"baseUrl": url + "/v1", "apiKey": "fake-key", "model": "fake-model"},
    "opencode": lambda url: {"baseUrl": url + "/v1", "apiKey": "fake-key",
                             "model": "openai/fake-model"},
}


@pytest.fixture
def make_real_bot(tmp_path, real_cli_env, fake_llm):
    """``make_real_bot(engine, **golem_yaml_fields)`` → ``Assistant`` routed to the fake."""
    import golembot

    made = []

    def _make(engine: str, **fields):
        if not have_binary(engine):
            pytest.skip(f"{binary_path(engine)} not found (see the README, End-to-end tests)")
        d = tmp_path / f"bot-{engine}-{len(made)}"
        d.mkdir()
        doc = {"name": "e2e", "engine": engine, "provider": PROVIDER[engine](fake_llm.url),
               "timeout": TURN_TIMEOUT_S, **fields}
        (d / "golem.yaml").write_text(yaml.safe_dump(doc))
        bot = golembot.create_assistant(str(d))
        made.append(bot)
        return bot

    yield _make
    for bot in made:
        bot.shutdown()
