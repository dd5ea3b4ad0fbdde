"""``golem.yaml``: loading, validation, ``${VAR}`` placeholders, ``.env`` files and safe edits.

An assistant is configured by one YAML file. It is re-read at the start of every turn, so this
module is the single gatekeeper between what a user typed and what the rest of golembot sees:

* :func:`load_config` parses with YAML 1.2 rules (``yes``/``on`` stay strings, ``0755`` is 755,
  ``12:30`` stays a string), checks every field and raises **one** :class:`ConfigError` naming the
  field and the problem — never a traceback, never a silently dropped value.
* :func:`set_top_level` is the one-line patch behind ``/engine`` and ``/model``.
* :func:`patch_config` is ``PATCH /api/config``: it edits the raw YAML tree with ruamel's
  round-trip mode so comments, key order, unknown keys and ``${VAR}`` placeholders survive, and it
  never writes a resolved secret.
* :func:`mask_secrets` is the one masking helper for everything that leaves the process.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import re
import threading

import yaml

from .files import atomic_write_text

log = logging.getLogger("golembot.config")

CONFIG_FILE = "golem.yaml"
ENGINES = ("cursor", "claude-code", "opencode", "codex")

#: Effective defaults of the scalar fields and of the always-present gateway sections.
DEFAULTS = {
    "timeout": 600,
    "sessionTtlDays": 30,
    "maxConcurrent": 10,
    "maxQueuePerSession": 3,
    "autoContinue": 5,
    "skipPermissions": True,
    "groupChat": {"groupPolicy": "mention-only", "historyLimit": 20, "maxTurns": 10},
    "streaming": {"mode": "buffered", "showToolCalls": False},
}
#: Defaults filled in *inside* a section only when the user wrote that section.
SECTION_DEFAULTS = {
    "provider": {"failoverThreshold": 3, "fallbackRecoveryMs": 60000},
    "gateway": {},
    "inbox": {"enabled": False, "retentionDays": 7},
    "historyFetch": {"enabled": False, "pollIntervalMinutes": 15, "initialLookbackMinutes": 60},
}

#: Top-level keys a PATCH can change without a restart (http-api.md); everything else that is
#: not listed in RESTART_KEYS is treated as hot too.
HOT_KEYS = ("timeout", "maxConcurrent", "sessionTtlDays", "groupChat", "streaming", "persona",
            "permissions", "systemPrompt")
RESTART_KEYS = ("engine", "model", "codex", "channels", "gateway", "mcp")
RESTART_PROVIDER_KEYS = ("baseUrl", "apiKey", "fallback")

#: Field names that hold credentials wherever they appear under ``channels.<name>``.
SECRET_FIELD_NAMES = frozenset({
    "apiKey", "token", "appSecret", "clientSecret", "secret", "botToken", "appToken",
    "oauthToken", "password", "encryptKey", "verificationToken",
})
_SECRET_PATHS = frozenset({("gateway", "token"), ("provider", "apiKey"),
                           ("provider", "fallback", "apiKey"), ("oauthToken",)})
#: Sections whose strings may hold ``${VAR}`` placeholders (config.md §4).
ENV_SECTIONS = ("codex", "channels", "gateway", "provider", "oauthToken", "mcp")

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
MASK = "••••"


class ConfigError(ValueError):
    """An invalid ``golem.yaml`` (or config edit). ``str()`` is the whole user-facing message;
    ``field`` is the dotted field name when one is to blame, ``detail`` the message without the
    ``golem.yaml:`` prefix (PATCH reports it as ``Config validation failed: <detail>``)."""

    def __init__(self, message: str, field: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.field = field
        self.detail = detail or message


class ConfigNotFoundError(ConfigError, FileNotFoundError):
    """There is no ``golem.yaml`` in the directory."""


class Config(dict):
    """The loaded configuration: a plain dict that also remembers which values came from
    ``${VAR}`` placeholders, so :func:`mask_secrets` can hide them too."""

    placeholder_paths: frozenset = frozenset()


# -- YAML 1.2 on PyYAML ---------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and duplicate keys refused.

    PyYAML speaks YAML 1.1, where ``on`` is True, ``0755`` is octal 493, ``1:30`` is 90 and
    ``2024-01-01`` a date. A bot named ``on`` or a chat id ``12:30`` must not change meaning.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f'duplicate key "{key_node.value}"', key_node.start_mark)
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_DROPPED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int",
                              re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))


def _construct_bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader, node):
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
# Explicit ``!!timestamp`` stays text: dates are strings in golem.yaml. A bare ``<<`` value
# (not a merge key) is text too.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:merge", yaml.SafeLoader.construct_yaml_str)

_STR_TAG = "tag:yaml.org,2002:str"


def parse_yaml(text: str, source: str = CONFIG_FILE):
    """Parse YAML 1.2-style; a syntax error becomes ``<source> line N: could not parse YAML: …``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"{source} line {mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: could not parse YAML: {problem}",
                          detail=f"could not parse YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: could not parse YAML: {exc}",
                          detail=f"could not parse YAML: {exc}") from None


def plain_scalar_is_string(text: str) -> bool:
    """Whether ``text`` written unquoted would load back as the same string."""
    if not text or text != text.strip() or "\n" in text:
        return False
    if text[0] in "!&*-?:,[]{}#|>@`\"'%" or ": " in text or " #" in text or text.endswith(":"):
        return False
    # Quote what YAML 1.1 tools (PyYAML, older editors) would misread too: ``on``, ``0755``…
    return _implicit_tag(text) == _STR_TAG and _implicit_tag(text, yaml.SafeLoader) == _STR_TAG


def _implicit_tag(text: str, loader=_Loader) -> str:
    """The tag ``loader`` gives the plain (unquoted) scalar ``text``."""
    resolvers = list(loader.yaml_implicit_resolvers.get(text[:1] if text else "", []))
    resolvers += loader.yaml_implicit_resolvers.get(None, [])
    for tag, regexp in resolvers:
        if regexp.match(text):
            return tag
    return _STR_TAG


def yaml_scalar(value) -> str:
    """``value`` as a YAML flow scalar that loads back unchanged (quoted when it must be)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    return text if plain_scalar_is_string(text) else json.dumps(text, ensure_ascii=False)


# -- validation -----------------------------------------------------------------------------------
def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        short = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(short, ensure_ascii=False)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _fail(path: str, problem: str):
    detail = f'"{path}" {problem}'
    raise ConfigError(f"{CONFIG_FILE}: {detail}", field=path, detail=detail)


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def v_str(v, path, *, required=False):
    if not isinstance(v, str):
        _fail(path, f"must be a string, got {_describe(v)}")
    if required and not v.strip():
        _fail(path, "must not be empty")
    return v


def v_bool(v, path):
    if not isinstance(v, bool):
        hint = " (write true or false)" if isinstance(v, str) and v.lower() in (
            "yes", "no", "on", "off", "y", "n") else ""
        _fail(path, f"must be true or false, got {_describe(v)}{hint}")
    return v


def v_number(minimum=None, *, integer=False, exclusive=False, numeric_strings=False):
    """A number check; ``numeric_strings`` accepts ``"3000"`` (values from ``${VAR}``)."""
    kind = "an integer" if integer else "a number"

    def check(v, path):
        if numeric_strings and isinstance(v, str) and re.fullmatch(r"\s*[-+]?[0-9]+(\.[0-9]+)?\s*", v):
            v = float(v) if "." in v else int(v)
        if not _is_number(v) or (isinstance(v, float) and not math.isfinite(v)):
            _fail(path, f"must be {kind}, got {_describe(v)}")
        if integer:
            if isinstance(v, float) and not v.is_integer():
                _fail(path, f"must be {kind}, got {_describe(v)}")
            v = int(v)
        if minimum is not None and (v <= minimum if exclusive else v < minimum):
            _fail(path, f"must be {'greater than' if exclusive else 'at least'} {minimum}, got {v}")
        return v
    return check


def v_enum(*choices):
    def check(v, path):
        if v not in choices:
            _fail(path, "must be one of " + ", ".join(choices) + f", got {_describe(v)}")
        return v
    return check


def v_str_list(v, path):
    if not isinstance(v, list):
        _fail(path, f"must be a list of strings, got {_describe(v)}")
    for i, item in enumerate(v):
        v_str(item, _join(path, i))
    return list(v)


def v_id(v, path):
    """Chat ids and task ids: strings, with numbers (Telegram's ``-100123``) taken as text."""
    if _is_number(v) and not isinstance(v, float):
        return str(v)
    return v_str(v, path)


def v_mapping(v, path) -> dict:
    if not isinstance(v, dict):
        _fail(path, f"must be a mapping, got {_describe(v)}")
    for key in v:
        if not isinstance(key, str):
            _fail(_join(path, str(key)), "must have a text key")
    return v


_warned: set = set()


def _warn_unknown(path: str) -> None:
    if path not in _warned:
        _warned.add(path)
        log.warning('%s: unknown field "%s" is ignored', CONFIG_FILE, path)


def v_section(fields: dict, *, open_=False, required=()):
    """A mapping whose known keys are checked; unknown keys are warned about and dropped,
    or kept as written when ``open_`` (adapter options, MCP server extras)."""
    def check(v, path):
        v_mapping(v, path)
        out = {}
        for key, value in v.items():
            sub = _join(path, key)
            if key not in fields:
                if open_:
                    out[key] = value
                else:
                    _warn_unknown(sub)
                continue
            if value is None:
                continue
            out[key] = fields[key](value, sub)
        for key in required:
            if key not in out:
                _fail(_join(path, key), "is required")
        return out
    return check


def v_str_map(v, path):
    v_mapping(v, path)
    out = {}
    for key, value in v.items():
        if _is_number(value):
            value = str(value)
        out[key] = v_str(value, _join(path, key))
    return out


def v_env_name(v, path):
    v_str(v, path)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        _fail(path, f"must be an environment variable name, got {_describe(v)}")
    return v


def v_timezone(v, path):
    v_str(v, path, required=True)
    try:
        import zoneinfo
        zoneinfo.ZoneInfo(v)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError for odd keys
        _fail(path, f"must be an IANA time zone such as Europe/Berlin, got {_describe(v)}")
    return v


_TARGET = v_section({"channel": lambda v, p: v_str(v, p, required=True), "chatId": v_id},
                    required=("channel",))

_CODEX = v_section({
    "mode": v_enum("safe", "unrestricted"),
    "sandbox": v_enum("read-only", "workspace-write", "danger-full-access"),
    "approval": v_enum("untrusted", "on-request", "never"),
    "search": v_bool,
    "addDirs": v_str_list,
})

_PROVIDER_FIELDS = {
    "baseUrl": v_str, "apiKey": v_str, "model": v_str, "models": v_str_map,
    "codexProfile": v_str, "codexProviderId": v_str, "codexWireApi": v_enum("responses"),
    "codexEnvKey": v_env_name,
}


def _v_fallback(v, path):
    v_mapping(v, path)
    if "fallback" in v:
        _warn_unknown(_join(path, "fallback"))
    return v_section(_PROVIDER_FIELDS)({k: x for k, x in v.items() if k != "fallback"}, path)


_PROVIDER = v_section({**_PROVIDER_FIELDS, "fallback": _v_fallback,
                       "failoverThreshold": v_number(1, integer=True),
                       "fallbackRecoveryMs": v_number(0)})

_PERMISSIONS = v_section({k: v_str_list for k in
                          ("allowedPaths", "deniedPaths", "allowedCommands", "deniedCommands")})

_PERSONA = v_section({"displayName": v_str, "role": v_str, "tone": v_str, "boundaries": v_str_list})

_GROUP_CHAT = v_section({"groupPolicy": v_enum("mention-only", "smart", "always"),
                         "historyLimit": v_number(0, integer=True),
                         "maxTurns": v_number(1, integer=True)})

_STREAMING = v_section({"mode": v_enum("buffered", "streaming"), "showToolCalls": v_bool})

_GATEWAY = v_section({"port": v_number(0, integer=True, numeric_strings=True),
                      "host": lambda v, p: v_str(v, p, required=True), "token": v_str})

_INBOX = v_section({"enabled": v_bool, "retentionDays": v_number(0, exclusive=True)})

_HISTORY_FETCH = v_section({"enabled": v_bool,
                            "pollIntervalMinutes": v_number(0, exclusive=True),
                            "initialLookbackMinutes": v_number(0)})

_ESCALATION = v_section({"enabled": v_bool, "target": _TARGET})

#: Known fields per built-in channel (all strings unless noted); other keys go to the adapter.
CHANNEL_FIELDS = {
    "feishu": {"appId": v_str, "appSecret": v_str, "domain": v_str,
               "pingTimeout": v_number(0, numeric_strings=True)},
    "dingtalk": {"clientId": v_str, "clientSecret": v_str, "robotCode": v_str},
    "wecom": {"botId": v_str, "secret": v_str, "websocketUrl": v_str},
    "slack": {"botToken": v_str, "appToken": v_str},
    "telegram": {"botToken": v_str},
    "discord": {"botToken": v_str, "botName": v_str},
    "weixin": {"token": v_str, "baseUrl": v_str},
}


def _v_channels(v, path):
    v_mapping(v, path)
    out = {}
    for name, conf in v.items():
        if conf is None or conf == {}:
            continue  # an empty entry is a switched-off channel
        fields = dict(CHANNEL_FIELDS.get(name, {}))
        fields["_adapter"] = lambda x, p: v_str(x, p, required=True)
        out[name] = v_section(fields, open_=True)(conf, _join(path, name))
    return out


def _v_mcp_server(v, path):
    conf = v_section({"command": lambda x, p: v_str(x, p, required=True), "args": _v_args,
                      "env": v_str_map}, open_=True)(v, path)
    if "command" not in conf and "url" not in conf:
        _fail(_join(path, "command"), "is required")
    return conf


def _v_args(v, path):
    if not isinstance(v, list):
        _fail(path, f"must be a list of strings, got {_describe(v)}")
    return [str(x) if _is_number(x) else v_str(x, _join(path, i)) for i, x in enumerate(v)]


def _v_mcp(v, path):
    v_mapping(v, path)
    return {name: _v_mcp_server(conf, _join(path, name)) for name, conf in v.items()
            if conf is not None}


_TASK = v_section({
    "id": v_id, "name": lambda v, p: v_str(v, p, required=True),
    "schedule": lambda v, p: v_str(v, p, required=True),
    "prompt": lambda v, p: v_str(v, p, required=True),
    "target": _TARGET, "enabled": v_bool, "timeout": v_number(0, exclusive=True),
}, required=("schedule", "prompt"))


def _v_tasks(v, path):
    if not isinstance(v, list):
        _fail(path, f"must be a list of tasks, got {_describe(v)}")
    out, names = [], set()
    for i, item in enumerate(v):
        task = _TASK(item, _join(path, i))
        task.setdefault("name", f"task-{i}")
        task.setdefault("enabled", True)
        if task["name"] in names:
            _fail(_join(_join(path, i), "name"), f'{_describe(task["name"])} is used by another task')
        names.add(task["name"])
        out.append(task)
    return out


def _v_engine(v, path):
    v_str(v, path, required=True)
    if v not in ENGINES:
        _fail(path, "must be one of " + ", ".join(ENGINES) + f", got {_describe(v)}")
    return v


#: Every top-level field and its check, in the order golem.yaml documents them.
FIELDS = {
    "name": lambda v, p: v_str(v, p, required=True),
    "engine": _v_engine,
    "model": v_str,
    "skipPermissions": v_bool,
    "codex": _CODEX,
    "permissions": _PERMISSIONS,
    "systemPrompt": v_str,
    "persona": _PERSONA,
    "timeout": v_number(0),
    "sessionTtlDays": v_number(0, exclusive=True),
    "maxConcurrent": v_number(1, integer=True),
    "maxQueuePerSession": v_number(0, integer=True),
    "autoContinue": v_number(0, integer=True),
    "provider": _PROVIDER,
    "oauthToken": v_str,
    "mcp": _v_mcp,
    "channels": _v_channels,
    "gateway": _GATEWAY,
    "groupChat": _GROUP_CHAT,
    "streaming": _STREAMING,
    "tasks": _v_tasks,
    "inbox": _INBOX,
    "historyFetch": _HISTORY_FETCH,
    "escalation": _ESCALATION,
    "timezone": v_timezone,
}


def validate(data) -> dict:
    """Check a parsed (and placeholder-resolved) document; return the normalised config
    without defaults. Raises :class:`ConfigError` on the first problem."""
    if data is None:
        _fail("name", 'is required (golem.yaml is empty; it needs at least "name" and "engine")')
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_FILE}: must be a mapping of fields, got {_describe(data)}",
                          detail=f"must be a mapping of fields, got {_describe(data)}")
    v_mapping(data, "")
    for key in ("name", "engine"):
        if data.get(key) is None:
            _fail(key, "is required")
    out = {}
    for key, value in data.items():
        if key not in FIELDS:
            _warn_unknown(key)
            continue
        if value is None:
            continue
        result = FIELDS[key](value, key)
        if (key == "codex" and not result) or (key == "model" and not result.strip()):
            continue
        out[key] = result
    return out


def apply_defaults(config: dict) -> dict:
    """Fill scalar defaults, the gateway-wide sections, and defaults inside present sections."""
    for key, default in DEFAULTS.items():
        if isinstance(default, dict):
            config[key] = {**default, **(config.get(key) or {})}
        else:
            config.setdefault(key, default)
    for key, defaults in SECTION_DEFAULTS.items():
        if key in config:
            config[key] = {**defaults, **config[key]}
    return config


# -- placeholders ---------------------------------------------------------------------------------
def _path_key(path) -> tuple:
    if isinstance(path, str):
        return tuple(path.replace("[", ".").replace("]", "").split("."))
    return tuple(str(p) for p in path)


def _looks_secret(name: str) -> bool:
    low = name.lower()
    return name in SECRET_FIELD_NAMES or any(w in low for w in ("token", "secret", "password",
                                                                  "passwd")) or low.endswith("key")


def is_secret_field(path) -> bool:
    """Whether the value at ``path`` (tuple of keys, or ``"a.b.c"``) is a credential."""
    p = _path_key(path)
    if p in _SECRET_PATHS:
        return True
    if len(p) == 3 and p[0] == "channels":
        return _looks_secret(p[2])
    return len(p) == 4 and p[0] == "mcp" and p[2] == "env"


def _display(path: tuple) -> str:
    out = ""
    for part in path:
        out = _join(out, int(part) if part.isdigit() and out.startswith("tasks") else part)
    return out


def _resolve(node, path: tuple, found: set, unresolved: list, env):
    if isinstance(node, dict):
        return {k: _resolve(v, path + (str(k),), found, unresolved, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, path + (str(i),), found, unresolved, env) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        def sub(m):
            name = m.group(1)
            if name in env:
                return env[name]
            unresolved.append((path, name))
            return m.group(0)
        value = _PLACEHOLDER.sub(sub, node)
        if value != node:
            found.add(path)
        return value
    return node


def resolve_placeholders(data: dict, env=None) -> tuple[dict, frozenset]:
    """Replace ``${VAR}`` in the sections config.md §4 lists. Returns ``(data, paths)`` where
    ``paths`` are the value paths that came from placeholders. An unset variable stays literal,
    except in a secret field, where it is an error naming the variable."""
    env = os.environ if env is None else env
    found: set = set()
    unresolved: list = []
    out = dict(data)
    for key in ENV_SECTIONS:
        if key in out:
            out[key] = _resolve(out[key], (key,), found, unresolved, env)
    if isinstance(out.get("escalation"), dict) and "target" in out["escalation"]:
        out["escalation"] = dict(out["escalation"])
        out["escalation"]["target"] = _resolve(out["escalation"]["target"],
                                               ("escalation", "target"), found, unresolved, env)
    if isinstance(out.get("tasks"), list):
        tasks = []
        for i, task in enumerate(out["tasks"]):
            if isinstance(task, dict) and "target" in task:
                task = dict(task)
                task["target"] = _resolve(task["target"], ("tasks", str(i), "target"),
                                          found, unresolved, env)
            tasks.append(task)
        out["tasks"] = tasks
    for path, name in unresolved:
        if is_secret_field(path):
            field = _display(path)
            detail = (f'"{field}" uses ${{{name}}}, but the environment variable {name} is not set '
                      f"(set it in the environment or in .env)")
            raise ConfigError(f"{CONFIG_FILE}: {detail}", field=field, detail=detail)
    return out, frozenset(found)


# -- loading --------------------------------------------------------------------------------------
_cache: dict = {}
_cache_lock = threading.Lock()


def config_path(dir) -> str:
    return os.path.join(os.path.abspath(os.fspath(dir)), CONFIG_FILE)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ConfigNotFoundError(f"No {CONFIG_FILE} in {os.path.dirname(path)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{CONFIG_FILE}: is not valid UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE}: cannot be read ({exc.strerror})") from None


def _require_file(dir) -> None:
    path = config_path(dir)
    if not os.path.isfile(path):
        raise ConfigNotFoundError(f"No {CONFIG_FILE} in {os.path.dirname(path)}")


def _parsed(path: str):
    """The parsed document, cached by (inode, mtime, size): parsing on every IM message is waste."""
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    if stamp is not None:
        with _cache_lock:
            hit = _cache.get(path)
        if hit and hit[0] == stamp:
            return copy.deepcopy(hit[1])
    data = parse_yaml(_read_text(path))
    if stamp is not None:
        with _cache_lock:
            _cache[path] = (stamp, copy.deepcopy(data))
    return data


def build_config(data, env=None) -> Config:
    """Parsed document → validated :class:`Config` with placeholders resolved and defaults."""
    if isinstance(data, dict):
        data, paths = resolve_placeholders(data, env)
    else:
        paths = frozenset()
    config = Config(apply_defaults(validate(data)))
    config.placeholder_paths = paths
    return config


def load_config(dir) -> Config:
    """Read, validate and resolve ``<dir>/golem.yaml`` (see the module docstring)."""
    return build_config(_parsed(config_path(dir)))


def load_config_text(text: str, env=None) -> Config:
    """:func:`load_config` for YAML text (used to check an edit before it is written)."""
    return build_config(parse_yaml(text), env)


# -- .env -----------------------------------------------------------------------------------------
def load_dotenv(path) -> dict:
    """Load one ``.env`` file (config.md §5); returns the variables it set.

    A variable already set to a non-empty value is never overridden; empty values are skipped;
    one pair of surrounding quotes is removed; ``export NAME=`` is accepted; no escapes and no
    inline comments (``A=b # c`` is ``b # c``, since ``#`` is common in tokens).
    """
    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    applied = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        eq = line.find("=")
        if eq < 1:
            continue
        key, value = line[:eq].strip(), line[eq + 1:].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if not key or not value or os.environ.get(key):
            continue
        os.environ[key] = value
        applied[key] = value
    return applied


def load_env_files(dir=None) -> dict:
    """``<dir>/.env`` then ``./.env`` (decisions.md); set variables always win."""
    applied, seen = {}, set()
    for path in (os.path.join(os.fspath(dir or "."), ".env"), os.path.join(os.getcwd(), ".env")):
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        applied.update(load_dotenv(path))
    return applied


# -- masking --------------------------------------------------------------------------------------
def mask_secret(value) -> str:
    """``sk-••••ef``: first 3 and last 2 characters of a long secret; short ones fully masked."""
    if value is None or value == "":
        return ""
    text = str(value)
    return f"{text[:3]}{MASK}{text[-2:]}" if len(text) >= 12 else MASK


def mask_secrets(config: dict, placeholder_paths=None) -> dict:
    """A deep copy of ``config`` with every secret field and every value that came from a
    ``${VAR}`` placeholder masked."""
    paths = placeholder_paths if placeholder_paths is not None else getattr(
        config, "placeholder_paths", frozenset())
    paths = {_path_key(p) for p in paths}

    def walk(node, path):
        if isinstance(node, dict):
            return {k: walk(v, path + (str(k),)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (str(i),)) for i, v in enumerate(node)]
        if isinstance(node, str) and node and (is_secret_field(path) or path in paths):
            return mask_secret(node)
        return node
    return walk(config, ())


def secret_values(config: dict) -> set:
    """Every non-empty secret string of a loaded config, plus placeholder-derived values of 8+
    characters, for scrubbing logs and payloads."""
    paths = {_path_key(p) for p in getattr(config, "placeholder_paths", ())}
    found = set()

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (str(k),))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (str(i),))
        elif isinstance(node, str) and node and (is_secret_field(path) or
                                                 (path in paths and len(node) >= 8)):
            found.add(node)
    walk(config, ())
    return found


# -- locking --------------------------------------------------------------------------------------
_locks: dict = {}
_locks_guard = threading.Lock()
_depth: dict = {}


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("threading")


def _owner():
    """Who holds a lock: the greenlet under gevent, the thread otherwise."""
    if _gevent_patched():
        import gevent
        return id(gevent.getcurrent())
    return threading.get_ident()


def _dir_lock(real: str):
    with _locks_guard:
        lock = _locks.get(real)
        if lock is None:
            if _gevent_patched():
                from gevent.lock import RLock
                lock = RLock()
            else:
                lock = threading.RLock()
            _locks[real] = lock
        return lock


@contextlib.contextmanager
def config_lock(dir, timeout: float = 10.0):
    """Serialise writers of ``<dir>/golem.yaml``: a re-entrant lock inside the process
    (greenlet-aware under gevent) and an ``flock`` on ``.golem/config.lock`` across processes
    (gunicorn workers, the CLI). A PATCH, ``/model`` and ``init`` never interleave."""
    real = os.path.realpath(os.fspath(dir))
    with _dir_lock(real):
        key = (real, _owner())
        depth = _depth.get(key, 0)
        fd = _flock(real, timeout) if depth == 0 else None
        _depth[key] = depth + 1
        try:
            yield
        finally:
            if depth:
                _depth[key] = depth
            else:
                _depth.pop(key, None)
            if fd is not None:
                os.close(fd)


def _flock(real: str, timeout: float):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    if not os.path.isdir(real):
        return None
    folder = os.path.join(real, ".golem")
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, "config.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None  # read-only directory: the in-process lock still holds
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise ConfigError(f"{CONFIG_FILE} is being edited by another process; try again")
            _pause(0.02)


def _pause(seconds: float) -> None:
    if _gevent_patched():
        import gevent
        gevent.sleep(seconds)
    else:
        import time
        time.sleep(seconds)


def _write(dir, text: str) -> None:
    path = config_path(dir)
    mode = None
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777
    atomic_write_text(path, text)
    if mode is not None:
        with contextlib.suppress(OSError):
            os.chmod(path, mode)
    with _cache_lock:
        _cache.pop(path, None)


# -- line patch -----------------------------------------------------------------------------------
def _entry_end(lines: list, start: int) -> int:
    """Index after the top-level entry starting at ``lines[start]`` (its indented continuation
    lines and blank lines between them belong to it)."""
    end = start + 1
    last = end
    while end < len(lines):
        line = lines[end]
        if line.strip() == "":
            end += 1
            continue
        if line[0] in " \t":
            end += 1
            last = end
            continue
        break
    return last


def set_top_level(dir, key: str, value) -> None:
    """Set (or with ``None`` remove) one top-level scalar by editing only its line.

    ``/engine`` and ``/model`` use this, so everything else the user wrote — comments,
    placeholders, other keys, formatting — stays byte for byte. The value is YAML-quoted when
    written raw it would parse differently (``#``, ``: ``, ``yes``-looking text is fine in 1.2).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ConfigError(f'cannot set "{key}": not a top-level field name')
    _require_file(dir)
    with config_lock(dir):
        text = _read_text(config_path(dir))
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        pattern = re.compile(rf"^{re.escape(key)}\s*:(\s|$)")
        index = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
        new = [] if value is None else [f"{key}: {yaml_scalar(value)}\n"]
        if index is not None:
            lines[index:_entry_end(lines, index)] = new
        elif new:
            first = next((i for i, line in enumerate(lines)
                          if line.strip() and not line.startswith(("#", " ", "\t", "---"))), None)
            at = _entry_end(lines, first) if first is not None else len(lines)
            lines[at:at] = new
        else:
            return
        updated = "".join(lines)
        parse_yaml(updated)  # never write a file that no longer parses
        if updated != text:
            _write(dir, updated)


# -- PATCH /api/config ----------------------------------------------------------------------------
def _rt_timestamp(constructor, node):
    """ruamel re-formats full timestamps on dump (``t`` → ``T``, fractions padded); keep them as
    text (written back quoted, same value). Plain dates round-trip unchanged as dates."""
    from ruamel.yaml.constructor import RoundTripConstructor
    from ruamel.yaml.scalarstring import PlainScalarString
    if re.fullmatch(r"\d{4}-\d\d?-\d\d?", node.value):
        return RoundTripConstructor.construct_yaml_timestamp(constructor, node)
    return PlainScalarString(node.value)


_rt_constructor = None


def _rt_yaml():
    global _rt_constructor
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import RoundTripConstructor
    if _rt_constructor is None:
        class _Constructor(RoundTripConstructor):
            """Our own subclass, so ruamel's shared constructor table is left alone."""
        _Constructor.add_constructor("tag:yaml.org,2002:timestamp", _rt_timestamp)
        _rt_constructor = _Constructor
    rt = YAML(typ="rt")
    rt.Constructor = _rt_constructor
    rt.preserve_quotes = True
    rt.width = 4096
    rt.default_flow_style = False
    return rt


def guess_indent(text: str) -> tuple[int, int]:
    """``(mapping indent, dash offset)`` the user's file uses, so that new or rewritten nested
    blocks look like the rest of the file (defaults 2 and 2: ``key:\n  - item``)."""
    mapping = offset = None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for prev, line in zip(lines, lines[1:]):
        if not re.match(r"^\s*(- )?[^\s#][^#]*:\s*(#.*)?$", prev):
            continue
        base = len(prev) - len(prev.lstrip())
        if prev.lstrip().startswith("- "):
            base += 2
        col = len(line) - len(line.lstrip())
        if line.lstrip().startswith("- "):
            if offset is None and col >= base:
                offset = col - base
        elif mapping is None and col > base:
            mapping = col - base
        if mapping is not None and offset is not None:
            break
    mapping = mapping or 2
    return mapping, mapping if offset is None else offset


def _rt_load(text: str):
    from ruamel.yaml.error import MarkedYAMLError
    try:
        data = _rt_yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{CONFIG_FILE} line {mark.line + 1}" if mark else CONFIG_FILE
        raise ConfigError(f"{where}: could not parse YAML: {exc.problem or exc.context}") from None
    except Exception as exc:  # noqa: BLE001 - ruamel raises several unrelated types
        raise ConfigError(f"{CONFIG_FILE}: could not parse YAML: {exc}") from None
    return data


def _to_yaml_node(value, path: str):
    """A JSON value as ruamel nodes; strings quoted when our loader would read them otherwise."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString
    if isinstance(value, dict):
        node = CommentedMap()
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError("Config validation failed: keys must be strings")
            if v is not None:
                node[k] = _to_yaml_node(v, _join(path, k))
        return node
    if isinstance(value, list):
        return CommentedSeq([_to_yaml_node(v, _join(path, i)) for i, v in enumerate(value)])
    if isinstance(value, str):
        if "\n" in value and value == value.strip() and "\r" not in value:
            return LiteralScalarString(value)
        return value if plain_scalar_is_string(value) else DoubleQuotedScalarString(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f'Config validation failed: "{path}" must be a finite number', field=path)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise ConfigError(f"Config validation failed: unsupported value at {path}")


def _plain(node):
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _same(a, b) -> bool:
    """Structural equality that keeps ``True`` and ``1`` apart."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b if not isinstance(a, str) else (
        isinstance(b, str) and str(a) == str(b))


def _echo_of(raw, value, env, shown=()) -> bool:
    """Whether ``value`` sent in a PATCH is the current value shown back — as written, as loaded
    (placeholders resolved, defaults filled) or masked — so the user's ``${VAR}``, quoting and
    layout are left alone. ``shown`` holds the loaded and masked views at this path."""
    if any(_same(value, view) for view in shown):
        return True
    if isinstance(raw, list) and isinstance(value, list):
        return len(raw) == len(value) and all(_echo_of(r, v, env) for r, v in zip(raw, value))
    if isinstance(raw, dict) and isinstance(value, dict):
        return set(raw) == set(value) and all(_echo_of(raw[k], value[k], env) for k in raw)
    if isinstance(raw, str) and isinstance(value, str):
        resolved = _PLACEHOLDER.sub(lambda m: env.get(m.group(1), m.group(0)), raw)
        if value in (raw, resolved):
            return True
        return MASK in value and value == mask_secret(resolved)
    if isinstance(raw, bool) or isinstance(value, bool):
        return isinstance(raw, bool) and isinstance(value, bool) and raw == value
    return _is_number(raw) and _is_number(value) and raw == value



def _step(views: tuple, key) -> tuple:
    """The loaded/masked views one level down (``key`` is a dict key or list index)."""
    out = []
    for view in views:
        if isinstance(view, dict) and isinstance(key, str) and key in view:
            out.append(view[key])
        elif isinstance(view, list) and isinstance(key, int) and key < len(view):
            out.append(view[key])
    return tuple(out)


def _rebuild(raw, value, env, path: str, shown=()):
    """The node to store for ``value`` where ``raw`` was: parts of ``value`` that merely echo
    the current value (a list sent back from the dashboard with resolved or masked values, or
    with defaults filled in) keep the raw node, so placeholders, quoting and comments inside
    replaced arrays survive."""
    from ruamel.yaml.comments import CommentedSeq
    if raw is not None and _echo_of(raw, value, env, shown):
        return raw
    if isinstance(value, dict) and isinstance(raw, dict):
        for key in [k for k in raw if k not in value or value[k] is None]:
            del raw[key]
        for key, item in value.items():
            if item is not None:
                raw[key] = _rebuild(raw.get(key), item, env, _join(path, key), _step(shown, key))
        return raw
    if isinstance(value, list):
        old = raw if isinstance(raw, list) else []
        return CommentedSeq([_rebuild(old[i] if i < len(old) else None, item, env,
                                      _join(path, i), _step(shown, i))
                             for i, item in enumerate(value)])
    return _to_yaml_node(value, path)


def _merge(node, patch: dict, path: tuple, env, shown=()) -> None:
    for key, value in patch.items():
        if not isinstance(key, str):
            raise ConfigError("Config validation failed: keys must be strings")
        sub = path + (key,)
        if value is None:
            node.pop(key, None)
            continue
        current = node.get(key)
        below = _step(shown, key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value, sub, env, below)
        elif key in node and _echo_of(current, value, env, below):
            continue  # the current value sent back: leave what the user wrote
        else:
            node[key] = _rebuild(current, value, env, _display(sub), below)


def _strings(tree) -> set:
    if isinstance(tree, dict):
        return set().union(*(_strings(v) for v in tree.values())) if tree else set()
    if isinstance(tree, list):
        return set().union(*(_strings(v) for v in tree)) if tree else set()
    return {tree} if isinstance(tree, str) else set()


def _secret_leaves(tree, path=()) -> dict:
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_secret_leaves(v, path + (str(k),)))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.update(_secret_leaves(v, path + (str(i),)))
    elif is_secret_field(path):
        out[path] = tree
    return out


def needs_restart_for(patch: dict) -> bool:
    """The http-api.md table, read from the patch's keys."""
    if any(key in patch for key in RESTART_KEYS):
        return True
    provider = patch.get("provider")
    if "provider" in patch and not isinstance(provider, dict):
        return True  # removing or replacing the whole provider block
    return isinstance(provider, dict) and any(k in provider for k in RESTART_PROVIDER_KEYS)


def patch_config(dir, patch) -> tuple[Config, bool]:
    """Apply ``PATCH /api/config``: deep-merge ``patch`` into the raw YAML tree (objects merge,
    arrays and scalars replace, ``null`` deletes), refuse changes to secret fields, validate the
    result exactly as :func:`load_config` would, then write it atomically.

    Returns ``(loaded config, needs_restart)``. On any error the file is untouched.
    """
    if not isinstance(patch, dict):
        raise ConfigError("Body must be a JSON object")
    env = dict(os.environ)
    _require_file(dir)
    with config_lock(dir):
        text = _read_text(config_path(dir))
        original = parse_yaml(text)
        if original is None:
            original = {}
        if not isinstance(original, dict):
            raise ConfigError(f"{CONFIG_FILE}: must be a mapping of fields, got {_describe(original)}")
        tree = _rt_load(text)
        if tree is None:
            from ruamel.yaml.comments import CommentedMap
            tree = CommentedMap()
        try:
            current = build_config(copy.deepcopy(original), env)
            shown = (current, mask_secrets(current))
        except ConfigError:
            shown = ()  # an invalid file can still be repaired by a PATCH
        # The same merge on our own reading of the file tells what the result must load as.
        expected = copy.deepcopy(original)
        _merge(expected, patch, (), env, shown)
        expected = _plain(expected)
        before, after = _secret_leaves(original), _secret_leaves(expected)
        for path in sorted(set(before) | set(after)):
            if before.get(path) != after.get(path):
                field = _display(path)
                raise ConfigError(f'"{field}" is a secret and cannot be changed through the API; '
                                  f"edit {CONFIG_FILE} on the server instead", field=field)
        masked = sorted(v for v in _strings(expected) - _strings(original) if MASK in v)
        if masked:
            raise ConfigError(f'Config validation failed: "{masked[0]}" is a masked value; send '
                              "the real value, or leave the field out to keep it")
        _merge(tree, patch, (), env, shown)
        indent, offset = guess_indent(text)
        rt = _rt_yaml()
        rt.indent(mapping=indent, sequence=offset + 2, offset=offset)
        buf = io.StringIO()
        rt.dump(tree, buf)
        updated = buf.getvalue()
        try:
            parsed = parse_yaml(updated)
            config = build_config(copy.deepcopy(parsed), env)
        except ConfigError as exc:
            raise ConfigError(f"Config validation failed: {exc.detail}", field=exc.field,
                              detail=exc.detail) from None
        if parsed != expected:  # guards the writer: never write what would load differently
            raise ConfigError("Config validation failed: the edit could not be written "
                              "faithfully; edit golem.yaml by hand")
        if updated != text:
            _write(dir, updated)
    return config, needs_restart_for(patch)


# -- a description of the fields for the dashboard and docs --------------------------------------
_DESCRIPTIONS = {
    "name": ("str", None, "Assistant name (required); used to detect @mentions in groups."),
    "engine": ("enum", None, "cursor, claude-code, opencode or codex (required)."),
    "model": ("str", None, "Model for the engine; engine default when absent."),
    "skipPermissions": ("bool", True, "Claude Code: pass --dangerously-skip-permissions."),
    "codex": ("mapping", None, "Codex options: mode, sandbox, approval, search, addDirs."),
    "permissions": ("mapping", None, "Cursor: allowed/denied paths and commands."),
    "systemPrompt": ("str", None, "Written into AGENTS.md as System Instructions."),
    "persona": ("mapping", None, "displayName, role, tone, boundaries (AGENTS.md)."),
    "timeout": ("number", 600, "Engine timeout per turn, seconds (0 = default)."),
    "sessionTtlDays": ("number", 30, "Sessions unused for longer are forgotten."),
    "maxConcurrent": ("int", 10, "Turns running at once, all sessions together."),
    "maxQueuePerSession": ("int", 3, "Turns waiting per session."),
    "autoContinue": ("int", 5, "IM: automatic follow-up rounds on [CONTINUE]; 0 disables."),
    "provider": ("mapping", None, "LLM routing: baseUrl, apiKey, model, models, fallback …"),
    "oauthToken": ("str", None, "Claude Max token (secret)."),
    "mcp": ("mapping", None, "MCP servers: name → {command, args, env}."),
    "channels": ("mapping", None, "IM adapters started by the gateway."),
    "gateway": ("mapping", None, "port (3000), host (127.0.0.1), token."),
    "groupChat": ("mapping", DEFAULTS["groupChat"], "Group policy, history limit, max turns."),
    "streaming": ("mapping", DEFAULTS["streaming"], "IM delivery: buffered or streaming."),
    "tasks": ("list", None, "Scheduled prompts."),
    "inbox": ("mapping", None, "Persistent IM queue."),
    "historyFetch": ("mapping", None, "Catch up on messages missed while offline."),
    "escalation": ("mapping", None, "Escalations to humans: enabled, target."),
    "timezone": ("str", None, "IANA time zone for scheduled tasks (host's by default)."),
}


def describe_fields() -> list:
    """``[{"name","type","default","restart","description"}]`` for every top-level field."""
    out = []
    for name in FIELDS:
        kind, default, text = _DESCRIPTIONS[name]
        out.append({"name": name, "type": kind, "default": copy.deepcopy(default),
                    "restart": name in RESTART_KEYS, "hot": name in HOT_KEYS,
                    "secret": is_secret_field((name,)), "description": text})
    return out
