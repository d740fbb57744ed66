"""The tests' own rule for real programs: a missing one skips a test locally and fails it in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.programs import require_program


def test_a_program_on_the_path_is_found_by_its_full_path() -> None:
    found = Path(require_program("sh"))
    assert found.is_absolute()
    assert found.name == "sh"
    interpreter = Path(sys.executable)
    assert require_program(interpreter.name, path=str(interpreter.parent)) == str(interpreter)


def test_an_alias_is_tried_when_the_first_name_is_missing() -> None:
    assert Path(require_program("fleetpulse-no-such-program", aliases=("sh",))).name == "sh"


@pytest.mark.parametrize("ci", ["", "false", "1"])
def test_a_missing_program_skips_outside_ci_naming_the_package(monkeypatch, ci) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install fleetpulse-pkg"):
        require_program("fleetpulse-no-such-program", "fleetpulse-pkg")


@pytest.mark.parametrize("ci", ["true", "TRUE", " true "])
def test_a_missing_program_fails_the_test_when_ci_is_true(monkeypatch, ci) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: fleetpulse-no-such-program"):
        require_program("fleetpulse-no-such-program", "fleetpulse-pkg")
