"""What the cluster says exists: the bot's labelled namespaces read back as stagings (pure).

The namespace carries the staging's identity (labels), the commit last applied (label),
its repository, URL and archive mark (annotations); the bot-owned overrides ConfigMap in
it carries the overrides as applied, and its Secret the secret ones. Together they rebuild
a staging's record after Redis lost it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from bot import naming
from bot.model import ClusterStaging, StagingKey
from bot.provision import archive, overrides

Obj = Mapping[str, Any]


def stagings(
    namespaces: Iterable[Obj], configmaps: Iterable[Obj], secrets: Iterable[Obj] = ()
) -> list[ClusterStaging]:
    """The stagings among `namespaces` (already selected by the instance's labels), sorted by
    key, each with the overrides from its `stagingbot-overrides` ConfigMap in `configmaps`.

    A namespace whose labels do not say which staging it is (edited by hand) is skipped:
    nothing can be rebuilt from it, and the bot would not touch it anyway.
    """
    applied = {
        _metadata(cm).get("namespace", ""): _text_values(cm.get("data"))
        for cm in configmaps
        if _metadata(cm).get("name") == overrides.CONFIGMAP
    }
    secret = {
        _metadata(item).get("namespace", ""): _decoded(item.get("data"))
        for item in secrets
        if _metadata(item).get("name") == overrides.SECRET
    }
    found = []
    for namespace in namespaces:
        metadata = _metadata(namespace)
        key = staging_key(metadata)
        if key is None:
            continue
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        name = str(metadata.get("name", ""))
        found.append(
            ClusterStaging(
                key=key,
                namespace=name,
                repo=str(annotations.get(naming.ANNOTATION_REPO, "")),
                sha=str(labels.get(naming.LABEL_SHA, "")),
                url=str(annotations.get(naming.ANNOTATION_URL, "")),
                terminating=terminating(namespace),
                archived=archive.is_archived(dict(namespace)),
                overrides=applied.get(name, {}),
                secret_overrides=secret.get(name, {}),
            )
        )
    return sorted(found, key=lambda staging: staging.key)


def staging_key(metadata: Obj) -> StagingKey | None:
    """The key from the identity labels, or from the key annotation; None if neither reads."""
    labels = metadata.get("labels") or {}
    host = labels.get(naming.LABEL_HOST, "")
    repo_id, number = labels.get(naming.LABEL_REPO_ID, ""), labels.get(naming.LABEL_NUMBER, "")
    if host and str(repo_id).isdigit() and str(number).isdigit():
        return StagingKey(str(host), int(repo_id), int(number))
    text = str((metadata.get("annotations") or {}).get(naming.ANNOTATION_KEY, ""))
    try:
        return StagingKey.parse(text)
    except ValueError:
        return None


def terminating(namespace: Obj) -> bool:
    return bool(_metadata(namespace).get("deletionTimestamp")) or (
        (namespace.get("status") or {}).get("phase") == "Terminating"
    )


def _metadata(obj: Obj) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _text_values(data: object) -> dict[str, str]:
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _decoded(data: object) -> dict[str, str]:
    """A Secret's `data` (base64) as text; a value that does not decode is left out."""
    found = {}
    for key, value in _text_values(data).items():
        try:
            found[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeError):
            continue
    return found
