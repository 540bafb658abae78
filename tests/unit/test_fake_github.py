"""The fake GitHub authenticates and paginates like GitHub, so adapter tests mean something."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.github import FakeGitHub

REPO = "acme/shop"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.add_repo(REPO, 10, installation_id=5)
        server.add_repo("other/repo", 11, installation_id=6)
        server.add_pull(REPO, 1, "a" * 40)
        yield server


def app_jwt(fake: FakeGitHub, key: rsa.RSAPrivateKey | None = None, lifetime: int = 540) -> str:
    now = int(time.time())
    payload = {"iat": now - 60, "exp": now + lifetime, "iss": str(fake.app_id)}
    return jwt.encode(payload, key or fake.private_key_pem, algorithm="RS256")


def call(
    fake: FakeGitHub, method: str, path: str, auth: str, **kwargs: object
) -> requests.Response:
    headers = {"Authorization": auth} if auth else {}
    url = path if path.startswith("http") else fake.url + path
    return requests.request(method, url, headers=headers, timeout=5, **kwargs)  # type: ignore[arg-type]


def installation_token(fake: FakeGitHub, installation_id: int = 5) -> str:
    response = call(
        fake,
        "POST",
        f"/app/installations/{installation_id}/access_tokens",
        f"Bearer {app_jwt(fake)}",
    )
    assert response.status_code == 201
    token: str = response.json()["token"]
    return token


def test_access_tokens_need_a_jwt_signed_with_the_apps_key(fake: FakeGitHub) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = "/app/installations/5/access_tokens"

    assert call(fake, "POST", path, f"Bearer {app_jwt(fake, stranger)}").status_code == 401
    assert call(fake, "POST", path, f"Bearer {app_jwt(fake, lifetime=-10)}").status_code == 401
    assert call(fake, "POST", path, f"Bearer {app_jwt(fake, lifetime=3600)}").status_code == 401
    assert call(fake, "POST", path, f"token {fake.personal_token}").status_code == 401
    body = call(fake, "POST", path, f"Bearer {app_jwt(fake)}").json()
    assert body["token"].startswith("ghs_") and body["expires_at"].endswith("Z")


def test_installation_tokens_reach_only_their_installations_repositories(
    fake: FakeGitHub,
) -> None:
    token = installation_token(fake)

    assert call(fake, "GET", "/repositories/10/pulls/1", f"token {token}").status_code == 200
    assert call(fake, "GET", "/repos/other/repo/pulls/1", f"token {token}").status_code == 404
    assert call(fake, "GET", "/repositories/10/pulls/1", "token nope").json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    fake.expire_tokens()
    assert call(fake, "GET", "/repositories/10/pulls/1", f"token {token}").status_code == 401


def test_check_run_writes_need_an_installation_token(fake: FakeGitHub) -> None:
    run = {"name": "staging", "head_sha": "a" * 40, "status": "in_progress"}
    personal = f"Bearer {fake.personal_token}"

    refused = call(fake, "POST", f"/repos/{REPO}/check-runs", personal, json=run)
    created = call(
        fake, "POST", f"/repos/{REPO}/check-runs", f"token {installation_token(fake)}", json=run
    )

    assert refused.status_code == 403
    assert created.status_code == 201 and created.json()["app"]["id"] == fake.app_id
    listed = call(fake, "GET", f"/repos/{REPO}/commits/{'a' * 40}/check-runs", personal)
    assert listed.json()["total_count"] == 1


def test_lists_paginate_with_link_headers(fake: FakeGitHub) -> None:
    for i in range(5):
        fake.add_comment(REPO, 1, f"comment {i}", "Codertocat")
    auth = f"token {fake.personal_token}"

    first = call(fake, "GET", f"/repos/{REPO}/issues/1/comments?per_page=2", auth)
    last = call(fake, "GET", first.links["last"]["url"], auth)

    assert [c["body"] for c in first.json()] == ["comment 0", "comment 1"]
    assert first.links["next"]["url"].endswith("page=2")
    assert [c["body"] for c in last.json()] == ["comment 4"]
    assert "next" not in last.links


def test_fail_next_answers_matching_requests_and_records_them(fake: FakeGitHub) -> None:
    fake.fail_next(403, headers={"Retry-After": "30"}, path="/pulls/")
    auth = f"token {fake.personal_token}"

    failed = call(fake, "GET", f"/repos/{REPO}/pulls/1", auth)
    passed = call(fake, "GET", f"/repos/{REPO}/pulls/1", auth)

    assert (failed.status_code, failed.headers["Retry-After"]) == (403, "30")
    assert "secondary rate limit" in failed.json()["message"]
    assert passed.json()["head"]["sha"] == "a" * 40
    assert [(r.status, r.auth) for r in fake.calls("GET", "/pulls/")] == [
        (403, "personal"),
        (200, "personal"),
    ]


def test_reactions_and_permissions_need_a_credential_the_repository_accepts(
    fake: FakeGitHub,
) -> None:
    comment_id = fake.add_comment(REPO, 1, "/staging redeploy", "alice")
    fake.set_role(REPO, "alice", "maintain")
    token = f"token {fake.personal_token}"
    react = f"/repos/{REPO}/issues/comments/{comment_id}/reactions"

    assert call(fake, "POST", react, "", json={"content": "eyes"}).status_code == 401
    assert call(fake, "POST", react, f"Bearer {app_jwt(fake)}", json={}).status_code == 403
    assert call(fake, "POST", react, token, json={"content": "eyes!"}).status_code == 422
    assert call(fake, "GET", f"/repos/{REPO}/collaborators/alice/permission", "").status_code == 401

    answer = call(fake, "GET", "/repositories/10/collaborators/alice/permission", token).json()
    assert (answer["permission"], answer["role_name"]) == ("write", "maintain")
    assert answer["user"]["permissions"]["maintain"] and not answer["user"]["permissions"]["admin"]


def test_pull_requests_carry_their_labels_as_github_shapes_them(fake: FakeGitHub) -> None:
    auth = f"token {fake.personal_token}"
    assert call(fake, "GET", f"/repos/{REPO}/pulls/1", auth).json()["labels"] == []

    fake.set_labels(REPO, 1, ("needs review", "staging"))
    labels = call(fake, "GET", f"/repos/{REPO}/pulls/1", auth).json()["labels"]

    assert [label["name"] for label in labels] == ["needs review", "staging"]
    assert set(labels[0]) == {"id", "node_id", "url", "name", "color", "default", "description"}
    assert labels[0]["url"] == f"{fake.url}/repos/{REPO}/labels/needs%20review"


def test_the_app_is_read_with_its_jwt_and_the_user_with_a_personal_token(fake: FakeGitHub) -> None:
    jwt_auth, installation = f"Bearer {app_jwt(fake)}", f"token {installation_token(fake)}"

    assert call(fake, "GET", "/app", jwt_auth).json()["slug"] == "stagingbot"
    assert call(fake, "GET", "/app", installation).status_code == 401
    assert call(fake, "GET", "/user", f"token {fake.personal_token}").json()["login"] == (
        "octo-operator"
    )
    # https://docs.github.com/en/rest/users/users#get-the-authenticated-user: not for Apps.
    assert call(fake, "GET", "/user", installation).status_code == 403


def test_an_unchanged_answer_is_304_with_no_body_and_costs_no_rate_limit(
    fake: FakeGitHub,
) -> None:
    auth = f"token {fake.personal_token}"
    first = call(fake, "GET", f"/repos/{REPO}/pulls", auth)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    used = fake.rate_used

    again = call(fake, "GET", f"/repos/{REPO}/pulls", auth)  # no validator: 200
    assert again.status_code == 200 and again.headers["ETag"] == etag
    conditional = requests.get(
        fake.url + f"/repos/{REPO}/pulls",
        headers={"Authorization": auth, "If-None-Match": etag},
        timeout=5,
    )
    assert conditional.status_code == 304 and conditional.content == b""
    assert conditional.headers["ETag"] == etag
    assert fake.rate_used == used + 1  # the plain GET counted, the 304 did not
    assert conditional.headers["X-RateLimit-Remaining"] == str(5000 - fake.rate_used)

    fake.set_head(REPO, 1, "b" * 40)
    changed = requests.get(
        fake.url + f"/repos/{REPO}/pulls",
        headers={"Authorization": auth, "If-None-Match": etag},
        timeout=5,
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
