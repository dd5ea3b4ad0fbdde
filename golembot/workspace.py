"""The assistant directory: skills, the generated ``AGENTS.md``, ``init`` and scenario templates.

A skill is a folder ``skills/<name>/`` with a ``SKILL.md``; nothing else lists skills, so
:func:`scan_skills` is the inventory. ``AGENTS.md`` is regenerated from the skills and
``golem.yaml`` before every turn (:func:`write_agents_md`), which is why hand edits to it are lost.
Skill names become folder names, symlink names and ``AGENTS.md`` lines, so every name that comes
from a user goes through :func:`check_skill_name`.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata

from .config import CONFIG_FILE, ENGINES, ConfigError, load_config, parse_yaml, yaml_scalar
from .files import atomic_write_text

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
BUILTIN_DIR = os.path.join(PACKAGE_DIR, "skills")
SCENARIO_DIR = os.path.join(PACKAGE_DIR, "scenarios")

#: Copied into every new assistant by :func:`init_assistant` (decisions.md).
BUILTIN_SKILLS = ("general", "im-adapter", "multi-bot", "message-push")
#: Shipped too; installed on request with ``golembot skill add builtin:<name>``.
OPTIONAL_SKILLS = ("escalation", "kb-guide", "task-manager")
ALL_BUILTIN_SKILLS = BUILTIN_SKILLS + OPTIONAL_SKILLS

#: Scenario templates in the order the onboarding wizard lists them: name → (label, description,
#: output folders their skill expects).
SCENARIOS = {
    "customer-support": ("Customer Support Bot", "IM customer support with FAQ Skill", ()),
    "data-analyst": ("Data Analyst", "Data analysis with analytics Skill + scripts",
                     ("data", "reports")),
    "code-reviewer": ("Code Reviewer", "CI/CD code review", ("reviews",)),
    "ops-assistant": ("Ops Assistant", "Content operations / social media management",
                      ("content", "reports")),
    "meeting-notes": ("Meeting Notes", "Meeting summaries / action item extraction",
                      ("meetings",)),
    "research": ("Research Assistant", "Information gathering / competitive analysis",
                 ("research",)),
}

AGENTS_FILE = "AGENTS.md"
_COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "node_modules", ".DS_Store")
_GENERAL_STUB = ("---\nname: general\ndescription: General personal assistant\n---\n\n"
                 "# General assistant\n\nYou are a general-purpose personal assistant.\n")


class SkillError(ValueError):
    """A skill cannot be installed, removed or used (the message says why)."""


# -- names ----------------------------------------------------------------------------------------
def check_skill_name(name) -> str:
    """Return ``name`` if it is a safe skill folder name, else raise :class:`SkillError`.

    Refused: empty, over 100 characters, path separators, ``..``, NUL and other control
    characters (newlines would inject lines into AGENTS.md), a leading dot, surrounding spaces.
    """
    if not isinstance(name, str) or not name:
        raise SkillError("Invalid skill name: it must not be empty")
    shown = repr(name) if any(unicodedata.category(c) == "Cc" for c in name) else f'"{name}"'
    if len(name) > 100:
        raise SkillError(f"Invalid skill name {shown[:40]}…: longer than 100 characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise SkillError(f"Invalid skill name {shown}: it must not contain path separators or '..'")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise SkillError(f"Invalid skill name {shown}: it must not contain control characters")
    if name.startswith("."):
        raise SkillError(f"Invalid skill name {shown}: it must not start with a dot")
    if name != name.strip():
        raise SkillError(f"Invalid skill name {shown}: it must not start or end with spaces")
    return name


def _safe_name(name: str) -> bool:
    try:
        check_skill_name(name)
        return True
    except SkillError:
        return False


# -- discovery ------------------------------------------------------------------------------------
def read_front_matter(text: str) -> dict:
    """The YAML block between a first line ``---`` and the next line starting with ``---``;
    ``{}`` when absent or unparsable (the skill still counts)."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return {}
    for i in range(1, len(lines)):
        if lines[i].startswith("---"):
            try:
                data = parse_yaml("\n".join(lines[1:i]), "SKILL.md")
            except ConfigError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def _one_line(value) -> str:
    return " ".join(str(value).split())


def read_skill(path: str) -> dict | None:
    """``{"name","description","type"?,"path"}`` for one skill folder, or None if it is none."""
    name = os.path.basename(os.path.normpath(path))
    skill_md = os.path.join(path, "SKILL.md")
    if not os.path.isdir(path) or not os.path.isfile(skill_md):
        return None
    try:
        with open(skill_md, encoding="utf-8", errors="replace") as fh:
            meta = read_front_matter(fh.read())
    except OSError:
        return None
    description = meta.get("description")
    if description is None or (isinstance(description, str) and not description.strip()):
        description = meta.get("name")
    if description is None or not _one_line(description):
        description = name
    skill = {"name": name, "description": _one_line(description)}
    kind = meta.get("type")
    if kind is not None and _one_line(kind):
        skill["type"] = _one_line(kind)
    skill["path"] = os.path.abspath(path)
    return skill


def scan_skills(dir) -> list:
    """Every ``skills/<name>/`` with a readable ``SKILL.md``, sorted by name (config.md §9.1).

    Folders whose names are unsafe (leading dot, control characters) are skipped.
    """
    root = os.path.join(os.path.abspath(os.fspath(dir)), "skills")
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return []
    skills = []
    for entry in entries:
        if not _safe_name(entry):
            continue
        skill = read_skill(os.path.join(root, entry))
        if skill is not None:
            skills.append(skill)
    return skills


# -- AGENTS.md ------------------------------------------------------------------------------------
def _skill_lines(skills) -> list:
    if not skills:
        return ["- (no skills installed)"]
    if not any(s.get("type") for s in skills):
        return [f"- {s['name']}: {s['description']}" for s in skills]
    groups: dict = {}
    for s in skills:
        groups.setdefault(s.get("type") or "other", []).append(s)
    lines = []
    for kind, members in groups.items():
        if lines:
            lines.append("")
        lines.append(f"### {kind}")
        lines += [f"- {s['name']}: {s['description']}" for s in members]
    return lines


def render_agents_md(config: dict | None, skills) -> str:
    """The text of ``AGENTS.md`` (config.md §9.2, line for line)."""
    config = config or {}
    lines = ["# Assistant Context", ""]
    persona = config.get("persona") if isinstance(config.get("persona"), dict) else {}
    if persona.get("displayName") or persona.get("role"):
        lines.append("## Persona")
        for key, label in (("displayName", "Display Name"), ("role", "Role"), ("tone", "Tone")):
            if persona.get(key):
                lines.append(f"- {label}: {persona[key]}")
        boundaries = persona.get("boundaries")
        if isinstance(boundaries, list) and boundaries:
            lines.append("- Boundaries:")
            lines += [f"  - {item}" for item in boundaries]
        lines.append("")
    prompt = config.get("systemPrompt")
    if isinstance(prompt, str) and prompt.strip():
        lines += ["## System Instructions", prompt.rstrip("\n"), ""]
    lines.append("## Installed Skills")
    lines += _skill_lines(list(skills or []))
    lines += [
        "",
        "## Directory Structure",
        "- skills/ — Skills directory (each subdirectory is a skill, containing SKILL.md and "
        "optional scripts)",
        "- AGENTS.md — This file, auto-generated by Golem",
        "",
        "## Conventions",
        "- Write persistent information to notes.md",
        "- Save generated reports/files in the appropriate directory",
    ]
    return "\n".join(lines) + "\n"


def write_agents_md(dir, config: dict | None, skills) -> str:
    """Regenerate ``<dir>/AGENTS.md`` atomically; skipped when the text is unchanged (so
    concurrent turns never rewrite it needlessly). Returns the path."""
    path = os.path.join(os.path.abspath(os.fspath(dir)), AGENTS_FILE)
    text = render_agents_md(config, skills)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return path
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)
    return path


def refresh_agents_md(dir) -> None:
    """Regenerate AGENTS.md after a skill change (with persona and prompt when golem.yaml loads)."""
    try:
        config = load_config(dir)
    except ConfigError:
        config = {}
    write_agents_md(dir, config, scan_skills(dir))


# -- init -----------------------------------------------------------------------------------------
def _check_engine(engine) -> str:
    if engine not in ENGINES:
        raise ConfigError(f'Unknown engine "{engine}". Supported: ' + ", ".join(ENGINES))
    return engine


def render_golem_yaml(engine: str, name: str, role: str | None = None) -> str:
    """The golem.yaml ``init`` writes: the fields given, plus commented pointers to the rest."""
    lines = [f"name: {yaml_scalar(name)}", f"engine: {yaml_scalar(engine)}"]
    if role:
        lines += ["persona:", f"  role: {yaml_scalar(role)}"]
    lines += [
        "",
        "# More settings (all optional) — see the README, section Configuration:",
        "# model: claude-sonnet-4-6",
        "# timeout: 600",
        "# systemPrompt: |",
        "#   Answer briefly.",
        "# gateway:",
        "#   port: 3000",
        "#   token: ${GOLEM_TOKEN}",
    ]
    return "\n".join(lines) + "\n"


def _gitignore(engine: str) -> str:
    lines = [".golem/", ".env"]
    if engine == "opencode":
        lines.append(".opencode/")
    elif engine == "codex":
        lines.append(".codex/")
    return "\n".join(lines) + "\n"


def _copy_builtin(name: str, dest: str) -> None:
    src = os.path.join(BUILTIN_DIR, name)
    if os.path.isfile(os.path.join(src, "SKILL.md")):
        shutil.copytree(src, dest, ignore=_COPY_IGNORE)
    elif name == "general":
        os.makedirs(dest)
        atomic_write_text(os.path.join(dest, "SKILL.md"), _GENERAL_STUB)
    else:
        os.makedirs(dest)


def init_assistant(dir, engine: str, name: str, role: str | None = None) -> str:
    """Scaffold an assistant in ``dir`` (created if missing): golem.yaml, the four default
    skills, ``.golem/``, ``AGENTS.md`` and ``.gitignore`` (only if absent). Returns the path.

    Refuses with ``FileExistsError("golem.yaml already exists in <dir>")`` and changes nothing
    when the directory already holds an assistant.
    """
    _check_engine(engine)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError('The assistant name must not be empty')
    if "\n" in name or "\r" in name:
        raise ConfigError("The assistant name must be a single line")
    if role is not None and (not isinstance(role, str) or "\n" in role):
        raise ConfigError("The role must be a single line of text")
    root = os.path.abspath(os.fspath(dir))
    target = os.path.join(root, CONFIG_FILE)
    if os.path.lexists(target):
        raise FileExistsError(f"{CONFIG_FILE} already exists in {root}")
    os.makedirs(root, exist_ok=True)

    # golem.yaml is created exclusively (link of a complete temp file), so two racing inits
    # cannot both succeed and a reader never sees half a file.
    text = render_golem_yaml(engine, name, role or None)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise FileExistsError(f"{CONFIG_FILE} already exists in {root}") from None
        except OSError:  # file systems without hard links
            if os.path.lexists(target):
                raise FileExistsError(f"{CONFIG_FILE} already exists in {root}") from None
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    os.chmod(target, 0o644)

    skills_dir = os.path.join(root, "skills")
    os.makedirs(skills_dir, exist_ok=True)
    for skill in BUILTIN_SKILLS:
        dest = os.path.join(skills_dir, skill)
        if not os.path.lexists(dest):
            _copy_builtin(skill, dest)
    os.makedirs(os.path.join(root, ".golem"), exist_ok=True)
    refresh_agents_md(root)
    gitignore = os.path.join(root, ".gitignore")
    if not os.path.lexists(gitignore):
        atomic_write_text(gitignore, _gitignore(engine))
    return root


# -- skill add / remove ---------------------------------------------------------------------------
def _require_assistant(root: str) -> None:
    if not os.path.isfile(os.path.join(root, CONFIG_FILE)):
        raise SkillError(f"No {CONFIG_FILE} in {root} — run golembot init first "
                         "or point -d at the assistant directory")


def builtin_skill_path(name: str) -> str:
    if name not in ALL_BUILTIN_SKILLS:
        raise SkillError(f'Unknown built-in skill "{name}". Available: '
                         + ", ".join(ALL_BUILTIN_SKILLS))
    return os.path.join(BUILTIN_DIR, name)


def install_skill(dir, source: str) -> str:
    """Copy a skill into ``<dir>/skills/<name>/`` and regenerate AGENTS.md; returns the name.

    ``source`` is a local folder containing ``SKILL.md`` (its folder name becomes the skill
    name) or ``builtin:<name>``. An installed skill is never overwritten.
    """
    root = os.path.abspath(os.fspath(dir))
    _require_assistant(root)
    if not isinstance(source, str) or not source.strip():
        raise SkillError("Give a skill folder or builtin:<name>")
    if source.startswith("builtin:"):
        name = check_skill_name(source[len("builtin:"):].strip())
        src = builtin_skill_path(name)
    elif re.match(r"^[A-Za-z][\w.+-]*:(?![\\/])", source) and not os.path.exists(source):
        prefix = source.split(":", 1)[0]
        raise SkillError(f'Unsupported skill source "{prefix}:". Use a local folder '
                         "containing SKILL.md or builtin:<name>")
    else:
        src = os.path.abspath(os.path.expanduser(source))
        name = check_skill_name(os.path.basename(src.rstrip("/\\")))
        if not os.path.isdir(src):
            raise SkillError(f"Skill folder not found: {source}")
    if not os.path.isfile(os.path.join(src, "SKILL.md")):
        raise SkillError(f"{source} is not a skill: it has no SKILL.md")
    skills_dir = os.path.join(root, "skills")
    os.makedirs(skills_dir, exist_ok=True)
    dest = os.path.join(skills_dir, name)
    if os.path.lexists(dest):
        raise SkillError(f'Skill "{name}" is already installed (skills/{name}); '
                         f"remove it first with: golembot skill remove {name}")
    staging = tempfile.mkdtemp(prefix=".tmp-skill-", dir=skills_dir)
    try:
        copied = os.path.join(staging, name)
        try:
            shutil.copytree(src, copied, ignore=_COPY_IGNORE)
        except (shutil.Error, OSError) as exc:
            raise SkillError(f"Could not copy the skill from {source}: {exc}") from None
        try:
            os.rename(copied, dest)
        except OSError as exc:
            if os.path.lexists(dest):
                raise SkillError(f'Skill "{name}" is already installed (skills/{name})') from exc
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    refresh_agents_md(root)
    return name


def remove_skill(dir, name: str) -> None:
    """Delete ``skills/<name>`` (a symlinked skill loses only the link) and regenerate AGENTS.md."""
    root = os.path.abspath(os.fspath(dir))
    check_skill_name(name)
    skills_dir = os.path.join(root, "skills")
    path = os.path.join(skills_dir, name)
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(skills_dir):
        raise SkillError(f'Invalid skill name "{name}"')
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    else:
        installed = ", ".join(s["name"] for s in scan_skills(root)) or "none"
        raise SkillError(f'Skill "{name}" is not installed (installed: {installed})')
    if os.path.isfile(os.path.join(root, CONFIG_FILE)):
        refresh_agents_md(root)


def validate_skill(path) -> list:
    """Problems with one skill folder, as sentences (empty list = fine); for ``golembot doctor``."""
    path = os.fspath(path)
    name = os.path.basename(os.path.normpath(path))
    problems = []
    try:
        check_skill_name(name)
    except SkillError as exc:
        problems.append(str(exc))
    skill_md = os.path.join(path, "SKILL.md")
    if not os.path.isdir(path):
        return problems + [f"{path} is not a folder"]
    if not os.path.isfile(skill_md):
        return problems + [f"skills/{name} has no SKILL.md"]
    try:
        with open(skill_md, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        return problems + [f"skills/{name}/SKILL.md is not UTF-8 text"]
    except OSError as exc:
        return problems + [f"skills/{name}/SKILL.md cannot be read ({exc.strerror})"]
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return problems + [f"skills/{name}/SKILL.md has no front matter (start it with ---)"]
    end = next((i for i in range(1, len(lines)) if lines[i].startswith("---")), None)
    if end is None:
        return problems + [f"skills/{name}/SKILL.md front matter is not closed with ---"]
    try:
        meta = parse_yaml("\n".join(lines[1:end]), f"skills/{name}/SKILL.md front matter")
    except ConfigError as exc:
        return problems + [str(exc)]
    if not isinstance(meta, dict):
        return problems + [f"skills/{name}/SKILL.md front matter is not a mapping"]
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(f"skills/{name}/SKILL.md has no description (agents pick skills by it)")
    elif "\n" in description.strip():
        problems.append(f"skills/{name}/SKILL.md description spans several lines")
    if meta.get("name") is not None and meta.get("name") != name:
        problems.append(f'skills/{name}/SKILL.md says name "{meta.get("name")}" '
                        f'but the folder is "{name}"')
    if not "\n".join(lines[end + 1:]).strip():
        problems.append(f"skills/{name}/SKILL.md has no instructions after the front matter")
    return problems


# -- scenario templates ---------------------------------------------------------------------------
def list_scenarios() -> list:
    """``[{"name","label","description"}]`` in wizard order."""
    return [{"name": n, "label": label, "description": text}
            for n, (label, text, _dirs) in SCENARIOS.items()]


def apply_scenario(dir, name: str) -> dict:
    """Add a scenario template to an assistant: its skills, README.md and supporting files
    (never overwriting anything; golem.yaml is never touched) and the output folders its skill
    expects. Returns ``{"skills": [...], "files": [...], "dirs": [...]}`` of what was added."""
    if name not in SCENARIOS:
        raise SkillError(f'Unknown template "{name}". Available: ' + ", ".join(SCENARIOS))
    src = os.path.join(SCENARIO_DIR, name)
    root = os.path.abspath(os.fspath(dir))
    os.makedirs(root, exist_ok=True)
    added = {"skills": [], "files": [], "dirs": []}
    skills_src = os.path.join(src, "skills")
    if os.path.isdir(skills_src):
        os.makedirs(os.path.join(root, "skills"), exist_ok=True)
        for entry in sorted(os.listdir(skills_src)):
            dest = os.path.join(root, "skills", entry)
            if _safe_name(entry) and not os.path.lexists(dest):
                shutil.copytree(os.path.join(skills_src, entry), dest, ignore=_COPY_IGNORE)
                added["skills"].append(entry)
    for entry in sorted(os.listdir(src)) if os.path.isdir(src) else []:
        path = os.path.join(src, entry)
        if entry in (CONFIG_FILE, "skills") or not os.path.isfile(path) or entry.startswith("."):
            continue
        dest = os.path.join(root, entry)
        if not os.path.lexists(dest):
            shutil.copy2(path, dest)
            added["files"].append(entry)
    for folder in SCENARIOS[name][2]:
        path = os.path.join(root, folder)
        if not os.path.lexists(path):
            os.makedirs(path)
            added["dirs"].append(folder)
    return added
