"""`sweep`: which sandboxes a rule takes (live owners only with --force), and its output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from ai_data_agent.cli import admin as cli_admin
from ai_data_agent.cli import app
from ai_data_agent.executor import docker as docker_package
from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_DEADLINE, LABEL_OWNER

NOW = time.time()
CONTAINER = "4f" * 32
VOLUME = "ai-data-agent-staging-0123abcd"


def _dead_owner() -> str:
    """The owner label of a process that has exited (same boot and pid namespace)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    boot, namespace, _, _ = owner_label().rsplit(":", 3)
    label = f"{boot}:{namespace}:{child.pid}:1"  # a start time the pid never had
    child.wait()
    return label


def labels(owner: str, *, controller: str = "other", expired: bool = False) -> dict[str, str]:
    deadline = NOW - 10 if expired else NOW + 3600
    return {LABEL_OWNER: owner, LABEL_CONTROLLER: controller, LABEL_DEADLINE: str(int(deadline))}


@pytest.mark.parametrize(
    ("rule", "live", "dead", "unknown"),
    [
        (SweepRule(), False, True, False),
        (SweepRule(all_controllers=True), False, True, True),
        (SweepRule(all_controllers=True, force=True), True, True, True),
    ],
    ids=["default", "all", "all-force"],
)
def test_live_owners_are_spared_unless_forced(
    rule: SweepRule, live: bool, dead: bool, unknown: bool
) -> None:
    assert rule.doomed(labels(owner_label()), NOW) is live
    assert rule.doomed(labels(_dead_owner()), NOW) is dead
    assert rule.doomed(labels("elsewhere:?:1:?"), NOW) is unknown  # cannot be judged
    assert rule.doomed(labels(owner_label(), expired=True), NOW) is True  # past its deadline


def test_the_own_controller_is_always_kept() -> None:
    rule = SweepRule(keep_controller="me", all_controllers=True, force=True)
    assert rule.doomed(labels(_dead_owner(), controller="me", expired=True), NOW) is False


class FakeSweeper:
    rules: list[SweepRule] = []  # noqa: RUF012 -- reset by the fixture

    def __init__(self, settings: Any) -> None:
        pass

    def sweep(self, rule: SweepRule) -> list[str]:
        self.rules.append(rule)
        return [CONTAINER, VOLUME] if rule.all_controllers else []


@pytest.fixture
def sweeper(monkeypatch: pytest.MonkeyPatch) -> type[FakeSweeper]:
    monkeypatch.setattr(FakeSweeper, "rules", [])
    monkeypatch.setattr(docker_package, "DockerBackend", FakeSweeper)
    monkeypatch.setattr(cli_admin, "require_engine", lambda settings: None)
    return FakeSweeper


def test_sweep_prints_a_table_of_what_it_removed(sweeper: type[FakeSweeper]) -> None:
    out = CliRunner().invoke(app, ["sweep", "--all"], env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    cells = [line.replace("│", " ").split() for line in out.stdout.splitlines()]
    rows = [row for row in cells if row[:1] in (["container"], ["volume"])]
    assert rows == [["container", CONTAINER[:12]], ["volume", VOLUME]]
    assert sweeper.rules == [SweepRule(all_controllers=True, force=False)]


def test_sweep_says_when_there_is_nothing_to_remove(sweeper: type[FakeSweeper]) -> None:
    out = CliRunner().invoke(app, ["sweep"])
    assert (out.exit_code, out.stdout) == (0, "nothing to remove\n")


def test_sweep_json_is_one_document(sweeper: type[FakeSweeper]) -> None:
    out = CliRunner().invoke(app, ["sweep", "--all", "--force", "--json"])
    assert json.loads(out.stdout) == {"removed": [CONTAINER, VOLUME]}
    assert sweeper.rules == [SweepRule(all_controllers=True, force=True)]
