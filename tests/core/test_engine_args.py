"""argv, environment and workspace files of each engine, for new and resumed turns."""
from __future__ import annotations

import json
import os

import pytest

from golembot.engines import Invocation, get_engine


def inv(ws, **kw):
    return Invocation(workspace=str(ws), prompt=kw.pop("prompt", "hi"), **kw)


BASE_ENV = {"PATH": "/usr/bin", "HOME": "/home/u", "CLAUDECODE": "1", "CLAUDE_CODE_ENTRYPOINT": "cli",
            "KEEP": "me"}


# -- Claude Code -------------------------------------------------------------------------------
def test_claude_argv(tmp_path):
    e = get_engine("claude-code")
    base = ["-p", "hi", "--output-format", "stream-json", "--verbose"]
    assert e.build_argv(inv(tmp_path)) == base + ["--dangerously-skip-permissions"]
    assert e.build_argv(inv(tmp_path, session_id="s1", model="claude-sonnet-4-6")) == base + [
        "--dangerously-skip-permissions", "--resume", "s1", "--model", "claude-sonnet-4-6"]
    assert e.build_argv(inv(tmp_path, skip_permissions=False, model="m",
                            provider={"baseUrl": "http://x"})) == base + ["--setting-sources", "project,local"]
    # a message that looks like an option stays an operand
    assert e.build_argv(inv(tmp_path, prompt="--help"))[1] == " --help"


def test_claude_env_provider_and_hygiene(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    e = get_engine("claude-code")
    src = dict(BASE_ENV)
    env = e.build_env(inv(tmp_path, model="claude-x", api_key="sk-explicit",
                          provider={"apiKey": "sk-prov", "baseUrl": "http://127.0.0.1:9", "model": "pm"}), src)
    assert src == BASE_ENV  # a copy, never the caller's dict
    assert "CLAUDECODE" not in env and "CLAUDE_CODE_ENTRYPOINT" not in env and env["KEEP"] == "me"
    assert env["PATH"] == os.path.expanduser("~/.local/bin") + os.pathsep + "/usr/bin"
    assert env["ANTHROPIC_API_KEY"] == "sk-explicit"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    for var in ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL"):
        assert env[var] == "pm"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert "IS_SANDBOX" not in env
    # provider without model: resolved model goes to ANTHROPIC_MODEL unless already set
    env = e.build_env(inv(tmp_path, model="claude-y", provider={"apiKey": "k"}), {"PATH": "/b"})
    assert env["ANTHROPIC_MODEL"] == "claude-y" and env["ANTHROPIC_API_KEY"] == "k"
    env = e.build_env(inv(tmp_path, model="claude-y", provider={"apiKey": "k"}),
                      {"PATH": "/b", "ANTHROPIC_MODEL": "inherited"})
    assert env["ANTHROPIC_MODEL"] == "inherited"
    # no provider: nothing routed
    env = e.build_env(inv(tmp_path, model="claude-y"), {"PATH": "/b"})
    assert "ANTHROPIC_MODEL" not in env and "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC" not in env


def test_claude_oauth_token_removes_api_key(tmp_path):
    env = get_engine("claude-code").build_env(
        inv(tmp_path, oauth_token="oat-1", api_key="sk", provider={"apiKey": "sk2"}),
        {"PATH": "/b", "ANTHROPIC_API_KEY": "inherited"})
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == "oat-1" and "ANTHROPIC_API_KEY" not in env


def test_claude_root_gets_is_sandbox(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    e = get_engine("claude-code")
    assert e.build_env(inv(tmp_path), {"PATH": "/b"})["IS_SANDBOX"] == "1"
    assert e.build_env(inv(tmp_path), {"PATH": "/b", "IS_SANDBOX": "yes"})["IS_SANDBOX"] == "yes"
    assert "IS_SANDBOX" not in e.build_env(inv(tmp_path, skip_permissions=False), {"PATH": "/b"})


def test_claude_workspace_files(tmp_path):
    skill = tmp_path / "skills" / "general"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text("x")
    (tmp_path / ".claude" / "skills").mkdir(parents=True)
    os.symlink("/nonexistent", tmp_path / ".claude" / "skills" / "stale")
    (tmp_path / ".claude" / "skills" / "mine").mkdir()
    e = get_engine("claude-code")
    mcp = {"kb": {"command": "kb-server", "args": ["--x"]}, "bare": {"command": "b"}}
    e.prepare_workspace(inv(tmp_path, skill_paths=[str(skill)], mcp=mcp))
    skills = tmp_path / ".claude" / "skills"
    assert sorted(os.listdir(skills)) == ["general", "mine"]
    assert os.readlink(skills / "general") == str(skill)
    assert os.readlink(tmp_path / "CLAUDE.md") == "AGENTS.md"
    assert json.loads((tmp_path / ".claude" / "mcp.json").read_text()) == {
        "mcpServers": {"kb": {"command": "kb-server", "args": ["--x"]}, "bare": {"command": "b"}}}
    argv = e.build_argv(inv(tmp_path, mcp=mcp))
    assert argv[-2:] == ["--mcp-config", str(tmp_path / ".claude" / "mcp.json")]


def test_claude_keeps_a_hand_written_claude_md(tmp_path):
    (tmp_path / "CLAUDE.md").write_text("my rules\n")
    get_engine("claude-code").prepare_workspace(inv(tmp_path))
    assert not os.path.islink(tmp_path / "CLAUDE.md")
    assert (tmp_path / "CLAUDE.md").read_text() == "my rules\n"
    os.unlink(tmp_path / "CLAUDE.md")
    os.symlink("elsewhere.md", tmp_path / "CLAUDE.md")  # a link is ours to repoint
    get_engine("claude-code").prepare_workspace(inv(tmp_path))
    assert os.readlink(tmp_path / "CLAUDE.md") == "AGENTS.md"


# -- Codex -------------------------------------------------------------------------------------
def codex(ws, **kw):
    return get_engine("codex").build_argv(inv(ws, **kw))


def test_codex_argv_defaults_and_resume(tmp_path):
    assert codex(tmp_path, prompt="fix tests") == [
        "exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check", "fix tests"]
    assert codex(tmp_path, prompt="continue", session_id="thread_123", model="gpt-5.4") == [
        "exec", "resume", "--json", "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check", "--model", "gpt-5.4", "thread_123", "continue"]


def test_codex_explicit_sandbox_and_approval(tmp_path):
    assert codex(tmp_path, prompt="inspect repo", codex={"sandbox": "read-only", "approval": "never"}) == [
        "--ask-for-approval", "never", "exec", "--json", "--sandbox", "read-only",
        "--skip-git-repo-check", "inspect repo"]
    assert codex(tmp_path, codex={"sandbox": "danger-full-access"})[:6] == [
        "--ask-for-approval", "on-request", "exec", "--json", "--sandbox", "danger-full-access"]
    assert codex(tmp_path, codex={"approval": "untrusted"})[:6] == [
        "--ask-for-approval", "untrusted", "exec", "--json", "--sandbox", "workspace-write"]


def test_codex_safe_mode_no_longer_uses_full_auto(tmp_path):
    argv = codex(tmp_path, codex={"mode": "safe"})
    assert "--full-auto" not in argv
    assert argv == ["--ask-for-approval", "on-request", "exec", "--json", "--sandbox", "workspace-write",
                    "--skip-git-repo-check", "hi"]


def test_codex_resume_moves_rejected_flags_to_config_overrides(tmp_path):
    argv = codex(tmp_path, session_id="t1", prompt="go",
                 codex={"sandbox": "read-only", "addDirs": ["../shared", "/var/tmp/assets"]},
                 provider={"codexProfile": "m21"})
    for flag in ("--sandbox", "--add-dir", "--profile", "--full-auto"):
        assert flag not in argv
    shared = os.path.normpath(os.path.join(str(tmp_path), "../shared"))
    assert argv == [
        "--ask-for-approval", "on-request", "exec", "resume", "--json", "--skip-git-repo-check",
        "-c", 'sandbox_mode="read-only"',
        "-c", f'sandbox_workspace_write.writable_roots=["{shared}","/var/tmp/assets"]',
        "-c", 'profile="m21"', "t1", "go"]


def test_codex_search_add_dirs_images_and_mcp(tmp_path):
    ws = tmp_path / "ws"
    argv = codex(ws, prompt="describe image", codex={"search": True, "addDirs": ["../shared", "/var/tmp/assets", 3]},
                 image_paths=[f"{ws}/.golem/images/a.png", f"{ws}/.golem/images/b.png"])
    assert argv == ["--search", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox",
                    "--skip-git-repo-check", "--add-dir", str(tmp_path / "shared"),
                    "--add-dir", "/var/tmp/assets", "describe image",
                    "--image", f"{ws}/.golem/images/a.png", "--image", f"{ws}/.golem/images/b.png"]
    argv = codex(ws, prompt="go", mcp={"kb": {"command": "kb", "args": ["-v"]}, "x": {"command": "y"}})
    assert argv[-1] == ('[Available MCP servers — these are configured but not directly accessible in '
                        'this engine:\n- kb: command="kb" args=["-v"]\n- x: command="y"]\n\ngo')


def test_codex_provider_routing(tmp_path):
    # baseUrl → a custom model provider declared with -c (OPENAI_BASE_URL alone is ignored by codex)
    argv = codex(tmp_path, provider={"baseUrl": "http://127.0.0.1:8765/v1", "apiKey": "k"})
    assert argv[argv.index("--skip-git-repo-check") + 1:-1] == [
        "-c", 'model_provider="golem"', "-c", 'model_providers.golem.name="golem"',
        "-c", 'model_providers.golem.base_url="http://127.0.0.1:8765/v1"',
        "-c", 'model_providers.golem.env_key="CODEX_API_KEY"',
        "-c", 'model_providers.golem.wire_api="responses"']
    # provider id from config.toml, with wire api
    argv = codex(tmp_path, session_id="t", provider={"codexProviderId": "minimax", "codexWireApi": "responses",
                                                     "codexProfile": "m21"}, model="gpt-5.4", prompt="continue")
    assert argv == ["exec", "resume", "--json", "--dangerously-bypass-approvals-and-sandbox",
                    "--skip-git-repo-check", "-c", 'profile="m21"', "-c", 'model_provider="minimax"',
                    "-c", 'model_providers.minimax.wire_api="responses"', "--model", "gpt-5.4", "t", "continue"]
    argv = codex(tmp_path, provider={"codexProfile": "p1"})
    assert argv[argv.index("--profile") + 1] == "p1"


def test_codex_env(tmp_path):
    e = get_engine("codex")
    env = e.build_env(inv(tmp_path, provider={"apiKey": "pk", "baseUrl": "http://b", "codexEnvKey": "MY_KEY"}),
                      {"PATH": "/b"})
    assert env["CODEX_API_KEY"] == env["OPENAI_API_KEY"] == env["MY_KEY"] == "pk"
    assert env["OPENAI_BASE_URL"] == "http://b" and env["PATH"] == "/b"
    env = e.build_env(inv(tmp_path, api_key="ek", provider={"apiKey": "pk", "codexProfile": "p", "baseUrl": "u"}),
                      {"PATH": "/b"})
    assert env["CODEX_API_KEY"] == env["OPENAI_API_KEY"] == "ek" and "OPENAI_BASE_URL" not in env


# -- OpenCode ----------------------------------------------------------------------------------
def test_opencode_argv_and_env(tmp_path):
    e = get_engine("opencode")
    assert e.build_argv(inv(tmp_path)) == ["run", "hi", "--format", "json"]
    assert e.build_argv(inv(tmp_path, session_id="ses_1", model="openrouter/a/b")) == [
        "run", "hi", "--format", "json", "--session", "ses_1", "--model", "openrouter/a/b"]
    env = e.build_env(inv(tmp_path, model="anthropic/claude", provider={"apiKey": "pk", "baseUrl": "http://u"}),
                      {"PATH": "/b"})
    assert env["ANTHROPIC_API_KEY"] == "pk" and env["OPENAI_BASE_URL"] == "http://u"
    assert e.build_env(inv(tmp_path, api_key="k"), {})["OPENROUTER_API_KEY"] == "k"
    assert e.build_env(inv(tmp_path, api_key="k", model="my-llm/x"), {})["MY_LLM_API_KEY"] == "k"
    # engines.md shows GPT-4O_API_KEY, contradicting its own "- → _" rule; a valid name wins
    assert e.build_env(inv(tmp_path, api_key="k", model="gpt-4o"), {})["GPT_4O_API_KEY"] == "k"
    assert e.build_env(inv(tmp_path, api_key="k", model="google/gemini"), {})["GOOGLE_GENERATIVE_AI_API_KEY"] == "k"


def test_opencode_json_maintenance(tmp_path):
    e = get_engine("opencode")
    (tmp_path / "opencode.json").write_text(json.dumps({
        "theme": "dark", "mcp": {"kb": {"command": "mine"}},
        "provider": {"openai": {"options": {"apiKey": "{env:OWN}"}, "other": 1}}}))
    e.prepare_workspace(inv(tmp_path, model="openai/gpt-5.4", mcp={"kb": {"command": "theirs"},
                                                                   "new": {"command": "n", "args": ["a"]}}))
    text = (tmp_path / "opencode.json").read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "')
    assert json.loads(text) == {
        "theme": "dark", "permission": {"*": "allow"}, "model": "openai/gpt-5.4",
        "mcp": {"kb": {"command": "mine"}, "new": {"command": "n", "args": ["a"]}},
        "provider": {"openai": {"options": {"apiKey": "{env:OWN}"}, "other": 1, "models": {"gpt-5.4": {}}}}}


def test_opencode_json_fresh_and_unknown_prefix(tmp_path):
    get_engine("opencode").prepare_workspace(inv(tmp_path, model="fake/fake-model"))
    assert json.loads((tmp_path / "opencode.json").read_text()) == {
        "permission": {"*": "allow"}, "model": "fake/fake-model"}
    get_engine("opencode").prepare_workspace(inv(tmp_path, model="anthropic/claude-x"))
    doc = json.loads((tmp_path / "opencode.json").read_text())
    assert doc["model"] == "fake/fake-model"  # an existing model key is the user's
    assert doc["provider"] == {"anthropic": {"options": {"apiKey": "{env:ANTHROPIC_API_KEY}"},
                                             "models": {"claude-x": {}}}}


def test_opencode_json_unparsable_is_backed_up(tmp_path):
    (tmp_path / "opencode.json").write_text("{ broken, // user was editing\n")
    get_engine("opencode").prepare_workspace(inv(tmp_path))
    backups = [n for n in os.listdir(tmp_path) if n.startswith("opencode.json.invalid-")]
    assert len(backups) == 1
    assert (tmp_path / backups[0]).read_text() == "{ broken, // user was editing\n"
    assert json.loads((tmp_path / "opencode.json").read_text()) == {"permission": {"*": "allow"}}
    assert sorted(os.listdir(tmp_path / ".opencode" / "skills")) == []


# -- Cursor ------------------------------------------------------------------------------------
def test_cursor_argv_never_carries_the_api_key(tmp_path):
    e = get_engine("cursor")
    head = ["-p", "hi", "--force", "--sandbox", "disabled", "--output-format", "stream-json",
            "--stream-partial-output", "--approve-mcps", "--workspace", str(tmp_path)]
    assert e.build_argv(inv(tmp_path)) == head + ["--trust"]
    argv = e.build_argv(inv(tmp_path, session_id="c1", model="sonnet-4.6", api_key="secret-key",
                            permissions={}))
    assert argv == head + ["--resume", "c1", "--model", "sonnet-4.6"]
    assert "secret-key" not in " ".join(argv) and "--api-key" not in argv
    env = e.build_env(inv(tmp_path, api_key="secret-key", provider={"apiKey": "p", "baseUrl": "http://c"}),
                      {"PATH": "/b"})
    assert env["CURSOR_API_KEY"] == "secret-key" and env["CURSOR_API_BASE_URL"] == "http://c"
    assert env["PATH"].startswith(os.path.expanduser("~/.local/bin") + os.pathsep)


def test_cursor_workspace_files(tmp_path):
    (tmp_path / ".cursor").mkdir()
    (tmp_path / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {"own": {"command": "o"}}}))
    perms = {"allowedPaths": ["src"], "deniedCommands": ["rm -rf /"], "allowedCommands": []}
    get_engine("cursor").prepare_workspace(inv(tmp_path, mcp={"kb": {"command": "kb", "env": {"A": "1"}}},
                                               permissions=perms))
    assert json.loads((tmp_path / ".cursor" / "mcp.json").read_text()) == {
        "mcpServers": {"own": {"command": "o"}, "kb": {"command": "kb", "env": {"A": "1"}}}}
    assert json.loads((tmp_path / ".cursor" / "cli.json").read_text()) == {
        "permissions": {"allowedDirectories": ["src"], "deniedCommands": ["rm -rf /"]}}
    assert os.path.isdir(tmp_path / ".cursor" / "skills")


@pytest.mark.parametrize("name, first_line, hint", [
    ("cursor", 'Cursor CLI ("agent") not found in PATH or at {home}/.local/bin/agent',
     "Install it with: curl https://cursor.com/install -fsS | bash"),
    ("claude-code", 'Claude Code CLI ("claude") not found in PATH or at {home}/.local/bin/claude',
     "Install it with: npm install -g @anthropic-ai/claude-code"),
    ("opencode", 'OpenCode CLI ("opencode") not found in PATH', "Install it with: npm install -g opencode-ai"),
    ("codex", 'Codex CLI ("codex") not found in PATH', "Install it with: npm install -g @openai/codex"),
])
def test_not_found_messages(name, first_line, hint, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    lines = get_engine(name).not_found_message().split("\n")
    assert lines[0] == first_line.format(home=str(tmp_path))
    assert lines[1] == hint and lines[2].startswith("See: https://")
