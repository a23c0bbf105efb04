from __future__ import annotations

import msgspec

from notifactor.gateway import problems
from notifactor.gateway.http import problem_response
from notifactor.gateway.problems import FieldError


def test_problem_document_shape() -> None:
    problem = problems.validation_failed([FieldError(field="content", message="is required")])
    response = problem_response(problem)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    body = msgspec.json.decode(response.body)
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["errors"] == [{"field": "content", "message": "is required"}]
    assert body["type"].startswith("urn:notifactor:problem:")


def test_401_carries_the_challenge_and_no_errors_member() -> None:
    problem = problems.unauthorized("token expired")
    assert dict(problem.headers)["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "errors" not in problem.to_dict()


def test_429_keeps_its_headers() -> None:
    problem = problems.rate_limited("slow down", [("retry-after", "2")])
    assert problem_response(problem).headers == (("retry-after", "2"),)
