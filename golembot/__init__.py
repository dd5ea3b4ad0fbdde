"""GolemBot: give a coding-agent CLI a body.

``from golembot import create_assistant`` loads only the library core (no Flask).
"""
__version__ = "0.1.0"


def create_assistant(dir, engine=None, model=None, api_key=None, max_concurrent=10,
                     max_queue_per_session=3, timeout_s=None):
    """An :class:`~golembot.assistant.Assistant` for the assistant directory ``dir``."""
    from .assistant import Assistant
    return Assistant(dir, engine=engine, model=model, api_key=api_key,
                     max_concurrent=max_concurrent, max_queue_per_session=max_queue_per_session,
                     timeout_s=timeout_s)


def init_assistant(dir, engine, name, role=None):
    """Scaffold a new assistant directory (golem.yaml, skills/, AGENTS.md, .golem/, .gitignore)."""
    from .workspace import init_assistant as _init
    return _init(dir, engine, name, role)


__all__ = ["create_assistant", "init_assistant", "__version__"]
