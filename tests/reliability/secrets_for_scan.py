"""Recognizable secret values for every scenario of the reliability suite, and signing with them.

Each value is unusual enough that finding it anywhere (a log line, a comment, an API answer,
a page, Redis) can only mean it leaked. The GitHub App's private key comes from the fake
(`FakeGitHub.private_key_pem`) and is scanned for by its body lines.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

GITHUB_WEBHOOK_SECRET = "whsec-LEAKCANARY-gh-7c1e94d2"
GITLAB_WEBHOOK_SECRET = "glhook-LEAKCANARY-2b8d61"
GITLAB_TOKEN = "glpat-LEAKCANARY-5f3a9c1d0e"
STAGING_SECRET_KEY = "sk-LEAKCANARY-8e2f4a6b"
API_TOKEN = "apitok-LEAKCANARY-0d6b41f9a2c7"
OVERRIDE_SECRET = "pw-LEAKCANARY-override-93ab"

FIXED = {
    "github.webhook_secret": GITHUB_WEBHOOK_SECRET,
    "gitlab.webhook_secret": GITLAB_WEBHOOK_SECRET,
    "gitlab.token": GITLAB_TOKEN,
    "staging.secret_key": STAGING_SECRET_KEY,
    "api.tokens[0].token": API_TOKEN,
    "secret override DB_PASSWORD": OVERRIDE_SECRET,
}


def github_signature(body: bytes, secret: str = GITHUB_WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, event: str, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(body),
        "User-Agent": "GitHub-Hookshot/test",
    }


def key_lines(pem: str) -> list[str]:
    """Lines of a PEM private key's body: any one of them in the open is a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")][:4]
