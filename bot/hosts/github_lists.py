"""Listing a repository's open pull requests with conditional requests (GitHub's ETags).

GitHub answers `304 Not Modified` to a request whose `If-None-Match` holds the ETag of an
unchanged answer, and a 304 does not count against the rate limit
(https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate).
PyGithub's `PaginatedList` cannot send one (PyGithub keeps conditional requests to
`CompletableGithubObject.update()`, which reads a 304 as "unchanged"), so the pages are
read here with the same requester: every page asked with the ETag it had last time, a
page answered 304 taken from what the sweep kept, `Link: rel="next"` followed to the end.
All or nothing: an error, an unreadable page or a loop raises, never a shorter list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from github.PullRequest import PullRequest as GithubPullRequest
from github.Requester import Requester

from bot.errors import TemporaryError
from bot.hosts.base import ListPage, OpenPulls
from bot.model import PullRequest, RepoRef

PER_PAGE = 100  # GitHub's maximum page size
MAX_PAGES = 100  # 10,000 open pull requests: past that, something is wrong
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def first_url(repo: RepoRef) -> str:
    """The first page, by id when known (a renamed repository still answers)."""
    path = f"/repositories/{repo.id}/pulls" if repo.id else f"/repos/{repo.full_name}/pulls"
    return f"{path}?{urlencode({'state': 'open', 'per_page': PER_PAGE})}"


def open_pulls_since(
    requester: Requester,
    repo: RepoRef,
    known: Sequence[ListPage],
    convert: Callable[[str, GithubPullRequest], PullRequest],
) -> OpenPulls:
    """Every page, conditionally; GithubException for an HTTP error (mapped by the caller)."""
    kept = {page.url: page for page in known}
    pages: list[ListPage] = []
    not_modified = 0
    url = first_url(repo)
    while url:
        if len(pages) >= MAX_PAGES or any(page.url == url for page in pages):
            raise TemporaryError(f"list the pull requests of {repo.full_name}: pages loop")
        cached = kept.get(url)
        headers = {"If-None-Match": cached.etag} if cached and cached.etag else {}
        status, raw_headers, output = requester.requestJson("GET", url, headers=headers)
        response = {str(k).lower(): str(v) for k, v in raw_headers.items()}
        if status == 304 and cached is not None:
            page, not_modified = cached, not_modified + 1
        elif 200 <= status < 300:
            items = _items(output, repo)
            pulls = tuple(
                convert(repo.host, GithubPullRequest(requester, raw_headers, item, completed=False))
                for item in items
            )
            page = ListPage(url, response.get("etag", ""), pulls, _next(response.get("link", "")))
        else:
            raise requester.createException(status, raw_headers, _error_body(output))
        pages.append(page)
        url = page.next_url
    return OpenPulls(tuple(p for page in pages for p in page.pulls), tuple(pages), not_modified)


def _items(output: str, repo: RepoRef) -> list[dict[str, Any]]:
    try:
        data = json.loads(output) if output else None
    except ValueError:
        data = None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise TemporaryError(
            f"list the pull requests of {repo.full_name}: a page is not a list of pull requests"
        )
    return data


def _error_body(output: str) -> dict[str, Any]:
    try:
        data = json.loads(output) if output else {}
    except ValueError:
        return {"message": output[:200]}
    return data if isinstance(data, dict) else {}


def _next(link: str) -> str:
    match = _NEXT.search(link)
    return match.group(1) if match else ""
