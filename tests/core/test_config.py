"""golem.yaml loading, validation, placeholders, .env, the line patch and PATCH /api/config."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from golembot import config as cfg
from golembot.config import (ConfigError, ConfigNotFoundError, is_secret_field, load_config,
                             load_dotenv, load_env_files, mask_secret, mask_secrets,
                             patch_config, set_top_level)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bot(tmp_path):
    """``bot(text)`` → directory whose golem.yaml is ``text`` (dedented)."""
    def write(text: str) -> str:
        (tmp_path / "golem.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return str(tmp_path)
    return write


def read(d) -> str:
    with open(os.path.join(d, "golem.yaml"), encoding="utf-8") as fh:
        return fh.read()


BASE = "name: bot\nengine: claude-code\n"


# -- YAML 1.2 ------------------------------------------------------------------------------------
def test_yaml_12_scalars(bot):
    d = bot("""
        name: on
        engine: codex
        model: 1:30
        timeout: 0755
        systemPrompt: 2024-01-01
        persona:
          displayName: yes
          role: no
          tone: off
          boundaries: [y, n, NULL_not, "0o17"]
        channels:
          telegram:
            botToken: "123:abc"
            chat: 12:30
            octal: 0o17
            hex: 0x1F
            flag: True
            nothing: ~
            when: 2001-12-14t21:59:43.10-05:00
            exp: 1e3
    """)
    c = load_config(d)
    assert c["name"] == "on"
    assert c["model"] == "1:30"
    assert c["timeout"] == 755
    assert c["systemPrompt"] == "2024-01-01"
    assert c["persona"] == {"displayName": "yes", "role": "no", "tone": "off",
                            "boundaries": ["y", "n", "NULL_not", "0o17"]}
    tg = c["channels"]["telegram"]
    assert tg["chat"] == "12:30"
    assert tg["octal"] == 15 and tg["hex"] == 31 and tg["flag"] is True
    assert tg["nothing"] is None
    assert tg["when"] == "2001-12-14t21:59:43.10-05:00"
    assert tg["exp"] == 1000.0


def test_boundaries_item_number_is_an_error(bot):
    d = bot(BASE + "persona:\n  boundaries: [1]\n")
    with pytest.raises(ConfigError, match=r'"persona\.boundaries\[0\]" must be a string, got 1'):
        load_config(d)


def test_bad_yaml_names_the_line(bot):
    d = bot("name: bot\nengine: codex\ngroupChat:\n  groupPolicy: [smart\ntimeout: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(d)
    msg = str(info.value)
    assert msg.startswith("golem.yaml line ")
    assert "could not parse YAML" in msg
    assert "Traceback" not in msg


def test_tab_indentation_line_number(bot):
    d = bot("name: bot\nengine: codex\npersona:\n\trole: x\n")
    with pytest.raises(ConfigError, match=r"^golem\.yaml line 4: could not parse YAML"):
        load_config(d)


def test_duplicate_key_is_an_error_with_line(bot):
    d = bot("name: bot\nengine: codex\ntimeout: 5\ntimeout: 6\n")
    with pytest.raises(ConfigError, match=r'golem\.yaml line 4: could not parse YAML: duplicate key "timeout"'):
        load_config(d)


def test_python_tags_are_refused(bot):
    d = bot("name: !!python/object/apply:os.system ['true']\nengine: codex\n")
    with pytest.raises(ConfigError, match="could not parse YAML"):
        load_config(d)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigNotFoundError, match="No golem.yaml in") as info:
        load_config(str(tmp_path))
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text, message", [
    ("", r'"name" is required'),
    ("- a\n- b\n", r"must be a mapping of fields, got a list"),
    ("engine: codex\n", r'^golem\.yaml: "name" is required$'),
    ("name: bot\n", r'^golem\.yaml: "engine" is required$'),
    ("name: 123\nengine: codex\n", r'"name" must be a string, got 123'),
    ("name: '  '\nengine: codex\n", r'"name" must not be empty'),
    ("name: bot\nengine: gpt\n",
     r'^golem\.yaml: "engine" must be one of cursor, claude-code, opencode, codex, got "gpt"$'),
    ("name: bot\nengine: [codex]\n", r'"engine" must be a string, got a list'),
])
def test_required_fields(bot, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(bot(text))


# Every field, wrong-typed: the message names the field and what was found.
WRONG = [
    ("model: 5", '"model" must be a string, got 5'),
    ("skipPermissions: yes", '"skipPermissions" must be true or false, got "yes" (write true or false)'),
    ("codex: safe", '"codex" must be a mapping, got "safe"'),
    ("codex: {mode: fast}", '"codex.mode" must be one of safe, unrestricted, got "fast"'),
    ("codex: {sandbox: all}", '"codex.sandbox" must be one of read-only, workspace-write, danger-full-access'),
    ("codex: {approval: always}", '"codex.approval" must be one of untrusted, on-request, never'),
    ("codex: {search: 1}", '"codex.search" must be true or false, got 1'),
    ("codex: {addDirs: /tmp}", '"codex.addDirs" must be a list of strings, got "/tmp"'),
    ("codex: {addDirs: [a, 3]}", '"codex.addDirs[1]" must be a string, got 3'),
    ("permissions: []", '"permissions" must be a mapping, got a list'),
    ("permissions: {allowedPaths: src}", '"permissions.allowedPaths" must be a list of strings'),
    ("permissions: {deniedPaths: [1]}", '"permissions.deniedPaths[0]" must be a string'),
    ("permissions: {allowedCommands: true}", '"permissions.allowedCommands" must be a list'),
    ("permissions: {deniedCommands: [[rm]]}", '"permissions.deniedCommands[0]" must be a string'),
    ("systemPrompt: [a]", '"systemPrompt" must be a string, got a list'),
    ("persona: x", '"persona" must be a mapping'),
    ("persona: {displayName: 1}", '"persona.displayName" must be a string, got 1'),
    ("persona: {role: {a: b}}", '"persona.role" must be a string, got a mapping'),
    ("persona: {tone: false}", '"persona.tone" must be a string, got false'),
    ("persona: {boundaries: none}", '"persona.boundaries" must be a list of strings'),
    ("timeout: abc", '"timeout" must be a number, got "abc"'),
    ("timeout: '600'", '"timeout" must be a number, got "600"'),
    ("timeout: true", '"timeout" must be a number, got true'),
    ("timeout: -1", '"timeout" must be at least 0, got -1'),
    ("timeout: .nan", '"timeout" must be a number'),
    ("sessionTtlDays: 0", '"sessionTtlDays" must be greater than 0, got 0'),
    ("sessionTtlDays: x", '"sessionTtlDays" must be a number'),
    ("maxConcurrent: 0", '"maxConcurrent" must be at least 1, got 0'),
    ("maxConcurrent: 2.5", '"maxConcurrent" must be an integer, got 2.5'),
    ("maxQueuePerSession: -1", '"maxQueuePerSession" must be at least 0'),
    ("maxQueuePerSession: many", '"maxQueuePerSession" must be an integer'),
    ("autoContinue: off", '"autoContinue" must be an integer, got "off"'),
    ("provider: key", '"provider" must be a mapping'),
    ("provider: {baseUrl: 1}", '"provider.baseUrl" must be a string'),
    ("provider: {apiKey: 1}", '"provider.apiKey" must be a string'),
    ("provider: {model: 1}", '"provider.model" must be a string'),
    ("provider: {models: [a]}", '"provider.models" must be a mapping'),
    ("provider: {models: {codex: [a]}}", '"provider.models.codex" must be a string'),
    ("provider: {codexProfile: 1}", '"provider.codexProfile" must be a string'),
    ("provider: {codexProviderId: 1}", '"provider.codexProviderId" must be a string'),
    ("provider: {codexWireApi: chat}", '"provider.codexWireApi" must be one of responses, got "chat"'),
    ("provider: {codexEnvKey: 'MY KEY'}", '"provider.codexEnvKey" must be an environment variable name'),
    ("provider: {fallback: x}", '"provider.fallback" must be a mapping'),
    ("provider: {fallback: {apiKey: 2}}", '"provider.fallback.apiKey" must be a string'),
    ("provider: {failoverThreshold: 0}", '"provider.failoverThreshold" must be at least 1'),
    ("provider: {fallbackRecoveryMs: soon}", '"provider.fallbackRecoveryMs" must be a number'),
    ("oauthToken: 5", '"oauthToken" must be a string, got 5'),
    ("mcp: [a]", '"mcp" must be a mapping'),
    ("mcp: {kb: x}", '"mcp.kb" must be a mapping'),
    ("mcp: {kb: {args: []}}", '"mcp.kb.command" is required'),
    ("mcp: {kb: {command: 1}}", '"mcp.kb.command" must be a string'),
    ("mcp: {kb: {command: x, args: x}}", '"mcp.kb.args" must be a list of strings'),
    ("mcp: {kb: {command: x, args: [[1]]}}", '"mcp.kb.args[0]" must be a string'),
    ("mcp: {kb: {command: x, env: [a]}}", '"mcp.kb.env" must be a mapping'),
    ("mcp: {kb: {command: x, env: {A: [1]}}}", '"mcp.kb.env.A" must be a string'),
    ("channels: [slack]", '"channels" must be a mapping'),
    ("channels: {slack: token}", '"channels.slack" must be a mapping'),
    ("channels: {slack: {botToken: 5}}", '"channels.slack.botToken" must be a string, got 5'),
    ("channels: {feishu: {pingTimeout: soon}}", '"channels.feishu.pingTimeout" must be a number'),
    ("channels: {mine: {_adapter: 3}}", '"channels.mine._adapter" must be a string'),
    ("gateway: 3000", '"gateway" must be a mapping, got 3000'),
    ("gateway: {port: http}", '"gateway.port" must be an integer, got "http"'),
    ("gateway: {port: -5}", '"gateway.port" must be at least 0'),
    ("gateway: {host: 1}", '"gateway.host" must be a string'),
    ("gateway: {token: 123}", '"gateway.token" must be a string, got 123'),
    ("groupChat: smart", '"groupChat" must be a mapping'),
    ("groupChat: {groupPolicy: sometimes}",
     '"groupChat.groupPolicy" must be one of mention-only, smart, always, got "sometimes"'),
    ("groupChat: {historyLimit: lots}", '"groupChat.historyLimit" must be an integer'),
    ("groupChat: {maxTurns: 0}", '"groupChat.maxTurns" must be at least 1'),
    ("streaming: on", '"streaming" must be a mapping, got "on"'),
    ("streaming: {mode: live}", '"streaming.mode" must be one of buffered, streaming, got "live"'),
    ("streaming: {showToolCalls: sure}", '"streaming.showToolCalls" must be true or false'),
    ("tasks: {a: 1}", '"tasks" must be a list of tasks, got a mapping'),
    ("tasks: [x]", '"tasks[0]" must be a mapping, got "x"'),
    ("tasks: [{prompt: p}]", '"tasks[0].schedule" is required'),
    ("tasks: [{schedule: s}]", '"tasks[0].prompt" is required'),
    ("tasks: [{schedule: s, prompt: p, name: 1}]", '"tasks[0].name" must be a string'),
    ("tasks: [{schedule: 1, prompt: p}]", '"tasks[0].schedule" must be a string'),
    ("tasks: [{schedule: s, prompt: ''}]", '"tasks[0].prompt" must not be empty'),
    ("tasks: [{schedule: s, prompt: p, enabled: no}]", '"tasks[0].enabled" must be true or false'),
    ("tasks: [{schedule: s, prompt: p, id: [1]}]", '"tasks[0].id" must be a string'),
    ("tasks: [{schedule: s, prompt: p, timeout: x}]", '"tasks[0].timeout" must be a number'),
    ("tasks: [{schedule: s, prompt: p, target: slack}]", '"tasks[0].target" must be a mapping'),
    ("tasks: [{schedule: s, prompt: p, target: {chatId: 1}}]", '"tasks[0].target.channel" is required'),
    ("tasks: [{schedule: s, prompt: p, name: a}, {schedule: s, prompt: q, name: a}]",
     '"tasks[1].name" "a" is used by another task'),
    ("inbox: true", '"inbox" must be a mapping, got true'),
    ("inbox: {enabled: on}", '"inbox.enabled" must be true or false, got "on"'),
    ("inbox: {retentionDays: 0}", '"inbox.retentionDays" must be greater than 0'),
    ("historyFetch: {enabled: 1}", '"historyFetch.enabled" must be true or false'),
    ("historyFetch: {pollIntervalMinutes: 0}", '"historyFetch.pollIntervalMinutes" must be greater than 0'),
    ("historyFetch: {initialLookbackMinutes: x}", '"historyFetch.initialLookbackMinutes" must be a number'),
    ("escalation: {enabled: maybe}", '"escalation.enabled" must be true or false'),
    ("escalation: {target: {channel: 5}}", '"escalation.target.channel" must be a string'),
    ("timezone: Mars/Base", '"timezone" must be an IANA time zone such as Europe/Berlin, got "Mars/Base"'),
    ("timezone: 5", '"timezone" must be a string'),
    ("1: x", '"1" must have a text key'),
]


@pytest.mark.parametrize("line, message", WRONG, ids=[w[0][:40] for w in WRONG])
def test_every_field_wrong_type_names_it(bot, line, message):
    d = bot(BASE + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(d)
    assert str(info.value) == f"golem.yaml: {message}" or str(info.value).startswith(
        f"golem.yaml: {message}")
    assert info.value.field is None or info.value.field.split(".")[0].split("[")[0] in line


def test_every_field_is_covered_by_a_wrong_type_case():
    covered = {w[0].split(":")[0] for w in WRONG}
    assert set(cfg.FIELDS) - {"name", "engine"} <= covered


def test_full_valid_config_and_defaults(bot, monkeypatch):
    monkeypatch.setenv("GW_TOKEN", "tok-1234567890")
    d = bot("""
        name: full
        engine: codex
        model: gpt-5.4
        skipPermissions: false
        codex: {mode: safe, search: true, addDirs: [../shared]}
        permissions: {}
        systemPrompt: Be brief.
        persona: {displayName: Golem, role: helper, tone: calm, boundaries: [no legal advice]}
        timeout: 120.5
        sessionTtlDays: 7
        maxConcurrent: 4.0
        maxQueuePerSession: 0
        autoContinue: 0
        provider:
          baseUrl: https://example.test/v1
          apiKey: sk-x
          models: {codex: gpt-5.4, opencode: 4}
          fallback: {apiKey: sk-y, fallback: {apiKey: nested}}
        oauthToken: oat
        mcp: {kb: {command: npx, args: [-y, kb, 8080], env: {PORT: 8080}, cwd: /x}}
        channels:
          slack: {botToken: xoxb, appToken: xapp}
          disabled:
          mine: {_adapter: ./adapters/mine.py, extra: [1, 2]}
        gateway: {port: 8080, host: 0.0.0.0, token: "${GW_TOKEN}"}
        groupChat: {groupPolicy: smart}
        streaming: {showToolCalls: true}
        tasks:
          - {schedule: every 5m, prompt: hi, target: {channel: telegram, chatId: -100123}}
          - {id: 7, name: weekly, schedule: weekly mon 09:00, prompt: sum, enabled: false}
        inbox: {enabled: true}
        historyFetch: {enabled: true, pollIntervalMinutes: 5}
        escalation: {enabled: true, target: {channel: slack, chatId: C1}}
        timezone: Europe/Berlin
    """)
    c = load_config(d)
    assert c["provider"]["models"] == {"codex": "gpt-5.4", "opencode": "4"}
    assert c["provider"]["fallback"] == {"apiKey": "sk-y"}
    assert c["provider"]["failoverThreshold"] == 3 and c["provider"]["fallbackRecoveryMs"] == 60000
    assert c["skipPermissions"] is False
    assert c["codex"] == {"mode": "safe", "search": True, "addDirs": ["../shared"]}
    assert c["permissions"] == {}
    assert c["timeout"] == 120.5 and c["maxConcurrent"] == 4 and isinstance(c["maxConcurrent"], int)
    assert c["maxQueuePerSession"] == 0 and c["autoContinue"] == 0
    assert c["mcp"]["kb"] == {"command": "npx", "args": ["-y", "kb", "8080"], "env": {"PORT": "8080"},
                              "cwd": "/x"}
    assert c["channels"] == {"slack": {"botToken": "xoxb", "appToken": "xapp"},
                             "mine": {"_adapter": "./adapters/mine.py", "extra": [1, 2]}}
    assert c["gateway"] == {"port": 8080, "host": "0.0.0.0", "token": "tok-1234567890"}
    assert c["groupChat"] == {"groupPolicy": "smart", "historyLimit": 20, "maxTurns": 10}
    assert c["streaming"] == {"mode": "buffered", "showToolCalls": True}
    assert c["tasks"] == [
        {"schedule": "every 5m", "prompt": "hi", "target": {"channel": "telegram", "chatId": "-100123"},
         "name": "task-0", "enabled": True},
        {"id": "7", "name": "weekly", "schedule": "weekly mon 09:00", "prompt": "sum", "enabled": False},
    ]
    assert c["inbox"] == {"enabled": True, "retentionDays": 7}
    assert c["historyFetch"] == {"enabled": True, "pollIntervalMinutes": 5, "initialLookbackMinutes": 60}
    assert c["escalation"] == {"enabled": True, "target": {"channel": "slack", "chatId": "C1"}}
    assert c["timezone"] == "Europe/Berlin"
    assert c["sessionTtlDays"] == 7


def test_defaults_and_absent_sections(bot):
    c = load_config(bot(BASE))
    assert c == {"name": "bot", "engine": "claude-code", "timeout": 600, "sessionTtlDays": 30,
                 "maxConcurrent": 10, "maxQueuePerSession": 3, "autoContinue": 5,
                 "skipPermissions": True,
                 "groupChat": {"groupPolicy": "mention-only", "historyLimit": 20, "maxTurns": 10},
                 "streaming": {"mode": "buffered", "showToolCalls": False}}
    for absent in ("permissions", "codex", "provider", "persona", "channels", "gateway", "inbox"):
        assert absent not in c


def test_null_optional_fields_are_absent(bot):
    assert "model" not in load_config(bot(BASE + "model: ''\n"))
    c = load_config(bot(BASE + "model:\npermissions:\ncodex: {}\ntimeout: ~\n"))
    assert "model" not in c and "permissions" not in c and "codex" not in c
    assert c["timeout"] == 600


def test_unknown_keys_are_ignored_with_a_warning(bot, caplog):
    cfg._warned.clear()
    with caplog.at_level("WARNING", logger="golembot.config"):
        c = load_config(bot(BASE + "colour: blue\ngroupChat: {groupPolcy: smart}\n"))
    assert "colour" not in c
    assert c["groupChat"]["groupPolicy"] == "mention-only"
    text = caplog.text
    assert 'unknown field "colour"' in text and 'unknown field "groupChat.groupPolcy"' in text


def test_edits_are_seen_on_next_load(bot):
    d = bot(BASE + "timeout: 5\n")
    assert load_config(d)["timeout"] == 5
    with open(os.path.join(d, "golem.yaml"), "w") as fh:
        fh.write(BASE + "timeout: 6\n")
    assert load_config(d)["timeout"] == 6
    c = load_config(d)
    c["timeout"] = 99  # callers may mutate their copy
    assert load_config(d)["timeout"] == 6


# -- placeholders --------------------------------------------------------------------------------
def test_placeholders_resolve_only_in_env_sections(bot, monkeypatch):
    monkeypatch.setenv("V", "val")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.setenv("PORT_X", "4100")
    d = bot("""
        name: ${V}
        engine: codex
        systemPrompt: hi ${V}
        persona: {role: "${V}"}
        codex: {addDirs: ["${V}/a"]}
        gateway: {host: "h-${V}-${V}", port: "${PORT_X}"}
        provider: {baseUrl: "https://${V}", fallback: {baseUrl: "${V}"}}
        mcp: {kb: {command: "${V}", env: {K: "${V}"}}}
        channels: {mine: {_adapter: x, opt: "${V}", list: ["${V}"], e: "${EMPTY}", odd: "${A:-x}"}}
        tasks: [{schedule: "${V}", prompt: "${V}", target: {channel: "${V}", chatId: "${V}"}}]
        escalation: {target: {channel: "${V}"}}
    """)
    c = load_config(d)
    assert c["name"] == "${V}" and c["systemPrompt"] == "hi ${V}" and c["persona"]["role"] == "${V}"
    assert c["codex"]["addDirs"] == ["val/a"]
    assert c["gateway"] == {"host": "h-val-val", "port": 4100}
    assert c["provider"]["baseUrl"] == "https://val" and c["provider"]["fallback"]["baseUrl"] == "val"
    assert c["mcp"]["kb"] == {"command": "val", "env": {"K": "val"}}
    mine = c["channels"]["mine"]
    assert mine["opt"] == "val" and mine["list"] == ["val"] and mine["e"] == ""
    assert mine["odd"] == "${A:-x}"  # no default syntax: a variable literally named "A:-x"
    assert c["tasks"][0]["schedule"] == "${V}" and c["tasks"][0]["prompt"] == "${V}"
    assert c["tasks"][0]["target"] == {"channel": "val", "chatId": "val"}
    assert c["escalation"]["target"] == {"channel": "val"}


def test_unset_placeholder_outside_secrets_stays_literal(bot, monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    c = load_config(bot(BASE + "channels: {feishu: {appId: '${NOPE}'}}\n"))
    assert c["channels"]["feishu"]["appId"] == "${NOPE}"


@pytest.mark.parametrize("section, field", [
    ("gateway: {token: '${NOPE_T}'}", "gateway.token"),
    ("provider: {apiKey: 'k-${NOPE_T}'}", "provider.apiKey"),
    ("provider: {fallback: {apiKey: '${NOPE_T}'}}", "provider.fallback.apiKey"),
    ("oauthToken: '${NOPE_T}'", "oauthToken"),
    ("channels: {slack: {botToken: '${NOPE_T}'}}", "channels.slack.botToken"),
    ("channels: {feishu: {appSecret: '${NOPE_T}'}}", "channels.feishu.appSecret"),
    ("channels: {mine: {_adapter: x, webhookSecret: '${NOPE_T}'}}", "channels.mine.webhookSecret"),
    ("mcp: {kb: {command: x, env: {KB_TOKEN: '${NOPE_T}'}}}", "mcp.kb.env.KB_TOKEN"),
])
def test_unset_placeholder_in_secret_is_an_error(bot, monkeypatch, section, field):
    monkeypatch.delenv("NOPE_T", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(bot(BASE + section + "\n"))
    assert str(info.value) == (f'golem.yaml: "{field}" uses ${{NOPE_T}}, but the environment '
                               "variable NOPE_T is not set (set it in the environment or in .env)")


def test_empty_variable_resolves_in_secret(bot, monkeypatch):
    monkeypatch.setenv("EMPTY_T", "")
    assert load_config(bot(BASE + "gateway: {token: '${EMPTY_T}'}\n"))["gateway"]["token"] == ""


def test_gateway_port_from_placeholder_must_be_numeric(bot, monkeypatch):
    monkeypatch.setenv("BAD_PORT", "eighty")
    with pytest.raises(ConfigError, match='"gateway.port" must be an integer, got "eighty"'):
        load_config(bot(BASE + "gateway: {port: '${BAD_PORT}'}\n"))


# -- masking -------------------------------------------------------------------------------------
def test_mask_secret():
    assert mask_secret("sk-abcdefghijkl-ef") == "sk-••••ef"
    assert mask_secret("short") == "••••"
    assert mask_secret("12345678901") == "••••"
    assert mask_secret("") == ""
    assert mask_secret(None) == ""


def test_mask_secrets_covers_fields_and_placeholders(bot, monkeypatch):
    monkeypatch.setenv("APP_ID", "cli_a1b2c3d4e5f6")
    d = bot(BASE + textwrap.dedent("""
        oauthToken: sk-ant-oat01-abcdefgh
        provider: {apiKey: sk-provider-123456, model: m, fallback: {apiKey: sk-fallback-98765}}
        gateway: {token: gateway-token-xyz, port: 3000}
        mcp: {kb: {command: npx, env: {ANY: plain-value-here}}}
        channels:
          feishu: {appId: "${APP_ID}", appSecret: feishu-secret-value, domain: feishu}
          mine: {_adapter: x, signingKey: abcdefghijklmnop, label: visible}
    """))
    c = load_config(d)
    m = mask_secrets(c)
    assert m["oauthToken"] == "sk-••••gh"
    assert m["provider"] == {"apiKey": "sk-••••56", "model": "m", "fallback": {"apiKey": "sk-••••65"},
                             "failoverThreshold": 3, "fallbackRecoveryMs": 60000}
    assert m["gateway"] == {"token": "gat••••yz", "port": 3000}
    assert m["mcp"]["kb"]["env"]["ANY"] == "pla••••re"
    assert m["channels"]["feishu"] == {"appId": "cli••••f6", "appSecret": "fei••••ue", "domain": "feishu"}
    assert m["channels"]["mine"]["signingKey"] == "abc••••op"
    assert m["channels"]["mine"]["label"] == "visible"
    assert c["gateway"]["token"] == "gateway-token-xyz"  # the original is untouched
    blob = json.dumps(m)
    for secret in ("sk-ant-oat01-abcdefgh", "gateway-token-xyz", "feishu-secret-value",
                   "cli_a1b2c3d4e5f6", "plain-value-here"):
        assert secret not in blob


@pytest.mark.parametrize("path, secret", [
    (("gateway", "token"), True), ("gateway.token", True), (("gateway", "port"), False),
    (("provider", "apiKey"), True), (("provider", "fallback", "apiKey"), True),
    (("provider", "baseUrl"), False), (("oauthToken",), True),
    (("channels", "slack", "botToken"), True), (("channels", "slack", "appToken"), True),
    (("channels", "dingtalk", "clientSecret"), True), (("channels", "wecom", "secret"), True),
    (("channels", "weixin", "token"), True), (("channels", "feishu", "appId"), False),
    (("channels", "feishu", "domain"), False), (("mcp", "kb", "env", "X"), True),
    (("mcp", "kb", "command"), False), (("name",), False),
])
def test_is_secret_field(path, secret):
    assert is_secret_field(path) is secret


# -- .env ----------------------------------------------------------------------------------------
def test_dotenv_line_rules(tmp_path, monkeypatch):
    for k in ("A1", "B1", "C1", "D1", "E1", "F1", "G1", "H1", "PRESET", "EMPTYSET", "X1"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PRESET", "keep")
    monkeypatch.setenv("EMPTYSET", "")
    env = tmp_path / ".env"
    env.write_text(textwrap.dedent("""\
        # comment
          A1 = spaced value  
        B1="double quoted"
        C1='single'
        D1=b # not a comment
        E1=
        =nokey
        F1="mismatched'
        export G1=exported
        H1=a=b=c
        PRESET=override
        EMPTYSET=filled
        noequals
    """))
    applied = load_dotenv(str(env))
    assert applied == {"A1": "spaced value", "B1": "double quoted", "C1": "single",
                       "D1": "b # not a comment", "F1": "\"mismatched'", "G1": "exported",
                       "H1": "a=b=c", "EMPTYSET": "filled"}
    assert os.environ["PRESET"] == "keep"
    assert "E1" not in os.environ
    assert load_dotenv(str(tmp_path / "missing.env")) == {}


def test_env_files_dir_then_cwd(tmp_path, monkeypatch):
    for k in ("ORDER_A", "ORDER_B"):
        monkeypatch.delenv(k, raising=False)
    assistant = tmp_path / "bot"
    assistant.mkdir()
    (assistant / ".env").write_text("ORDER_A=from-dir\n")
    (tmp_path / ".env").write_text("ORDER_A=from-cwd\nORDER_B=cwd-only\n")
    monkeypatch.chdir(tmp_path)
    applied = load_env_files(str(assistant))
    assert os.environ["ORDER_A"] == "from-dir" and os.environ["ORDER_B"] == "cwd-only"
    assert applied == {"ORDER_A": "from-dir", "ORDER_B": "cwd-only"}


# -- line patch ----------------------------------------------------------------------------------
def test_set_top_level_replaces_one_line(bot):
    d = bot("# head\nname: bot  # n\nengine: codex\nmodel: old   # keep? no\nchannels:\n  x: ${Y}\n")
    set_top_level(d, "model", "gpt-5.4")
    assert read(d) == "# head\nname: bot  # n\nengine: codex\nmodel: gpt-5.4\nchannels:\n  x: ${Y}\n"
    set_top_level(d, "engine", "claude-code")
    assert "engine: claude-code\n" in read(d)


def test_set_top_level_inserts_after_first_entry_and_removes(bot):
    d = bot("name: bot\nengine: codex\n")
    set_top_level(d, "model", "sonnet-4.6")
    assert read(d) == "name: bot\nmodel: sonnet-4.6\nengine: codex\n"
    set_top_level(d, "model", None)
    assert read(d) == "name: bot\nengine: codex\n"
    set_top_level(d, "model", None)  # absent: nothing to do
    assert read(d) == "name: bot\nengine: codex\n"


def test_set_top_level_insert_when_first_key_is_a_block(bot):
    d = bot("# c\npersona:\n  role: x\n\nname: bot\nengine: codex")
    set_top_level(d, "model", "m")
    assert read(d) == "# c\npersona:\n  role: x\nmodel: m\n\nname: bot\nengine: codex\n"
    assert load_config(d)["persona"] == {"role": "x"}


@pytest.mark.parametrize("value, written", [
    ("a #b", 'model: "a #b"'), ("a: b", 'model: "a: b"'), ("on", 'model: "on"'),
    ("*ref", 'model: "*ref"'), ("1:30", 'model: "1:30"'), ("0755", 'model: "0755"'),
    ("", 'model: ""'), ("two\nlines", 'model: "two\\nlines"'), ("openrouter/a/b:free", "model: openrouter/a/b:free"),
])
def test_set_top_level_quotes_when_needed(bot, value, written):
    d = bot(BASE)
    set_top_level(d, "model", value)
    assert written + "\n" in read(d)
    assert cfg.parse_yaml(read(d))["model"] == value


def test_set_top_level_replaces_block_value(bot):
    d = bot("name: bot\nmodel: >\n  folded\n  text\n\n# kept\nengine: codex\n")
    set_top_level(d, "model", "m")
    assert read(d) == "name: bot\nmodel: m\n\n# kept\nengine: codex\n"


def test_set_top_level_refuses_bad_key(bot):
    d = bot(BASE)
    with pytest.raises(ConfigError):
        set_top_level(d, "a: b", "x")
    with pytest.raises(ConfigNotFoundError):
        set_top_level(os.path.join(d, "nowhere"), "model", "x")
    with pytest.raises(ConfigNotFoundError):
        patch_config(os.path.join(d, "nowhere"), {"model": "x"})
    assert not os.path.exists(os.path.join(d, "nowhere"))


# -- PATCH ---------------------------------------------------------------------------------------
ORIGINAL = """\
# My assistant — keep this comment
name: bot   # the name
engine: claude-code

custom_key: keep me   # unknown keys survive
timeout: 300
groupChat:
  groupPolicy: mention-only  # policy comment
  historyLimit: 20
gateway:
  port: 3000
  token: ${PATCH_GW_TOKEN}
channels:
  slack:
    botToken: ${PATCH_SLACK}
    appToken: "xapp-quoted-1234567890"
persona:
  role: helper
  boundaries:
    - one
    - two
oauthToken: sk-ant-oat01-secretvalue
"""


@pytest.fixture
def patched(bot, monkeypatch):
    monkeypatch.setenv("PATCH_GW_TOKEN", "gateway-token-abcdef")
    monkeypatch.setenv("PATCH_SLACK", "xoxb-slack-secret-1")
    return bot(ORIGINAL)


def test_patch_round_trip_keeps_everything(patched):
    config, restart = patch_config(patched, {"timeout": 180, "groupChat": {"groupPolicy": "smart"},
                                             "persona": {"boundaries": ["three"]},
                                             "streaming": {"mode": "streaming"}})
    assert restart is False
    assert read(patched) == ORIGINAL.replace("timeout: 300", "timeout: 180").replace(
        "groupPolicy: mention-only  # policy comment", "groupPolicy: smart         # policy comment"
    ).replace("    - one\n    - two\n", "    - three\n") + "streaming:\n  mode: streaming\n"
    assert config["timeout"] == 180
    assert config["groupChat"] == {"groupPolicy": "smart", "historyLimit": 20, "maxTurns": 10}
    assert config["persona"] == {"role": "helper", "boundaries": ["three"]}
    assert config["gateway"]["token"] == "gateway-token-abcdef"  # resolved in memory only
    assert "gateway-token-abcdef" not in read(patched)


def test_patch_null_deletes_and_new_keys_append(patched):
    patch_config(patched, {"persona": {"role": None}, "custom_key": None, "model": "on",
                           "systemPrompt": "line one\nline two", "newUnknown": {"a": [1, "yes"]}})
    text = read(patched)
    assert "custom_key" not in text and "role: helper" not in text
    assert text.endswith('model: "on"\nsystemPrompt: |-\n  line one\n  line two\n'
                         'newUnknown:\n  a:\n    - 1\n    - "yes"\n')
    c = load_config(patched)
    assert c["model"] == "on" and c["systemPrompt"] == "line one\nline two"


def test_patch_masked_or_resolved_echo_is_unchanged(patched):
    before = read(patched)
    masked = mask_secrets(load_config(patched))
    config, restart = patch_config(patched, {"gateway": masked["gateway"],
                                             "channels": masked["channels"],
                                             "oauthToken": masked["oauthToken"]})
    assert read(patched) == before
    assert restart is True  # gateway/channels keys are in the patch (http-api.md table)
    patch_config(patched, {"gateway": {"token": "gateway-token-abcdef"},
                           "channels": {"slack": {"botToken": "${PATCH_SLACK}"}}})
    assert read(patched) == before


@pytest.mark.parametrize("patch, field", [
    ({"gateway": {"token": "new-token"}}, "gateway.token"),
    ({"gateway": {"token": None}}, "gateway.token"),
    ({"gateway": None}, "gateway.token"),
    ({"oauthToken": "other"}, "oauthToken"),
    ({"channels": {"slack": {"botToken": "xox••••zz"}}}, "channels.slack.botToken"),
    ({"channels": {"slack": {"appToken": "xapp-other"}}}, "channels.slack.appToken"),
    ({"provider": {"apiKey": "sk-new"}}, "provider.apiKey"),
    ({"provider": {"fallback": {"apiKey": "sk-new"}}}, "provider.fallback.apiKey"),
    ({"mcp": {"kb": {"command": "x", "env": {"TOKEN": "t"}}}}, "mcp.kb.env.TOKEN"),
    ({"channels": {"feishu": {"appId": "a", "appSecret": "s"}}}, "channels.feishu.appSecret"),
])
def test_patch_rejects_secret_changes(patched, patch, field):
    before = read(patched)
    with pytest.raises(ConfigError) as info:
        patch_config(patched, patch)
    assert str(info.value).startswith(f'"{field}" is a secret and cannot be changed through the API')
    assert read(patched) == before


@pytest.mark.parametrize("patch, message", [
    ({"timeout": "abc"}, 'Config validation failed: "timeout" must be a number, got "abc"'),
    ({"timeout": "300"}, 'Config validation failed: "timeout" must be a number, got "300"'),
    ({"name": None}, 'Config validation failed: "name" is required'),
    ({"name": ""}, 'Config validation failed: "name" must not be empty'),
    ({"engine": None}, 'Config validation failed: "engine" is required'),
    ({"engine": "gpt"}, 'Config validation failed: "engine" must be one of'),
    ({"groupChat": {"groupPolicy": "loud"}}, 'Config validation failed: "groupChat.groupPolicy"'),
    ({"groupChat": "smart"}, 'Config validation failed: "groupChat" must be a mapping'),
    ({"tasks": [{"prompt": "x"}]}, 'Config validation failed: "tasks[0].schedule" is required'),
    ({"timeout": float("inf")}, 'Config validation failed: "timeout" must be a finite number'),
])
def test_patch_invalid_result_is_rejected_and_file_untouched(patched, patch, message):
    before = read(patched)
    with pytest.raises(ConfigError) as info:
        patch_config(patched, patch)
    assert str(info.value).startswith(message)
    assert read(patched) == before
    assert not [f for f in os.listdir(patched) if f.startswith(".tmp")]


@pytest.mark.parametrize("body", [[1], None, "x", 3])
def test_patch_body_must_be_object(patched, body):
    with pytest.raises(ConfigError, match="^Body must be a JSON object$"):
        patch_config(patched, body)


@pytest.mark.parametrize("patch, restart", [
    ({"timeout": 5}, False), ({"maxConcurrent": 2}, False), ({"sessionTtlDays": 2}, False),
    ({"groupChat": {"maxTurns": 2}}, False), ({"streaming": {"mode": "streaming"}}, False),
    ({"persona": {"tone": "dry"}}, False), ({"permissions": {}}, False),
    ({"systemPrompt": "x"}, False), ({"autoContinue": 1}, False), ({"inbox": {"enabled": True}}, False),
    ({"provider": {"model": "m"}}, False), ({"provider": {"failoverThreshold": 2}}, False),
    ({"engine": "codex"}, True), ({"model": "m"}, True), ({"codex": {"mode": "safe"}}, True),
    ({"channels": {}}, True), ({"gateway": {"port": 3001}}, True), ({"mcp": {}}, True),
    ({"provider": {"baseUrl": "https://x"}}, True), ({"provider": {"fallback": {"model": "m"}}}, True),
])
def test_needs_restart_table(patched, patch, restart):
    assert patch_config(patched, patch)[1] is restart


def test_patch_replaces_arrays_and_merges_nested(patched):
    patch_config(patched, {"tasks": [{"name": "a", "schedule": "every 5m", "prompt": "p"}]})
    patch_config(patched, {"tasks": [{"name": "b", "schedule": "daily 09:00", "prompt": "q",
                                      "target": {"channel": "telegram", "chatId": "-100"}}]})
    c = load_config(patched)
    assert [t["name"] for t in c["tasks"]] == ["b"]
    assert c["tasks"][0]["target"]["chatId"] == "-100"
    patch_config(patched, {"channels": {"slack": {"extra": "x"}}})
    assert load_config(patched)["channels"]["slack"]["extra"] == "x"
    assert "botToken: ${PATCH_SLACK}" in read(patched)


def test_patch_values_that_look_like_other_types_stay_strings(patched):
    patch_config(patched, {"persona": {"tone": "yes", "displayName": "0755"},
                           "tasks": [{"schedule": "12:30", "prompt": "null", "name": "true"}]})
    c = load_config(patched)
    assert c["persona"]["tone"] == "yes" and c["persona"]["displayName"] == "0755"
    assert c["tasks"][0] == {"schedule": "12:30", "prompt": "null", "name": "true", "enabled": True}
    import yaml  # and YAML 1.1 readers agree
    assert yaml.safe_load(read(patched))["persona"]["tone"] == "yes"


def test_patch_keeps_user_sequence_style(bot):
    d = bot("name: bot\nengine: codex\npermissions:\n  allowedPaths:\n  - src\n")
    patch_config(d, {"permissions": {"deniedPaths": ["secret", "keys"]}})
    assert read(d) == ("name: bot\nengine: codex\npermissions:\n  allowedPaths:\n  - src\n"
                       "  deniedPaths:\n  - secret\n  - keys\n")


def test_patch_on_broken_file_reports_line(bot):
    d = bot("name: bot\nengine: codex\ntimeout: [\n")
    with pytest.raises(ConfigError, match=r"golem\.yaml line \d+: could not parse YAML"):
        patch_config(d, {"timeout": 5})


def test_patch_preserves_file_mode(patched):
    os.chmod(os.path.join(patched, "golem.yaml"), 0o600)
    patch_config(patched, {"timeout": 5})
    assert os.stat(os.path.join(patched, "golem.yaml")).st_mode & 0o777 == 0o600


def test_concurrent_patches_from_greenlets_all_land(patched):
    import gevent
    jobs = [gevent.spawn(patch_config, patched, {"mcp": {f"srv{i}": {"command": f"c{i}"}}})
            for i in range(20)]
    gevent.joinall(jobs, raise_error=True, timeout=30)
    assert sorted(load_config(patched)["mcp"]) == sorted(f"srv{i}" for i in range(20))
    assert "# My assistant — keep this comment" in read(patched)


def test_concurrent_patches_from_threads_all_land(patched):
    errors = []

    def worker(n):
        try:
            for j in range(4):
                patch_config(patched, {"mcp": {f"t{n}-{j}": {"command": "x"}}})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(load_config(patched)["mcp"]) == 24


def test_concurrent_patches_from_processes_all_land(patched):
    script = ("import sys; from golembot.config import patch_config\n"
              "for j in range(5):\n"
              "    patch_config(sys.argv[1], {'mcp': {f'p{sys.argv[2]}-{j}': {'command': 'x'}}})\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, "-c", script, patched, str(n)], env=env)
             for n in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert len(load_config(patched)["mcp"]) == 15


def test_describe_fields_lists_every_field():
    names = [f["name"] for f in cfg.describe_fields()]
    assert names == list(cfg.FIELDS)
    timeout = next(f for f in cfg.describe_fields() if f["name"] == "timeout")
    assert timeout["default"] == 600 and timeout["hot"] and not timeout["restart"]


def test_patch_echo_of_resolved_lists_keeps_placeholders(bot, monkeypatch):
    monkeypatch.setenv("ECHO_DIR", "/srv/data")
    d = bot(BASE + "codex:\n  addDirs:\n    - ${ECHO_DIR}/in\n    - out\n"
            "tasks:\n  - schedule: every 5m\n    prompt: p\n    target: {channel: '${ECHO_DIR}'}\n")
    before = read(d)
    c = load_config(d)
    masked = mask_secrets(c)
    patch_config(d, {"codex": {"addDirs": c["codex"]["addDirs"]}, "tasks": masked["tasks"]})
    assert read(d) == before
    patch_config(d, {"codex": {"addDirs": ["${ECHO_DIR}/in", "elsewhere"]}})
    assert "- ${ECHO_DIR}/in\n    - elsewhere\n" in read(d)


def test_patch_never_writes_a_masked_value(bot, monkeypatch):
    d = bot(BASE + "persona:\n  role: helper\n")
    before = read(d)
    with pytest.raises(ConfigError, match=r'"abc••••yz" is a masked value'):
        patch_config(d, {"persona": {"role": "abc••••yz"}})
    assert read(d) == before


def test_patch_leaves_odd_scalars_meaning_intact(bot):
    odd = textwrap.dedent("""\
        name: bot
        engine: codex
        extra:
          a: 0755
          b: yes
          d: 2024-01-01
          g: 1_000
          l: 2001-12-14t21:59:43.10-05:00
          m: =
          o: 0b101
          v: !!str 12
          w: 0o17
          base: &b {k: 1}
          merged:
            <<: *b
            j: 2
        """)
    d = bot(odd)
    before = cfg.parse_yaml(read(d))
    patch_config(d, {"timeout": 5})
    after = cfg.parse_yaml(read(d))
    assert after.pop("timeout") == 5
    assert after == before
    text = read(d)
    for line in ("  a: 0755", "  b: yes", "  d: 2024-01-01", "  g: 1_000", "  v: !!str 12",
                 "    <<: *b"):
        assert line + "\n" in text


def test_patch_yaml_body_variants(bot):
    d = bot("")
    with pytest.raises(ConfigError, match='"name" is required'):
        patch_config(d, {"engine": "codex"})
    patch_config(d, {"name": "b", "engine": "codex"})
    assert load_config(d)["name"] == "b"
    d2 = bot("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping of fields"):
        patch_config(d2, {"name": "b"})


def test_readme_covers_every_field():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        docs = fh.read()
    missing = [name for name in cfg.FIELDS if f"`{name}`" not in docs]
    assert not missing
