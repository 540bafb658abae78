"""What the sweep reads, against the HTTP fakes: every open request, every staging, or an error.

A list is all or nothing: a failed page or a failed list call raises, never a shorter list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot import naming
from bot.config import GitHubConfig, GitLabConfig, Secret
from bot.errors import PermanentError, TemporaryError
from bot.hosts.github import GitHubHost
from bot.hosts.gitlab import GitLabHost
from bot.model import ClusterStaging, RepoRef, StagingKey
from bot.provision import decisions
from bot.provision.decisions import Decision
from bot.provision.kubernetes import KubernetesProvisioner
from tests.fakes.github import FakeGitHub
from tests.fakes.github import _Error as GitHubError
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitlab import _Error as GitLabError
from tests.fakes.kube import FakeKube
from tests.integration.test_kubernetes_provisioner import CONFIG, SERVICE, WEB, make_target

REPO = "Codertocat/Hello-World"
REPO_ID = 186853002
PROJECT = "acme/shop"
PROJECT_ID = 278964
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"something slept {seconds}s")

    monkeypatch.setattr("time.sleep", refuse)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        for number in range(1, 151):
            fake.add_pull(REPO, number, SHA, branch=f"b{number}", draft=number == 7)
        fake.add_pull(REPO, 151, SHA, fork_full_name="someone/Hello-World")
        fake.close_pull(REPO, 3)
        yield fake


@pytest.fixture
def app(github: FakeGitHub, tmp_path: Path) -> Iterator[GitHubHost]:
    key = tmp_path / "app.pem"
    key.write_text(github.private_key_pem)
    host = GitHubHost(
        GitHubConfig(api_url=github.url, app_id=github.app_id, private_key_file=str(key))
    )
    yield host
    host.close()


async def test_github_lists_every_open_pull_request_page_by_page_by_name(
    github: FakeGitHub, app: GitHubHost
) -> None:
    pulls = await app.open_pulls(RepoRef("github", 0, REPO))

    assert sorted(p.number for p in pulls) == [n for n in range(1, 152) if n != 3]
    assert {p.repo for p in pulls} == {RepoRef("github", REPO_ID, REPO)}  # the real id
    by_number = {p.number: p for p in pulls}
    assert by_number[7].draft and by_number[151].fork and not by_number[8].fork
    assert by_number[8].branch == "b8" and by_number[8].open and not by_number[8].merged
    listed = github.calls("GET", r"/pulls")
    assert [(r.path, r.query.get("page", "1")) for r in listed] == [
        (f"/repos/{REPO}/pulls", "1"),
        (f"/repos/{REPO}/pulls", "2"),
    ]
    assert listed[0].query["state"] == "open" and listed[0].query["per_page"] == "100"
    assert github.calls("GET", r"/pulls/\d+") == []  # no request read one by one


async def test_github_a_failed_page_is_an_error_never_a_shorter_list(
    github: FakeGitHub, app: GitHubHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    github.fail_next(500, method="GET", path=r"/pulls$")
    with pytest.raises(TemporaryError, match="HTTP 500"):
        await app.open_pulls(RepoRef("github", 0, REPO))

    paginate = github._paginate

    def second_page_fails(request: Any, items: list[Any]) -> Any:
        if request.query.get("page") == "2":
            raise GitHubError(502)
        return paginate(request, items)

    monkeypatch.setattr(github, "_paginate", second_page_fails)
    with pytest.raises(TemporaryError, match="HTTP 502"):
        await app.open_pulls(RepoRef("github", 0, REPO))


async def test_github_an_unknown_repository_is_a_permanent_error(app: GitHubHost) -> None:
    with pytest.raises(PermanentError):
        await app.open_pulls(RepoRef("github", 0, "acme/missing"))


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab() as fake:
        fake.add_project(PROJECT, PROJECT_ID)
        for iid in range(1, 131):
            fake.add_mr(PROJECT, iid, SHA, branch=f"b{iid}")
        fake.close_mr(PROJECT, 5, merged=True)
        yield fake


@pytest.fixture
def lab(gitlab: FakeGitLab) -> Iterator[GitLabHost]:
    host = GitLabHost.from_config(GitLabConfig(url=gitlab.url, token=Secret(gitlab.token)))
    yield host
    host.close()


async def test_gitlab_lists_every_open_merge_request_following_the_pages(
    gitlab: FakeGitLab, lab: GitLabHost
) -> None:
    pulls = await lab.open_pulls(RepoRef("gitlab", 0, PROJECT))

    assert sorted(p.number for p in pulls) == [n for n in range(1, 131) if n != 5]
    assert {p.repo for p in pulls} == {RepoRef("gitlab", PROJECT_ID, PROJECT)}
    listed = [r for r in gitlab.requests if r.path.endswith("/merge_requests")]
    assert [r.query.get("page", "1") for r in listed] == ["1", "2"]
    assert all(r.query["state"] == "opened" for r in listed)
    assert listed[0].path == "/api/v4/projects/acme%2Fshop/merge_requests"


async def test_gitlab_a_failed_second_page_is_an_error(
    gitlab: FakeGitLab, lab: GitLabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    paginate = gitlab._paginate

    def second_page_fails(request: Any, items: list[Any]) -> Any:
        if request.query.get("page") == "2":
            raise GitLabError(503)
        return paginate(request, items)

    monkeypatch.setattr(gitlab, "_paginate", second_page_fails)
    with pytest.raises(TemporaryError, match="HTTP 503"):
        await lab.open_pulls(RepoRef("gitlab", 0, PROJECT))


# -- the cluster ------------------------------------------------------------------------


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(namespace_delete_delay=0.2, rollout_delay=0.05) as fake:
        yield fake


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "staging"
    folder.mkdir()
    for name, text in (("web.yaml", WEB), ("service.yaml", SERVICE), ("config.yaml", CONFIG)):
        (folder / name).write_text(text)
    return folder


@pytest.fixture
async def provisioner(kube: FakeKube, tmp_path: Path) -> AsyncIterator[KubernetesProvisioner]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
    prov = await KubernetesProvisioner.create(
        kubeconfig, "fake", discovery_cache=str(tmp_path / "discovery.json")
    )
    yield prov
    await prov.close()


async def test_the_cluster_lists_its_stagings_in_three_calls_with_what_was_applied(
    kube: FakeKube,
    provisioner: KubernetesProvisioner,
    templates: Path,
) -> None:
    target = make_target(
        templates,
        overrides=(("GREETING", "hi"),),
        secret_overrides=(("STRIPE_KEY", "sk_live_ünï"),),
        secret_checksum="c",
    )
    other = make_target(
        templates, key=StagingKey("github", 1, 9), namespace="staging-other-pr-9", overrides=()
    )
    elsewhere = make_target(templates, key=StagingKey("github", 1, 10), namespace="ns-b")
    await provisioner.apply(target)
    await provisioner.apply(other)
    await provisioner.apply(replace(elsewhere, instance="another-bot"))
    await provisioner.archive(other)
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unrelated"}})
    before = len(kube.requests)

    found = await provisioner.list_stagings("test")

    assert found == [
        ClusterStaging(other.key, other.namespace, other.repo, other.sha, other.url, archived=True),
        ClusterStaging(
            target.key,
            target.namespace,
            target.repo,
            target.sha,
            target.url,
            overrides={"GREETING": "hi"},
            secret_overrides={"STRIPE_KEY": "sk_live_ünï"},
        ),
    ]
    calls = kube.requests[before:]
    assert [(r.method, r.path) for r in calls] == [
        ("GET", "/api/v1/namespaces"),
        ("GET", "/api/v1/configmaps"),
        ("GET", "/api/v1/secrets"),  # only the secret overrides ones, by name
    ]
    assert calls[2].query.get("fieldSelector") == ["metadata.name=stagingbot-secret-overrides"]
    assert naming.instance_selector("test") in calls[0].query.get("labelSelector", [""])[0]


async def test_a_cluster_list_that_fails_raises_a_temporary_error(
    kube: FakeKube, provisioner: KubernetesProvisioner
) -> None:
    kube.fail_next(status=500, path_prefix="/api/v1/configmaps")
    with pytest.raises(TemporaryError):
        await provisioner.list_stagings("test")
    kube.fail_next(status=403, path_prefix="/api/v1/namespaces")
    with pytest.raises(TemporaryError, match="403"):
        await provisioner.list_stagings("test")


# -- conditional lists, health, kept decisions ------------------------------------------

BY_NAME = RepoRef("github", 0, REPO)


def pull_lists(github: FakeGitHub) -> list[int]:
    return [r.status for r in github.requests if r.path.endswith("/pulls")]


async def test_github_lists_every_page_conditionally_and_spends_nothing_when_unchanged(
    github: FakeGitHub, app: GitHubHost
) -> None:
    first = await app.open_pulls_since(BY_NAME, ())
    assert len(first.pulls) == 150 and len(first.pages) == 2 and first.not_modified == 0
    assert all(page.etag for page in first.pages)
    used = github.rate_used

    again = await app.open_pulls_since(BY_NAME, first.pages)
    assert again.pulls == first.pulls and again.not_modified == 2
    assert pull_lists(github)[-2:] == [304, 304] and github.rate_used == used
    assert not any(r.path.startswith("/repos/") and r.path.count("/") == 3 for r in github.requests)

    github.set_head(REPO, 1, "f" * 40)  # the oldest request: on the second page
    moved = await app.open_pulls_since(BY_NAME, again.pages)
    assert pull_lists(github)[-2:] == [304, 200] and moved.not_modified == 1
    assert {p.number: p.head_sha for p in moved.pulls}[1] == "f" * 40


async def test_a_page_that_is_not_a_list_is_an_error_never_a_shorter_list(
    github: FakeGitHub, app: GitHubHost
) -> None:
    github.fail_next(200, method="GET", path=r"/pulls$", body={"message": "odd"})
    with pytest.raises(TemporaryError, match="not a list of pull requests"):
        await app.open_pulls_since(BY_NAME, ())


async def test_a_conditional_list_that_fails_raises_as_before(
    github: FakeGitHub, app: GitHubHost
) -> None:
    first = await app.open_pulls_since(BY_NAME, ())
    github.fail_next(502, method="GET", path=r"/pulls$")
    with pytest.raises(TemporaryError, match="HTTP 502"):
        await app.open_pulls_since(BY_NAME, first.pages)


async def test_health_is_two_cluster_wide_lists_and_names_what_is_unavailable(
    kube: FakeKube, provisioner: KubernetesProvisioner, templates: object
) -> None:
    target = make_target(templates)
    other = make_target(templates, key=StagingKey("github", 1, 9), namespace="staging-other-pr-9")
    await provisioner.apply(target)
    await provisioner.apply(other)
    await provisioner.archive(other)
    kube.crash_loop(SHA)
    kube.set_status("Deployment", target.namespace, "web", {"replicas": 1, "observedGeneration": 1})
    before = len(kube.requests)

    found = await provisioner.health("test", [target, other])

    assert found == {target.key: "deployment web: 0/1 available"}
    paths = [r.path for r in kube.requests[before:]]
    assert paths == ["/apis/apps/v1/deployments", "/apis/apps/v1/statefulsets"]


async def test_decisions_are_configmaps_in_the_bots_namespace_listed_in_one_call(
    kube: FakeKube, provisioner: KubernetesProvisioner
) -> None:
    key = StagingKey("github", 186853002, 2)
    decision = Decision(key, SHA, by="octocat", at=1700000000.0, repo=REPO)
    await provisioner.remember_decision("test", decision)
    await provisioner.remember_decision("test", decision)  # idempotent
    await provisioner.remember_decision("another-bot", Decision(key, "a" * 40))
    before = len(kube.requests)

    assert await provisioner.decisions("test") == {key: decision}
    assert [r.path for r in kube.requests[before:]] == ["/api/v1/namespaces/default/configmaps"]
    names = {cm["metadata"]["name"] for cm in kube.objects("ConfigMap", "default")}
    assert decisions.configmap_name("test", key) in names

    await provisioner.forget_decision("test", key)
    await provisioner.forget_decision("test", key)  # already gone: fine
    assert await provisioner.decisions("test") == {}
    assert await provisioner.decisions("another-bot") != {}


async def test_decisions_that_cannot_be_read_or_kept_are_temporary_errors(
    kube: FakeKube, provisioner: KubernetesProvisioner
) -> None:
    kube.fail_next(1, status=503, path_prefix="/api/v1/namespaces/default/configmaps")
    with pytest.raises(TemporaryError):
        await provisioner.decisions("test")
    kube.fail_next(1, status=500, path_prefix="/api/v1/namespaces/default/configmaps")
    with pytest.raises(TemporaryError):
        await provisioner.remember_decision("test", Decision(StagingKey("github", 1, 2), SHA))
