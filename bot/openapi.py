"""The OpenAPI 3.1 description of the JSON API, served at /api/openapi.json.

Written by hand, next to the routes in `bot.api`; tests call every operation listed here
and every method not listed, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from bot.config import ROLES
from bot.stagings import SUMMARY_FIELDS
from bot.steering import ACTIONS, QA_ACTIONS

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "the body is not a JSON object",
        401: "missing or invalid bearer token (or none configured)",
        403: "the token's role may not do this",
        404: "no such staging (or override)",
        409: "the staging's state does not allow it; the error says why",
        413: "body too large",
        422: "invalid input; the error says which",
        501: "not implemented yet; the error says what",
        503: "the state store (Redis) is unavailable",
    }
    return {str(code): _json(_ref("Error"), meaning[code]) for code in codes}


_REF_PARAM = {
    "name": "ref",
    "in": "path",
    "required": True,
    "description": "`github:owner/repo#12` or `gitlab:group/sub/project!12`, URL-encoded",
    "schema": STRING,
}

SUMMARY = {
    "type": "object",
    "properties": {
        "ref": STRING,
        "host": {"enum": ["github", "gitlab"]},
        "repo": STRING,
        "number": {"type": "integer"},
        "state": {
            "description": "the phase",
            "enum": [
                "pending",
                "awaiting approval",
                "waiting for build",
                "build failed",
                "deploying",
                "running",
                "failed",
                "archived",
                "destroying",
                "gone",
            ],
        },
        "url": {**NULLABLE_STRING, "description": "the staging's URL while it exists"},
        "pr_url": NULLABLE_STRING,
        "sha": {**NULLABLE_STRING, "description": "the commit deployed, else the head"},
        "branch": STRING,
        "title": STRING,
        "author": STRING,
        "updated_at": {"type": ["number", "null"], "description": "unix seconds"},
    },
    "required": list(SUMMARY_FIELDS),
}

DETAIL = {
    "allOf": [
        _ref("Summary"),
        {
            "type": "object",
            "properties": {
                "reason": {
                    **NULLABLE_STRING,
                    "description": "why it is in its state (or why its last archive was "
                    "refused or failed); null for non-operators when dashboard.show_details "
                    "is false",
                },
                "overrides": {
                    "type": "object",
                    "additionalProperties": STRING,
                    "description": "KEY -> value; secret values shown as **********",
                },
                "secret_overrides": {"type": "array", "items": STRING},
                "history": {"type": "array", "items": _ref("HistoryEntry")},
                "namespace": {
                    **NULLABLE_STRING,
                    "description": "null for non-operators when dashboard.show_details is false",
                },
                "head_sha": NULLABLE_STRING,
                "idle_until": {
                    "type": ["number", "null"],
                    "description": "unix seconds when it is archived as idle (staging.idle_ttl); "
                    "null when it does not run, idle sleep is off, or its archive was "
                    "refused (or failed) under the current deadline",
                },
                "removed_at": {
                    "type": ["number", "null"],
                    "description": "archived: unix seconds when retention removes it",
                },
                "queue_position": {
                    "type": ["integer", "null"],
                    "description": "queued: its 1-based place in the queue for a slot",
                },
                "fork": {"type": "boolean"},
                "archived": {"type": "boolean"},
                "exists": {"type": "boolean"},
                "links": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": STRING, "url": STRING},
                    },
                    "description": "extra links from the command provisioner's `info` step",
                },
                "offline": {
                    "type": ["object", "null"],
                    "description": "offline mode only: the checks, deployment, sticky "
                    "comment and replies that were not sent to the Git host",
                },
                "qa": {
                    "description": "QA's last sign-off, null before there is one",
                    "oneOf": [{"type": "null"}, _ref("QaSignOff")],
                },
            },
            "required": ["reason", "overrides", "history", "namespace"],
        },
    ]
}

HISTORY_ENTRY = {
    "type": "object",
    "description": "newest first",
    "properties": {
        "at": {"type": "number"},
        "action": STRING,
        "result": STRING,
        "sha": STRING,
        "event": NULLABLE_STRING,
        "by": STRING,
        "reason": STRING,
    },
}

QA_SIGN_OFF = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["passed", "failed"]},
        "sha": {**STRING, "description": "the commit QA signed off"},
        "by": STRING,
        "note": STRING,
        "at": {"type": ["number", "null"], "description": "unix seconds"},
        "current": {
            "type": "boolean",
            "description": "about the head: false once new commits came (staging/qa pending)",
        },
    },
}


def _qa_operation(action: str) -> dict[str, Any]:
    verdict = "passed" if action == "qa-pass" else "failed"
    note = "what QA says; required for qa-fail (the reason)"
    return {
        "post": {
            "summary": f"QA {verdict} the staging at its head commit (qa, operator)",
            "description": "Sets the `staging/qa` check run (GitHub) or commit status (GitLab) "
            "on the head commit, which the staging must run; a push resets it to pending.",
            "parameters": [_REF_PARAM],
            "requestBody": {
                "required": action == "qa-fail",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "note": {**STRING, "maxLength": 500, "description": note}
                            },
                        }
                    }
                },
            },
            "responses": {
                "202": _json(_ref("Accepted"), "stored and queued"),
                **_errors(400, 401, 403, 404, 409, 413, 422, 503),
            },
        }
    }


_ROLES = ", ".join(ROLES)

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "stagingbot API",
        "version": "1",
        "description": "One staging per pull/merge request. Bearer tokens come from the "
        f"config ([[api.tokens]]) with a role: {_ROLES}. See docs/api.md.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/api/stagings": {
            "get": {
                "summary": "Every staging (viewer)",
                "parameters": [
                    {"name": name, "in": "query", "schema": STRING, "description": text}
                    for name, text in (
                        ("host", "github or gitlab"),
                        ("repo", "full repository name, case-insensitive"),
                        ("state", "a phase, e.g. running"),
                        ("q", "search in branch, title, author, reference and number"),
                    )
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"stagings": {"type": "array", "items": _ref("Summary")}},
                        },
                        "the stagings",
                    ),
                    **_errors(401, 503),
                },
            }
        },
        "/api/stagings/{ref}": {
            "get": {
                "summary": "One staging, its overrides and history (viewer)",
                "parameters": [_REF_PARAM],
                "responses": {"200": _json(_ref("Detail"), "the staging"), **_errors(401, 404)},
            }
        },
        "/api/stagings/{ref}/{action}": {
            "post": {
                "summary": "Act on a staging (operator)",
                "description": "deploy on a fork approves its head; extend keeps the staging "
                "from idle sleep (archived: from removal) for `duration`, answering `until`",
                "parameters": [
                    _REF_PARAM,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": list(ACTIONS)},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "sha": {
                                        "type": "string",
                                        "pattern": "^[0-9a-f]{40}$",
                                        "description": "deploy only: the head, built: "
                                        "deploy it now without waiting for "
                                        "staging.wait_for (never an unapproved fork commit)",
                                    },
                                    "duration": {
                                        "type": "string",
                                        "pattern": "^[0-9]{1,6}[mhdwMHDW]$",
                                        "description": "extend only: e.g. 12h or 2d; default "
                                        "staging.idle_ttl, at most staging.max_extend",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(_ref("Accepted"), "stored and queued"),
                    **_errors(400, 401, 403, 404, 409, 422, 501, 503),
                },
            }
        },
        **{f"/api/stagings/{{ref}}/{action}": _qa_operation(action) for action in QA_ACTIONS},
        "/api/stagings/{ref}/overrides/{key}": {
            "parameters": [
                _REF_PARAM,
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
                },
            ],
            "put": {
                "summary": "Set an environment override (operator)",
                "description": (
                    "A key in commands.secret_keys is kept sealed, applied through the "
                    "staging's Secret and shown as **********. With `secret: true` a key that "
                    "is not a secret key is refused (422) instead of kept in the clear."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"value": STRING, "secret": {"type": "boolean"}},
                                "required": ["value"],
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"key": STRING, "secret": {"type": "boolean"}},
                        },
                        "stored and queued; the value is never echoed",
                    ),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            },
            "delete": {
                "summary": "Remove an override, a secret one too (operator)",
                "responses": {
                    "204": {"description": "removed and queued"},
                    **_errors(401, 403, 404, 422, 503),
                },
            },
        },
        "/api/sweep": {
            "post": {
                "summary": "Queue a sweep under the cron's job id (operator)",
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "properties": {
                                "queued": {"const": True},
                                "already_queued": {"type": "boolean"},
                            },
                        },
                        "a sweep is queued (possibly one that already was)",
                    ),
                    **_errors(401, 403, 503),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"error": STRING},
                "required": ["error"],
            },
            "Summary": SUMMARY,
            "Detail": DETAIL,
            "HistoryEntry": HISTORY_ENTRY,
            "QaSignOff": QA_SIGN_OFF,
            "Accepted": {
                "type": "object",
                "properties": {
                    "ref": STRING,
                    "action": {"enum": [*ACTIONS, *QA_ACTIONS]},
                    "accepted": {"const": True},
                    "until": {
                        "type": "number",
                        "description": "extend only: unix seconds before which it is kept",
                    },
                },
            },
        },
    },
}
