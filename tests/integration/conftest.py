"""Fixtures shared by the end-to-end tests: the local fake GitHub and fake Kubernetes API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.github import FakeGitHub
from tests.fakes.kube import FakeKube
from tests.helpers import PR_HEAD, REPO, REPO_ID


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """GitHub's example repository with its example pull request #2 open at `PR_HEAD`."""
    with FakeGitHub() as fake:
        fake.add_repo(REPO, REPO_ID, installation_id=1)
        fake.add_pull(REPO, 2, PR_HEAD, branch="changes")
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake
