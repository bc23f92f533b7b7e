"""schemathesis against the spec a real `playcast up` serves at /openapi.yaml: every operation, requests that fit
the spec and requests that break it, as a logged-in browser user (cookie from the printed login link) and as the
admin (Bearer admin_token); a few hundred requests in all, none may get a 5xx or drop the connection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.fuzz.support import bounded
from tests.harness import Playcast

EXAMPLES = 3  # per operation, generation mode and caller: about 40 operations x 2 x 2 x 3
TIME_BUDGET_S = 75  # the run stops generating past this (and says so); it has taken about a third of it
REQUEST_TIMEOUT_S = 20

# WHEP/WHIP bodies are SDP text (and trickle-ICE fragments): sent as the text schemathesis generates for them
schemathesis.serializer.alias(["application/sdp", "application/trickle-ice-sdpfrag"], "text/plain")


@dataclass
class Caller:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    unsendable: int = 0  # requests `requests` itself refuses to send (e.g. a header that is not latin-1)
    not_generated: list[str] = field(default_factory=list)
    over_budget: bool = False


def callers(pc: Playcast, user_cookie: str) -> list[Caller]:
    return [Caller("browser user", cookies={"playcast_user": user_cookie}),
            Caller("admin", headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})]


def exercise(operation: schemathesis.APIOperation, mode: GenerationMode, caller: Caller, base_url: str,
             run: Run, deadline: float) -> None:
    @bounded(EXAMPLES)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def send(case: schemathesis.Case) -> None:
        if time.monotonic() > deadline:
            run.over_budget = True
            return
        try:
            response = case.call(base_url=base_url, headers=caller.headers, cookies=caller.cookies,
                                 timeout=REQUEST_TIMEOUT_S)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            run.unsendable += 1
            return
        except requests.exceptions.RequestException as exc:  # dropped connection, timeout: the server's fault
            run.requests += 1
            run.server_errors.append(f"{caller.name} ({mode.value}): {case.as_curl_command(base_url=base_url)[:400]}"
                                     f" -> {exc!r}")
            return
        run.requests += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup:  # what a failed check raises
            run.server_errors.append(f"{caller.name} ({mode.value}): {case.as_curl_command(base_url=base_url)[:400]}"
                                     f" -> {response.status_code} {response.text[:200]}")

    try:
        send()
    except Unsatisfiable:
        run.not_generated.append(f"{operation.label} ({mode.value})")


def test_no_request_generated_from_the_spec_gets_a_5xx(up: Playcast, user_cookie: str) -> None:
    schema = schemathesis.openapi.from_url(up.base_url + "/openapi.yaml")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 30, [op.label for op in operations]
    run = Run()
    deadline = time.monotonic() + TIME_BUDGET_S
    for caller in callers(up, user_cookie):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for operation in operations:
                exercise(operation, mode, caller, up.base_url, run, deadline)
    assert not run.server_errors, "\n".join(run.server_errors)
    assert run.requests >= 200, (run.requests, run.unsendable, run.not_generated)
    assert not run.over_budget, f"stopped at the {TIME_BUDGET_S} s budget after {run.requests} requests"
    # the server still answers after all of that
    assert httpx.get(up.base_url + "/healthz", timeout=10).status_code == 200
