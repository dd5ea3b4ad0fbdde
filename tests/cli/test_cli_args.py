"""Argument handling, exit codes and outputs of the ``golembot`` commands (CliRunner)."""
from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner

from golembot import __version__
from golembot.cli import main, resolve_listen

LEAVES = [["init"], ["run"], ["serve"], ["gateway"], ["status"], ["doctor"], ["skill"],
          ["skill", "list"], ["skill", "add"], ["skill", "remove"]]


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("GOLEM_TOKEN", "GOLEM_PORT"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_version_flags(runner):
    for flag in ("-V", "--version"):
        res = runner.invoke(main, [flag])
        assert res.exit_code == 0
        assert res.output.strip() == __version__


@pytest.mark.parametrize("words", LEAVES, ids=lambda w: " ".join(w))
def test_every_command_has_help_with_examples(runner, words):
    for flag in ("-h", "--help"):
        res = runner.invoke(main, [*words, flag])
        assert res.exit_code == 0, res.output
        assert "Examples:" in res.output
        assert "golembot " + words[0] in res.output.split("Examples:")[1]


def test_bare_command_prints_welcome_box(runner):
    res = runner.invoke(main, [])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].startswith("╭") and lines[-1].startswith("╰")
    assert all(len(line) == 52 for line in lines), [len(line) for line in lines]
    assert "◈ GolemBot" in res.output and f"v{__version__}" in res.output
    for hint in ("golembot onboard", "golembot run", "golembot gateway", "golembot doctor"):
        assert hint in res.output


def test_usage_errors_exit_1(runner):
    assert runner.invoke(main, ["no-such-command"]).exit_code == 1
    assert runner.invoke(main, ["serve", "--port", "notanumber"]).exit_code == 1
    assert runner.invoke(main, ["skill", "remove"]).exit_code == 1
    res = runner.invoke(main, ["init", "-e", "gpt", "-n", "x"])
    assert res.exit_code == 1
    assert "gpt" in res.stderr


def test_init_without_name_and_without_terminal_fails_clearly(runner, tmp_path):
    res = runner.invoke(main, ["init", "-d", str(tmp_path)])
    assert res.exit_code == 1
    assert res.stderr.startswith("❌ ") and "--name" in res.stderr
    assert not (tmp_path / "golem.yaml").exists()


def test_init_creates_assistant(runner, tmp_path):
    target = tmp_path / "bot"
    res = runner.invoke(main, ["init", "-d", str(target), "-e", "claude-code", "-n", "helper",
                               "-r", "support agent"])
    assert res.exit_code == 0, res.output + res.stderr
    assert "✅ GolemBot assistant created!" in res.output
    assert f"   Directory: {target}" in res.output
    assert "   Engine: claude-code" in res.output
    assert "   Name: helper" in res.output
    assert "   Role: support agent" in res.output
    config = yaml.safe_load((target / "golem.yaml").read_text())
    assert config["name"] == "helper" and config["engine"] == "claude-code"
    assert config["persona"]["role"] == "support agent"
    assert (target / "skills" / "general" / "SKILL.md").is_file()
    assert (target / "AGENTS.md").is_file()


def test_init_refuses_existing_assistant(runner, tmp_path):
    (tmp_path / "golem.yaml").write_text("name: old\nengine: codex\n")
    res = runner.invoke(main, ["init", "-d", str(tmp_path), "-n", "new"])
    assert res.exit_code == 1
    assert res.stderr.startswith("❌ Initialization failed: ")
    assert "already exists" in res.stderr
    assert "Traceback" not in res.output + res.stderr
    assert (tmp_path / "golem.yaml").read_text() == "name: old\nengine: codex\n"


def test_status_text_and_json(runner, make_bot):
    d = make_bot(engine="codex", name="stat", model="gpt-5.4",
                 channels={"slack": {"botToken": "x", "appToken": "y"}, "telegram": None},
                 gateway={"port": 4100, "token": "secret-token"})
    os.makedirs(os.path.join(d, ".golem"))
    with open(os.path.join(d, ".golem", "sessions.json"), "w") as f:
        json.dump({"default": {"engineSessionId": "a"}, "u:1": {"engineSessionId": "b"}}, f)
    res = runner.invoke(main, ["status", "-d", d])
    assert res.exit_code == 0, res.stderr
    assert "🤖 GolemBot Assistant Status" in res.output
    assert "   Name:       stat\n" in res.output
    assert "   Engine:     codex\n" in res.output
    assert "   Model:      gpt-5.4\n" in res.output
    assert "   Sessions:   2\n" in res.output
    assert "   Channels:   slack\n" in res.output
    assert "   Gateway:    port 4100, auth enabled\n" in res.output
    assert f"   Directory:  {d}\n" in res.output
    assert "secret-token" not in res.output

    res = runner.invoke(main, ["status", "-d", d, "--json"])
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info == {"name": "stat", "engine": "codex", "model": "gpt-5.4", "skills": [],
                    "sessions": 2, "channels": ["slack"],
                    "gateway": {"port": 4100, "authEnabled": True}, "directory": d}


def test_status_errors(runner, tmp_path):
    res = runner.invoke(main, ["status", "-d", str(tmp_path)])
    assert res.exit_code == 1
    assert res.stderr.startswith("❌ Failed to read assistant status: ")
    assert "use -d to specify the assistant directory" in res.stderr
    res = runner.invoke(main, ["status", "-d", str(tmp_path), "--json"])
    assert res.exit_code == 1
    assert "golem.yaml" in json.loads(res.output)["error"]

    (tmp_path / "golem.yaml").write_text("name: [unclosed\n")
    res = runner.invoke(main, ["status", "-d", str(tmp_path)])
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 2


def test_dotenv_from_dir_then_cwd_never_overrides(runner, make_bot, monkeypatch, tmp_path):
    d = make_bot(name="envbot", gateway={"token": "${ENV_TEST_TOKEN}"})
    with open(os.path.join(d, ".env"), "w") as f:
        f.write("ENV_TEST_TOKEN=from-dir\nENV_TEST_OTHER=dir-other\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / ".env").write_text("ENV_TEST_OTHER=cwd-other\nENV_TEST_CWD=cwd-only\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("ENV_TEST_PRESET", "kept")
    for var in ("ENV_TEST_TOKEN", "ENV_TEST_OTHER", "ENV_TEST_CWD"):
        monkeypatch.delenv(var, raising=False)
    (cwd / ".env").write_text("ENV_TEST_OTHER=cwd-other\nENV_TEST_CWD=cwd-only\n"
                              "ENV_TEST_PRESET=overridden\n")
    res = runner.invoke(main, ["status", "-d", d, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["gateway"]["authEnabled"] is True
    assert os.environ["ENV_TEST_TOKEN"] == "from-dir"
    assert os.environ["ENV_TEST_OTHER"] == "dir-other"
    assert os.environ["ENV_TEST_CWD"] == "cwd-only"
    assert os.environ["ENV_TEST_PRESET"] == "kept"


def test_listen_precedence(monkeypatch):
    monkeypatch.delenv("GOLEM_PORT", raising=False)
    monkeypatch.delenv("GOLEM_TOKEN", raising=False)
    cfg = {"gateway": {"port": 4000, "token": "cfg", "host": "127.0.0.2"}}
    assert resolve_listen({}) == (3000, None, "127.0.0.1")
    assert resolve_listen(cfg) == (4000, "cfg", "127.0.0.2")
    monkeypatch.setenv("GOLEM_PORT", "5000")
    monkeypatch.setenv("GOLEM_TOKEN", "env")
    assert resolve_listen(cfg) == (5000, "env", "127.0.0.2")
    assert resolve_listen(cfg, 6000, "flag", "127.0.0.3") == (6000, "flag", "127.0.0.3")
    monkeypatch.setenv("GOLEM_PORT", "http")
    with pytest.raises(Exception, match="GOLEM_PORT"):
        resolve_listen(cfg)


def test_serve_fails_cleanly_on_invalid_config(runner, tmp_path):
    (tmp_path / "golem.yaml").write_text("name: x\nengine: gpt\n")
    res = runner.invoke(main, ["serve", "-d", str(tmp_path), "-p", "0"])
    assert res.exit_code == 1
    assert res.stderr.startswith("❌ ") and "gpt" in res.stderr
    assert "Traceback" not in res.stderr
    res = runner.invoke(main, ["serve", "-d", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "golembot init" in res.stderr


def test_doctor_all_good(runner, make_bot, monkeypatch):
    d = make_bot(engine="claude-code", name="doc")
    runner.invoke(main, ["skill", "add", "builtin:general", "-d", d])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    res = runner.invoke(main, ["doctor", "-d", d])
    assert res.exit_code == 0, res.output
    assert "GolemBot Doctor" in res.output
    assert "✓ Python >= 3.11: v" in res.output
    assert "✓ golem.yaml: engine=claude-code, name=doc" in res.output
    assert "✓ Engine CLI (claude): found on PATH" in res.output
    assert "✓ API key / auth: ANTHROPIC_API_KEY" in res.output
    assert "✓ Skills: general" in res.output
    assert "sk-ant-very-secret" not in res.output
    assert "✗" not in res.output


def test_doctor_failures_name_the_fix(runner, make_bot, monkeypatch, tmp_path):
    d = make_bot(engine="codex", name="doc2", provider={"baseUrl": "http://x/v1",
                                                         "apiKey": "${MISSING_KEY_VAR}"})
    for var in ("CODEX_API_KEY", "OPENAI_API_KEY", "MISSING_KEY_VAR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no engine binaries at all
    os.makedirs(os.path.join(d, "skills", "broken"))
    res = runner.invoke(main, ["doctor", "-d", d])
    assert res.exit_code == 1
    out = res.output
    assert "✗ Engine CLI (codex): not found — install codex" in out
    assert "✗ API key / auth: none — run `codex login` or set CODEX_API_KEY" in out
    assert "✗ golem.yaml: invalid — " in out and "MISSING_KEY_VAR" in out
    assert "✗ Skills: skills/broken has no SKILL.md" in out
    assert "golembot skill remove broken" in out
    assert "MISSING_KEY_VAR" in out

    res = runner.invoke(main, ["doctor", "-d", str(tmp_path)])
    assert res.exit_code == 1
    assert "✗ golem.yaml: not found — run golembot init" in res.output


def test_skill_list_add_remove(runner, make_bot, tmp_path):
    d = make_bot(name="sk")
    res = runner.invoke(main, ["skill", "list", "-d", d])
    assert res.exit_code == 0 and res.output.strip() == "(no skills installed)"
    assert json.loads(runner.invoke(main, ["skill", "list", "-d", d, "--json"]).output) == []

    src = tmp_path / "report-writer"
    src.mkdir()
    (src / "SKILL.md").write_text("---\nname: report-writer\ndescription: Writes reports\n---\n"
                                  "# Report writer\n")
    res = runner.invoke(main, ["skill", "add", str(src), "-d", d])
    assert res.exit_code == 0, res.stderr
    assert res.output.strip() == "✅ Skill added: report-writer"
    assert os.path.isfile(os.path.join(d, "skills", "report-writer", "SKILL.md"))

    res = runner.invoke(main, ["skill", "add", "builtin:general", "-d", d, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == {"ok": True, "name": "general"}

    res = runner.invoke(main, ["skill", "list", "-d", d])
    assert "Installed skills (2):" in res.output
    assert "  general " in res.output
    assert "  report-writer        Writes reports" in res.output
    listed = json.loads(runner.invoke(main, ["skill", "list", "-d", d, "--json"]).output)
    assert [s["name"] for s in listed] == ["general", "report-writer"]

    res = runner.invoke(main, ["skill", "add", str(src), "-d", d])
    assert res.exit_code == 1 and "already installed" in res.stderr

    res = runner.invoke(main, ["skill", "remove", "report-writer", "-d", d])
    assert res.exit_code == 0 and res.output.strip() == "✅ Skill removed: report-writer"
    assert not os.path.exists(os.path.join(d, "skills", "report-writer"))

    for bad in ("nope", "../..", ".hidden", "a/b"):
        res = runner.invoke(main, ["skill", "remove", bad, "-d", d])
        assert res.exit_code == 1 and res.stderr.startswith("❌"), bad
    assert os.path.isdir(d)

    res = runner.invoke(main, ["skill", "add", str(tmp_path / "missing"), "-d", d])
    assert res.exit_code == 1 and res.stderr.startswith("❌")
    res = runner.invoke(main, ["skill", "add", "builtin:no-such-skill", "-d", d, "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["ok"] is False
