"""Item 9: requirements are a grammar, not pip options.

Every rejected form fails validation before any container exists (the HTTP
API answers those with 400); a package that does not exist is
`install_failed`; a huge list is a clean `RequestRejected` naming the count.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from ai_data_agent import RequestRejected, RunRequest
from ai_data_agent.models import parse_requirements_text

from .conftest import Battery

pytestmark = pytest.mark.integration

REJECTED = [
    "-i https://evil.example/simple",
    "--index-url=https://evil.example/simple",
    "--extra-index-url https://evil.example/simple",
    "-f https://evil.example/wheels",
    "--find-links /tmp/wheels",
    "-e git+https://evil.example/x.git#egg=x",
    "-e .",
    "-r other.txt",
    "-c constraints.txt",
    "--pre six",
    "six --install-option=--prefix=/",
    "https://evil.example/x-1.0-py3-none-any.whl",
    "six @ https://evil.example/six.whl",
    "six @ file:///etc/passwd",
    "./local/path",
    "/abs/path/pkg",
    "../pkg.tar.gz",
    "${HOME}/pkg",
    "six; os_name == 'posix' --index-url x",
    "six\x00",
    "six\nrequests",
    "x" * 201,
]


@pytest.mark.parametrize("line", REJECTED)
def test_rejected_forms_fail_validation_before_any_container(battery: Battery, line: str) -> None:
    with pytest.raises(ValidationError):
        RunRequest(code="print(1)", requirements=[line])
    if "\n" not in line:  # a requirements.txt text: the bad line is named
        with pytest.raises(ValueError, match="line 2"):
            parse_requirements_text(f"six\n{line}\n")
    assert battery.container_ids() == set()


def test_a_huge_requirement_list_is_a_clean_rejection(battery: Battery) -> None:
    request = RunRequest(code="print(1)", requirements=[f"pkg{i}" for i in range(10_000)])
    started = time.monotonic()

    with pytest.raises(RequestRejected) as excinfo:
        battery.executor().run(request, run_id=battery.new_run_id())

    assert excinfo.value.field == "requirements" and "10000" in excinfo.value.reason
    assert time.monotonic() - started < 2
    assert battery.container_ids() == set()


def test_a_package_that_does_not_exist_is_install_failed(battery: Battery) -> None:
    outcome = battery.run("print('never')", requirements=["ai-data-agent-no-such-package-x7q"])

    assert outcome.result.status == "install_failed", outcome.result.error
    assert outcome.result.stdout == ""
    battery.assert_host_unchanged()


@pytest.mark.parametrize(
    "line",
    ["six", "six==1.16.0", "six>=1.10,<2", "Six ; python_version >= '3.8'", "requests[socks]>=2"],
)
def test_benign_twin_pep_508_lines_are_accepted(line: str) -> None:
    assert RunRequest(code="print(1)", requirements=[line]).requirements == [line]
    assert parse_requirements_text(f"# pinned\n{line}  # comment\n") == [line]
