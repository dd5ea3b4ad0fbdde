"""CLIs that read $PWD (OpenCode) must see the workspace, not the server's directory."""
import os

from golembot.engines.base import AbortSignal, StreamParser, run_cli_capture, run_engine


class EchoParser(StreamParser):
    def __init__(self):
        self.lines = []

    def feed_line(self, line):
        self.lines.append(line)
        return []


def test_engine_child_gets_workspace_pwd(tmp_path):
    parser = EchoParser()
    env = {**os.environ, "PWD": "/somewhere/else"}
    list(run_engine(["sh", "-c", 'echo "$PWD"'], str(tmp_path), env, parser, AbortSignal(), "sh"))
    assert parser.lines == [str(tmp_path)]


def test_cli_capture_runs_in_workspace(tmp_path):
    code, out = run_cli_capture(["sh", "-c", 'echo "$PWD"; pwd'], cwd=str(tmp_path))
    assert code == 0 and out.split() == [str(tmp_path), str(tmp_path)]
