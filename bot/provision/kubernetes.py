"""The Kubernetes provisioner: server-side apply of a staging into its own labelled namespace."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

import aiohttp
from kubernetes.aio import client as k8s_client
from kubernetes.aio import config as _k8s_config
from kubernetes.aio import dynamic as _dynamic
from kubernetes.aio.client import ApiException
from kubernetes.aio.dynamic.exceptions import ResourceNotFoundError

from bot import metrics, naming
from bot.errors import ArchiveFailed, ClusterError, PermanentError, TemporaryError, classify_http
from bot.model import ClusterStaging, Phase, Rollout, StagingKey, Target
from bot.provision import access, archive, decisions, health, inventory, overrides, render
from bot.provision.access import Access
from bot.provision.archive import ANNOTATION_ARCHIVED
from bot.provision.base import StepOutput
from bot.provision.decisions import Decision
from bot.provision.rollout import workload_rollout

Obj = dict[str, Any]
T = TypeVar("T")
# kubernetes.aio is only partly typed: its untyped entry points are used through Any, here only.
k8s_config: Any = _k8s_config
DynamicClient: Any = _dynamic.DynamicClient

# What the namespace last held, as `apiVersion/Kind` pairs: pruning lists only these kinds
# (plus what is applied now), so a kind dropped from every template is still cleaned up.
# The same idea as kubectl's ApplySet `applyset.kubernetes.io/contains-group-kinds`.
ANNOTATION_KINDS = "stagingbot.dev/applied-kinds"
TERMINATING_DELAY = 2.0
CONFLICT_DELAY = 1.0
SHOWN_PHRASE = 60  # of an API server's failing answer's reason phrase, on the request
REQUEST_TIMEOUT = 30.0
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
WORKLOAD_KINDS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"))
# Dependencies first (Helm's install order, shortened); unknown kinds go last.
APPLY_ORDER = (
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
)
TERMINATING_MESSAGE = "namespace {namespace} is still terminating"
ARCHIVED_REASON = "archived: scaled to zero"
# What a failed archive left (bot.errors.ArchiveFailed): the staging's state, in words.
NOTHING_STOPPED = "nothing was scaled down: the staging keeps running, its data untouched"
STOPPED_AND_BACK = (
    "{which} had been scaled down and {were} scaled back up: the staging keeps running, "
    "its data untouched"
)
PARTLY_STOPPED = (
    "partly archived: {which} {are} scaled down, the rest still runs "
    "(scaling back up failed too: {undo})"
)
STILL_MARKED = (
    "its workloads run again, but its namespace is still marked archived (so an apply would "
    "archive it; clearing the mark failed: {undo})"
)
MAYBE_STOPPED = (
    "it may be partly archived: what is scaled down could not be read "
    "(scaling back up failed too: {undo})"
)
NOT_OURS_MESSAGE = (
    "namespace {namespace} exists but is not labelled as this staging's "
    "(instance {instance!r}); refusing to {action} it"
)


def _no_cluster_configured(kubeconfig: str) -> str:
    """Why there is no cluster to talk to, in words; "" when there may be one.

    Without this, the client's own message for a missing ~/.kube/config is
    "Invalid kube-config file. Expected key current-context", which helps nobody.
    """
    if kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ""
    default = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if any(os.path.exists(path) for path in default.split(os.pathsep)):
        return ""
    return (
        "no cluster configured: not running in a pod, and no kubeconfig at "
        f"{default}; set kubernetes.kubeconfig (or KUBECONFIG)"
    )


class KubernetesProvisioner:
    """Builds, reads and removes stagings with `kubernetes.aio`; one ApiClient for its lifetime."""

    def __init__(
        self,
        api: Any,
        dynamic: Any,
        field_manager: str = "stagingbot",
        timeout: float = 30.0,
        state_namespace: str = "default",
        access: Access | None = None,
    ) -> None:
        self._api = api
        self._access = access  # the RoleBinding that gives the bot its rights in a staging
        self._namespaced_only: set[str] = set()  # kinds RBAC refuses to list cluster-wide
        self._state_namespace = state_namespace  # where decisions are kept (ConfigMaps)
        self._dynamic = dynamic
        self._field_manager = field_manager
        self._archive_manager = f"{field_manager}-archive"
        self._timeout = timeout
        self._resources: dict[tuple[str, str], Any] = {}

    @classmethod
    async def create(
        cls,
        kubeconfig: str,
        context: str,
        field_manager: str = "stagingbot",
        discovery_cache: str | None = None,
        state_namespace: str = "",
        access: Access | None = None,
    ) -> KubernetesProvisioner:
        """Connects with `kubeconfig` ("" = in-cluster in a pod, else KUBECONFIG/~/.kube/config).

        `discovery_cache` is the file the dynamic client keeps API discovery in (default: one
        per API server URL in the temp directory). `state_namespace` is the bot's own
        namespace, where it keeps decisions ("" = the pod's own, else `default`).
        """
        configuration = k8s_client.Configuration()
        missing = _no_cluster_configured(kubeconfig)
        if missing:
            raise PermanentError(missing)
        try:
            if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                await k8s_config.load_kube_config(
                    config_file=kubeconfig or None,
                    context=context or None,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (k8s_config.ConfigException, OSError) as exc:
            raise PermanentError(f"cannot load the Kubernetes configuration: {exc}") from exc
        api: Any = k8s_client.ApiClient(configuration)
        try:
            dynamic = await _call(
                "discover the Kubernetes API", DynamicClient(api, cache_file=discovery_cache)
            )
        except BaseException:
            await api.close()
            raise
        return cls(
            api,
            dynamic,
            field_manager,
            state_namespace=_state_namespace(state_namespace),
            access=access,
        )

    async def close(self) -> None:
        await self._api.close()

    # apply

    async def apply(self, target: Target) -> None:
        """Namespace, TLS Secret copy, every rendered object (server-side apply), then prune."""
        objects = render.render_manifests(target)
        for obj in objects:  # an unknown kind fails before anything is written
            await self._resource(obj["apiVersion"], obj["kind"], obj)
        namespace = await self._namespace(target)
        if namespace is not None:
            _check_ours(namespace, target, "update")
            if _terminating(namespace):
                raise TemporaryError(
                    TERMINATING_MESSAGE.format(namespace=target.namespace), TERMINATING_DELAY
                )
        if target.tls_secret:
            objects.append(await self._tls_copy(target))
        objects.sort(key=_apply_rank)
        kinds = sorted({_kind_id(obj) for obj in objects})
        previous = _annotation_kinds(namespace)
        await self._apply_namespace(target, sorted(set(kinds) | set(previous)))
        await self._grant_access(target)
        existing = await self._list_labelled(target, set(kinds) | set(previous))
        # An archived staging stays archived, workloads the templates just gained included.
        staging_archived = archive.is_archived(namespace)
        live = {_identity(obj): obj for obj in existing}
        for obj in objects:
            current = live.get(_identity(obj))
            if staging_archived or archive.is_archived(current):
                archive.keep_archived(obj, current)
            await self._apply_object(obj)
        applied = {_identity(obj) for obj in objects}
        for obj in existing:
            if _identity(obj) not in applied and not obj["metadata"].get("ownerReferences"):
                await self._delete_object(obj)
        if previous and set(previous) != set(kinds):
            await self._apply_namespace(target, kinds)

    async def _apply_namespace(self, target: Target, kinds: list[str]) -> None:
        manifest = render.namespace_manifest(target)
        manifest["metadata"].setdefault("annotations", {})[ANNOTATION_KINDS] = ",".join(kinds)
        await self._apply_object(manifest)

    async def _grant_access(self, target: Target) -> None:
        """The bot's rights inside the staging (bot.provision.access), before anything in it."""
        if self._access is not None:
            binding = access.role_binding(self._access, target.namespace, target.instance)
            await self._apply_object(binding)

    async def _apply_object(self, obj: Obj) -> None:
        resource = await self._resource(obj["apiVersion"], obj["kind"], obj)
        call = self._dynamic.server_side_apply(
            resource,
            body=obj,
            field_manager=self._field_manager,
            force_conflicts=True,
            _request_timeout=self._timeout,
        )
        await _call(f"apply {obj['kind']}/{obj['metadata']['name']}", call, obj)

    async def _merge_patch(self, obj: Obj, patch: Obj, what: str) -> None:
        """A JSON merge patch as the archive field manager; an object gone meanwhile is fine."""
        resource = await self._resource(obj["apiVersion"], obj["kind"], obj)
        name = obj["metadata"]["name"]
        call = self._dynamic.patch(
            resource,
            body=patch,
            name=name,
            namespace=obj["metadata"].get("namespace"),
            content_type="application/merge-patch+json",
            field_manager=self._archive_manager,
            _request_timeout=self._timeout,
        )
        await _call(f"{what} {obj['kind']}/{name}", call, obj, missing_ok=True)

    async def _tls_copy(self, target: Target) -> Obj:
        """The wildcard certificate Secret `ns/name`, as `stagingbot-tls` in the staging."""
        source_ns, _, source_name = target.tls_secret.partition("/")
        if not source_ns or not source_name:
            raise PermanentError(
                f"tls_secret {target.tls_secret!r} must be written as namespace/name"
            )
        secret = await self._get("v1", "Secret", source_name, source_ns)
        if secret is None:
            raise PermanentError(f"TLS secret {target.tls_secret} does not exist")
        copy: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": render.TLS_SECRET_NAME,
                "namespace": target.namespace,
                "labels": naming.selector_labels(target.key, target.instance),
            },
            "type": secret.get("type", "kubernetes.io/tls"),
            "data": secret.get("data") or {},
        }
        return copy

    async def _list_labelled(self, target: Target, kinds: Iterable[str]) -> list[Obj]:
        """Every object of `kinds` in the staging's namespace carrying the staging's labels."""
        selector = ",".join(
            f"{k}={v}" for k, v in naming.selector_labels(target.key, target.instance).items()
        )
        found: list[Obj] = []
        for kind_id in sorted(kinds):
            api_version, _, kind = kind_id.rpartition("/")
            found.extend(await self._list(api_version, kind, target.namespace, selector))
        return found

    async def _delete_object(self, obj: Obj) -> None:
        resource = await self._resource(obj["apiVersion"], obj["kind"], obj)
        name = obj["metadata"]["name"]
        call = self._dynamic.delete(
            resource,
            name=name,
            namespace=obj["metadata"]["namespace"],
            body={"propagationPolicy": "Background"},
            _request_timeout=self._timeout,
        )
        await _call(f"prune {obj['kind']}/{name}", call, missing_ok=True)

    # status

    async def status(self, target: Target) -> Rollout:
        """Ready when every Deployment/StatefulSet is rolled out; failed with the pods' reason."""
        selector = ",".join(
            f"{k}={v}" for k, v in naming.selector_labels(target.key, target.instance).items()
        )
        workloads: list[Obj] = []
        for api_version, kind in WORKLOAD_KINDS:
            workloads.extend(await self._list(api_version, kind, target.namespace, selector))
        if not workloads:
            return Rollout(ready=True, reason="no deployments or statefulsets to wait for")
        # Scaled to zero on purpose: nothing to wait for, and its last pods may still be
        # shutting down (a crash-looping one would read as a failure).
        workloads = [w for w in workloads if not archive.is_archived(w)]
        if not workloads:
            return Rollout(ready=True, reason=ARCHIVED_REASON)
        pods = await self._list("v1", "Pod", target.namespace, None)
        waiting: list[str] = []
        for workload in sorted(workloads, key=lambda w: (w["kind"], w["metadata"]["name"])):
            rollout = workload_rollout(workload, pods)
            if rollout.failed:
                return rollout
            if not rollout.ready:
                waiting.append(rollout.reason)
        if waiting:
            return Rollout(ready=False, reason="; ".join(waiting))
        return Rollout(ready=True)

    # archive and restore
    #
    # Who owns `spec.replicas` (server-side apply tracks an owner per field):
    # - `apply` applies the rendered objects as `stagingbot`, forcing conflicts.
    # - `archive` and `restore` write JSON merge patches as `stagingbot-archive`: Updates,
    #   which take over exactly the fields whose value they change and never remove a
    #   field they did not name. An Apply by a second manager would claim its fields for
    #   good (applying without them later removes them); an Apply as `stagingbot` would
    #   have to carry the whole rendered object, or drop every field it left out.
    # - While archived, `apply` applies the archived form (archive.keep_archived) as
    #   `stagingbot`: its force cannot scale the staging up, and both managers share
    #   `replicas: 0` without conflict.
    # - `restore` changes `replicas` to the recorded count, so `stagingbot-archive` takes it
    #   over: the next apply sets the template's count (equal, or it wins by force) or,
    #   with no `replicas` in the template, leaves the restored one instead of dropping it
    #   back to the default.
    # https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management

    async def archive(self, target: Target) -> None:
        """Scales the staging's Deployments/StatefulSets to 0 and suspends its CronJobs.

        The namespace is marked first (so an apply meanwhile archives too), then each object.
        No namespace, or one terminating: nothing runs, nothing to do. A StatefulSet that
        would delete its volume claims on the way down: refused before anything changes.
        A change the cluster refuses for good (a 403 from RBAC, a 422): what this attempt
        or an earlier one scaled down is scaled back up (`restore`), and `ArchiveFailed`
        says what is left; temporary errors propagate (a retry carries on where it stopped).
        """
        namespace = await self._namespace(target)
        if namespace is None or _terminating(namespace):
            return
        try:
            _check_ours(namespace, target, "archive")
            await self._grant_access(target)
            statefulsets = await self._list_labelled(target, _kind_ids((archive.STATEFULSET,)))
        except PermanentError as exc:
            raise ArchiveFailed(_shown(exc), NOTHING_STOPPED) from exc
        refused = archive.refusal(statefulsets)
        if refused is not None:
            raise refused
        try:
            if not archive.is_archived(namespace):
                marks = {"metadata": {"annotations": {ANNOTATION_ARCHIVED: "true"}}}
                await self._merge_patch(namespace, marks, "archive")
            for obj in await self._list_labelled(target, _kind_ids(archive.ARCHIVED_KINDS)):
                patch = archive.archive_patch(obj)
                if patch is not None:
                    await self._merge_patch(obj, patch, "archive")
        except PermanentError as exc:
            raise await self._archive_failed(target, exc) from exc

    async def _archive_failed(self, target: Target, exc: PermanentError) -> ArchiveFailed:
        """Put back what is scaled down (never deleting anything), and say what is left."""
        down: list[str] | None = None
        try:
            down = await self._stopped(target)
            await self.restore(target)
        except (PermanentError, TemporaryError) as undo:
            with contextlib.suppress(PermanentError, TemporaryError):
                down = await self._stopped(target)  # what the restore left, if it can be read
            if down is None:
                left = MAYBE_STOPPED.format(undo=_shown(undo))
            elif not down:
                left = STILL_MARKED.format(undo=_shown(undo))
            else:
                are = "is" if len(down) == 1 else "are"
                left = PARTLY_STOPPED.format(which=_workloads(down), are=are, undo=_shown(undo))
            return ArchiveFailed(_shown(exc), left, partly=True)
        if not down:
            return ArchiveFailed(_shown(exc), NOTHING_STOPPED)
        were = "was" if len(down) == 1 else "were"
        back = STOPPED_AND_BACK.format(which=_workloads(down), were=were)
        return ArchiveFailed(_shown(exc), back)

    async def _stopped(self, target: Target) -> list[str]:
        """The staging's workloads archiving stopped ("Deployment web"), as they are now."""
        found = await self._list_labelled(target, _kind_ids(archive.ARCHIVED_KINDS))
        return [f"{o['kind']} {o['metadata']['name']}" for o in found if archive.is_archived(o)]

    async def restore(self, target: Target) -> None:
        """Brings back the recorded replica counts and un-suspends what archive suspended.

        The namespace's mark goes last: until then an apply keeps the staging archived.
        """
        namespace = await self._namespace(target)
        if namespace is None or _terminating(namespace):
            return
        _check_ours(namespace, target, "restore")
        await self._grant_access(target)
        kinds = _kind_ids((*archive.ARCHIVED_KINDS, archive.JOB))
        for obj in await self._list_labelled(target, kinds):
            patch = archive.restore_patch(obj)
            if patch is not None:
                await self._merge_patch(obj, patch, "restore")
        if archive.is_archived(namespace):
            unmark = {"metadata": {"annotations": {ANNOTATION_ARCHIVED: None}}}
            await self._merge_patch(namespace, unmark, "restore")

    # destroy

    async def destroy(self, target: Target) -> bool:
        """Deletes the namespace (only if it is this staging's); True once it is gone."""
        namespace = await self._namespace(target)
        if namespace is None:
            return True
        _check_ours(namespace, target, "delete")
        if _terminating(namespace):
            return False
        resource = await self._resource("v1", "Namespace", namespace)
        options = {
            "propagationPolicy": "Background",
            "preconditions": {"uid": namespace["metadata"]["uid"]},
        }
        call = self._dynamic.delete(
            resource, name=target.namespace, body=options, _request_timeout=self._timeout
        )
        try:
            gone = (
                await _call(f"delete namespace {target.namespace}", call, missing_ok=True) is None
            )
        except TemporaryError:
            # 409: it started terminating (or was replaced) since we read it.
            namespace = await self._namespace(target)
            if namespace is None:
                return True
            if _terminating(namespace):
                return False
            raise
        return gone

    def take_output(self, target: Target) -> StepOutput:
        return StepOutput()  # no programs of its own: what happened is in the reasons

    async def notify(self, target: Target, phase: Phase, reason: str) -> None:
        """Nothing to tell: the cluster holds the staging's state itself."""

    # the sweep

    async def list_stagings(self, instance: str) -> list[ClusterStaging]:
        """Three list calls: the instance's namespaces, its overrides ConfigMaps and its
        secret overrides Secrets (only those, by name: never any other Secret)."""
        selector = naming.instance_selector(instance)
        only_overrides = f"metadata.name={overrides.CONFIGMAP}"
        only_secret = f"metadata.name={overrides.SECRET}"
        try:
            namespaces = await self._list_cluster("v1", "Namespace", selector, None)
            configmaps = await self._list_each("ConfigMap", selector, only_overrides, namespaces)
            secrets = await self._list_each("Secret", selector, only_secret, namespaces)
        except PermanentError as exc:  # say, RBAC refuses the list: still no answer at all
            raise TemporaryError(exc.reason) from exc
        return inventory.stagings(namespaces, configmaps, secrets)

    async def health(self, instance: str, running: Sequence[Target]) -> dict[StagingKey, str]:
        """Two list calls, cluster-wide: the instance's Deployments and StatefulSets."""
        selector = naming.instance_selector(instance)
        workloads: list[Obj] = []
        try:
            for api_version, kind in WORKLOAD_KINDS:
                found = await self._list_cluster(api_version, kind, selector, None)
                workloads += [{**item, "apiVersion": api_version, "kind": kind} for item in found]
        except PermanentError as exc:
            raise TemporaryError(exc.reason) from exc
        return health.unavailable(workloads)

    async def remember_decision(self, instance: str, decision: Decision) -> None:
        """A ConfigMap in the bot's namespace (server-side apply: idempotent)."""
        try:
            await self._apply_object(
                decisions.to_configmap(decision, instance, self._state_namespace)
            )
        except PermanentError as exc:  # say, RBAC: the teardown waits until it can be kept
            raise TemporaryError(f"cannot keep the decision: {exc.reason}") from exc

    async def forget_decision(self, instance: str, key: StagingKey) -> None:
        name = decisions.configmap_name(instance, key)
        resource = await self._resource("v1", "ConfigMap")
        call = self._dynamic.delete(
            resource, name=name, namespace=self._state_namespace, _request_timeout=self._timeout
        )
        await _call(f"delete ConfigMap/{name}", call, missing_ok=True)

    async def decisions(self, instance: str) -> dict[StagingKey, Decision]:
        """One list call in the bot's namespace."""
        selector = decisions.selector(instance)
        try:
            found = await self._list_cluster(
                "v1", "ConfigMap", selector, None, namespace=self._state_namespace
            )
        except PermanentError as exc:
            raise TemporaryError(exc.reason) from exc
        return decisions.from_configmaps(found)

    async def _list_each(
        self, kind: str, selector: str, fields: str, namespaces: list[Obj]
    ) -> list[Obj]:
        """Every `kind` in the cluster, in one call where RBAC allows it; with the least
        privilege of manifests/bot/ (no cluster-wide read of Secrets), one call in each
        staging namespace, where the bot's RoleBinding lets it read."""
        if kind not in self._namespaced_only:
            try:
                return await self._list_cluster("v1", kind, selector, fields)
            except PermanentError as exc:
                if not _forbidden(exc):
                    raise
                self._namespaced_only.add(kind)
        found: list[Obj] = []
        for namespace in namespaces:
            if inventory.terminating(namespace):
                continue  # its RoleBinding may be gone already; it is on its way out
            name = namespace["metadata"]["name"]
            found += await self._list_cluster("v1", kind, selector, fields, namespace=name)
        return found

    async def _list_cluster(
        self,
        api_version: str,
        kind: str,
        selector: str,
        fields: str | None,
        namespace: str | None = None,
    ) -> list[Obj]:
        """Every `kind` in the whole cluster (or `namespace`) matching the selectors; whole,
        or it raises."""
        resource = await self._resource(api_version, kind)
        call = self._dynamic.get(
            resource,
            namespace=namespace,
            label_selector=selector,
            field_selector=fields,
            _request_timeout=self._timeout,
        )
        found = _plain(await _call(f"list {kind} in the cluster", call))
        if (found.get("metadata") or {}).get("continue"):  # a chunk: never taken for the whole
            raise TemporaryError(f"list {kind} in the cluster: the API server sent a partial list")
        items = found.get("items", False)  # an empty list may come as null, never absent
        if items is not None and not isinstance(items, list):
            raise TemporaryError(f"list {kind} in the cluster: the answer holds no list")
        return items or []

    # plumbing

    async def _namespace(self, target: Target) -> Obj | None:
        return await self._get("v1", "Namespace", target.namespace, None)

    async def _resource(self, api_version: str, kind: str, obj: Obj | None = None) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            try:
                search = self._dynamic.resources.get(api_version=api_version, kind=kind)
                self._resources[key] = await _call(f"discover {api_version} {kind}", search)
            except ResourceNotFoundError:
                name = (obj or {}).get("metadata", {}).get("name", "")
                raise PermanentError(
                    f"invalid manifest: {kind}/{name}: the cluster does not serve "
                    f"{kind} in {api_version}"
                ) from None
        return self._resources[key]

    async def _get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> Obj | None:
        resource = await self._resource(api_version, kind)
        call = self._dynamic.get(
            resource, name=name, namespace=namespace, _request_timeout=self._timeout
        )
        found = await _call(f"read {kind}/{name}", call, missing_ok=True)
        return None if found is None else _plain(found)

    async def _list(
        self, api_version: str, kind: str, namespace: str, selector: str | None
    ) -> list[Obj]:
        resource = await self._resource(api_version, kind)
        call = self._dynamic.get(
            resource, namespace=namespace, label_selector=selector, _request_timeout=self._timeout
        )
        found = await _call(f"list {kind} in {namespace}", call, missing_ok=True)
        # List items carry no apiVersion/kind on the wire: put them back.
        items = [] if found is None else _plain(found).get("items") or []
        return [{**item, "apiVersion": api_version, "kind": kind} for item in items]


async def _call(
    what: str, call: Awaitable[T], obj: Obj | None = None, missing_ok: bool = False
) -> T | None:
    """Awaits one API call, turning its failures into PermanentError/TemporaryError.

    With `missing_ok`, a 404 answers None (a read of something absent, a delete of
    something already gone).
    """
    metrics.api_call("kubernetes")
    try:
        return await call
    except ApiException as exc:
        if exc.status == 404 and missing_ok:
            return None
        metrics.api_error("kubernetes", int(exc.status or 0))
        raise _classify(exc, what, obj) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        metrics.api_error("kubernetes", None)
        reason = f"{what}: HTTP 0: {str(exc) or type(exc).__name__}"  # as classify_http says
        raise ClusterError(reason, shown=f"no answer ({type(exc).__name__})") from exc


def _classify(exc: Any, what: str, obj: Obj | None) -> PermanentError | TemporaryError:
    status = int(exc.status or 0)
    message = str(_status_body(exc.body).get("message") or exc.reason or "")
    headers = {str(k): str(v) for k, v in (exc.headers or {}).items()}
    metadata = (obj or {}).get("metadata", {})
    kind, name = (obj or {}).get("kind", ""), metadata.get("name", "")
    if status == 403 and "because it is being terminated" in message:
        namespace = metadata.get("namespace", "")
        return TemporaryError(TERMINATING_MESSAGE.format(namespace=namespace), TERMINATING_DELAY)
    if status == 409:  # a concurrent change (or a namespace going away): read and try again
        return TemporaryError(f"{what}: HTTP 409: {message}", CONFLICT_DELAY)
    if status == 404 and obj is not None:  # its namespace vanished under us
        return TemporaryError(f"{what}: HTTP 404: {message}")
    error = classify_http(status, headers, message, what)
    if isinstance(error, TemporaryError) and (status >= 500 or status == 0):
        # The API server itself is failing. Its status and phrase only: the body may say anything.
        phrase = str(exc.reason or "")[:SHOWN_PHRASE]
        shown = f"HTTP {status} {phrase}".strip() if status else "no answer"
        return ClusterError(error.reason, error.delay, shown)
    if status == 422 and isinstance(error, PermanentError):
        if kind == "Secret":  # an invalid Secret's message may quote a value
            message = "the API server refused it (details withheld for a Secret)"
        return PermanentError(f"invalid manifest: {kind}/{name}: {message}")
    return error


def _workloads(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _shown(exc: PermanentError | TemporaryError) -> str:
    """A failure as the request may read it: the API server's own `Status` message, never
    an answer that is not one (a proxy's page), which is left out; for the API server out
    of reach, its status and phrase only (`ClusterError.shown`: no address)."""
    if isinstance(exc, ClusterError):
        return exc.shown
    cause = exc.__cause__
    if not isinstance(cause, ApiException):
        return exc.reason
    body = cause.body.decode("utf-8", "replace") if isinstance(cause.body, bytes) else cause.body
    try:
        status = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        status = None
    if isinstance(status, dict):
        return exc.reason
    message = str(_status_body(cause.body).get("message") or "")
    if message and exc.reason.endswith(message):
        return exc.reason[: -len(message)] + (str(cause.reason or "") or "no Status given")
    return exc.reason


def _status_body(body: Any) -> Obj:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"message": body[:200]}
    return parsed if isinstance(parsed, dict) else {}


def _plain(instance: Any) -> Obj:
    data = instance.to_dict() if hasattr(instance, "to_dict") else instance
    return data if isinstance(data, dict) else {}


def _state_namespace(configured: str) -> str:
    """The bot's own namespace: configured, else the pod's (its service account says), else
    `default`."""
    if configured:
        return configured
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as file:
            return file.read().strip() or "default"
    except OSError:
        return "default"


def _forbidden(exc: PermanentError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ApiException) and cause.status == 403


def _check_ours(namespace: Obj, target: Target, action: str) -> None:
    labels = namespace["metadata"].get("labels") or {}
    wanted = naming.selector_labels(target.key, target.instance)
    if any(labels.get(k) != v for k, v in wanted.items()):
        raise PermanentError(
            NOT_OURS_MESSAGE.format(
                namespace=target.namespace, instance=target.instance, action=action
            )
        )


def _terminating(namespace: Obj) -> bool:
    return bool(namespace["metadata"].get("deletionTimestamp")) or (
        (namespace.get("status") or {}).get("phase") == "Terminating"
    )


def _annotations(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def _annotation_kinds(namespace: Obj | None) -> list[str]:
    text = _annotations(namespace or {}).get(ANNOTATION_KINDS, "")
    return [kind for kind in text.split(",") if "/" in kind]


def _kind_id(obj: Obj) -> str:
    return f"{obj['apiVersion']}/{obj['kind']}"


def _identity(obj: Obj) -> tuple[str, str, str]:
    group = obj["apiVersion"].rpartition("/")[0]
    return group, obj["kind"], obj["metadata"]["name"]


def _kind_ids(kinds: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{api_version}/{kind}" for api_version, kind in kinds]


def _apply_rank(obj: Obj) -> int:
    kind = obj["kind"]
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)
