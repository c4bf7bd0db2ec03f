"""The API server as the Kubernetes backend uses it: server-side apply, list, delete, watch,
logs and version, on plain JSON manifests. The only module that imports kubernetes_asyncio.

kubernetes_asyncio's package imports every generated API and model class when it is imported
(about 38 MB of an agent's memory). The backend needs none of them: it sends rendered JSON and
reads JSON. `_lean_modules` imports just the configuration loaders, the REST layer and the
ApiClient (about 4 MB) by registering the two package modules without running their
`__init__`; if the full package is already loaded (a test process), that one is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]
FIELD_MANAGER = "baetyl-core"
APPLY_PATCH = "application/apply-patch+yaml"
REQUEST_TIMEOUT = 30.0

# kind → (plural, namespaced) for every kind the backend renders or reads, and those of the install
# manifest (applied by tests and tools with an admin's credentials).
KINDS: Mapping[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "Deployment": ("deployments", True),
    "DaemonSet": ("daemonsets", True),
    "StatefulSet": ("statefulsets", True),
    "ReplicaSet": ("replicasets", True),
    "Job": ("jobs", True),
    "CronJob": ("cronjobs", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
}
API_VERSIONS: Mapping[str, str] = {
    "Namespace": "v1",
    "Node": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Pod": "v1",
    "Deployment": "apps/v1",
    "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
}


class KubeError(Exception):
    """The API server refused a call or could not be reached; `status` 0 when unreachable."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)

    @property
    def invalid(self) -> bool:
        """The object itself is wrong (422, or 400 for a body the server cannot read): applying
        it again fails the same way."""
        return self.status in (400, 422)


@dataclass(frozen=True)
class ObjectRef:
    """Which object: enough to build its path."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, manifest: Manifest) -> ObjectRef:
        """The reference of a manifest."""
        meta = manifest["metadata"]
        return cls(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """`/api/v1/namespaces/ns/pods`, `/apis/apps/v1/deployments` (all namespaces), …"""
    plural, namespaced = KINDS[kind]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace is not None:
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def object_path(ref: ObjectRef) -> str:
    """The path of one object."""
    return f"{collection_path(ref.api_version, ref.kind, ref.namespace)}/{ref.name}"


def _lean_modules() -> tuple[Any, Any, Any]:
    """(configuration module, kube_config module, incluster_config module), loaded lean."""
    if "kubernetes_asyncio.client" not in sys.modules:
        spec = importlib.util.find_spec("kubernetes_asyncio")
        if spec is None or not spec.submodule_search_locations:
            raise KubeError(
                0, "kubernetes_asyncio is not installed (pip install 'baetyl-py[kube]')"
            )
        root = Path(next(iter(spec.submodule_search_locations)))
        package = _package("kubernetes_asyncio", root)
        package.__spec__ = spec  # what importlib.util.find_spec answers for a loaded module
        client = _package("kubernetes_asyncio.client", root / "client")
        package.client = client  # type: ignore[attr-defined]
        # ApiClient imports the models package only to deserialize into model classes; the
        # backend reads raw JSON, so an empty module stands in for the 800 of them.
        client.models = _module("kubernetes_asyncio.client.models")  # type: ignore[attr-defined]
        configuration = importlib.import_module("kubernetes_asyncio.client.configuration")
        api_client = importlib.import_module("kubernetes_asyncio.client.api_client")
        client.Configuration = configuration.Configuration  # type: ignore[attr-defined]
        client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
        package.config = _package("kubernetes_asyncio.config", root / "config")  # type: ignore[attr-defined]
    configuration = importlib.import_module("kubernetes_asyncio.client.configuration")
    kube_config = importlib.import_module("kubernetes_asyncio.config.kube_config")
    incluster = importlib.import_module("kubernetes_asyncio.config.incluster_config")
    return configuration, kube_config, incluster


def _package(name: str, path: Path) -> types.ModuleType:
    module = _module(name)
    module.__path__ = [str(path)]
    return module


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module


class KubeApi:
    """One connection to the API server (kubeconfig or in-cluster credentials)."""

    def __init__(self, api_client: Any) -> None:
        """Wrap a kubernetes_asyncio ApiClient; use `connect`."""
        self._client = api_client

    @classmethod
    async def connect(cls, kubeconfig: Path | None) -> KubeApi:
        """Credentials from `kubeconfig`, or the pod's service account when None."""
        configuration_module, kube_config, incluster = _lean_modules()
        configuration = configuration_module.Configuration()
        try:
            if kubeconfig is None:
                incluster.load_incluster_config(client_configuration=configuration)
            else:
                await kube_config.load_kube_config(
                    config_file=str(kubeconfig), client_configuration=configuration
                )
        except Exception as exc:  # the loaders raise ConfigException, OSError, yaml errors
            raise KubeError(0, f"cannot load Kubernetes credentials: {exc}") from exc
        api_client_module = importlib.import_module("kubernetes_asyncio.client.api_client")
        return cls(api_client_module.ApiClient(configuration))

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self._client.configuration.host)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        limit: float | None = REQUEST_TIMEOUT,
    ) -> Any:
        """One call; the decoded JSON answer, or KubeError."""
        response = await self._send(
            method, path, query=query, body=body, content_type=content_type, limit=limit
        )
        text = await self._text(response)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        limit: float | None,
    ) -> Any:
        exceptions = importlib.import_module("kubernetes_asyncio.client.exceptions")
        try:
            response = await self._client.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=limit,
            )
        except exceptions.ApiException as exc:
            raise _error(exc.status or 0, exc.body, exc.reason) from None
        except (OSError, TimeoutError, ValueError) as exc:
            raise KubeError(0, f"the API server at {self.host} cannot be reached: {exc}") from exc
        except Exception as exc:  # aiohttp's ClientError, without importing aiohttp here
            raise KubeError(0, f"the API server at {self.host} cannot be reached: {exc}") from exc
        if response.status >= 400:
            text = await self._text(response)
            raise _error(response.status, text, response.reason or "")
        return response

    async def _text(self, response: Any) -> str:
        """The whole body, released; KubeError when the connection breaks while reading."""
        try:
            return str(await response.text())
        except Exception as exc:  # OSError, aiohttp's ClientPayloadError, a timeout
            raise KubeError(0, f"the answer of {self.host} broke off: {exc}") from exc
        finally:
            response.release()

    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply as `baetyl-core`, taking over fields others changed (drift repair)."""
        answer: Manifest = await self.request(
            "PATCH",
            object_path(ObjectRef.of(manifest)),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest,
            content_type=APPLY_PATCH,
        )
        return answer

    async def get(self, ref: ObjectRef) -> Manifest | None:
        """The object, or None when it does not exist."""
        try:
            found: Manifest = await self.request("GET", object_path(ref))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def list(
        self, kind: str, namespace: str | None, *, selector: str = "", api_version: str = ""
    ) -> Manifest:
        """The list object (`items`, `metadata.resourceVersion`); a namespace None lists all. A
        namespace that does not exist lists empty; a kind the server does not serve is a 404."""
        query = {"labelSelector": selector} if selector else {}
        path = collection_path(api_version or API_VERSIONS[kind], kind, namespace)
        answer: Manifest = await self.request("GET", path, query=query)
        return answer

    async def delete(self, ref: ObjectRef) -> bool:
        """Delete in the background (dependents by the garbage collector); False when absent."""
        try:
            await self.request("DELETE", object_path(ref), body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def version(self) -> Manifest:
        """`/version`: gitVersion, major, minor, platform."""
        answer: Manifest = await self.request("GET", "/version")
        return answer

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail_lines: int | None,
        since_seconds: int | None,
    ) -> str:
        """A container's log text."""
        query = {"container": container}
        if tail_lines is not None:
            query["tailLines"] = str(tail_lines)
        if since_seconds is not None:
            query["sinceSeconds"] = str(since_seconds)
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        response = await self._send(
            "GET",
            path,
            query=query,
            body=None,
            content_type="application/json",
            limit=REQUEST_TIMEOUT,
        )
        return await self._text(response)

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        selector: str,
        resource_version: str,
        api_version: str = "",
    ) -> AsyncGenerator[Manifest, None]:
        """Watch events (`type`, `object`) from `resource_version` until the server ends the
        watch (a few minutes) or it expires (an ERROR event with code 410: list again)."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        if selector:
            query["labelSelector"] = selector
        path = collection_path(api_version or API_VERSIONS[kind], kind, namespace)
        response = await self._send(
            "GET", path, query=query, body=None, content_type="application/json", limit=None
        )
        try:
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)
        except (OSError, TimeoutError, ValueError) as exc:
            raise KubeError(0, f"the watch of {path} broke: {exc}") from exc
        except Exception as exc:  # aiohttp's ClientPayloadError when the server goes away
            if type(exc).__module__.startswith("aiohttp"):
                raise KubeError(0, f"the watch of {path} broke: {exc}") from exc
            raise
        finally:
            response.release()


def _error(status: int, body: Any, reason: str) -> KubeError:
    """A KubeError with the server's own message (a Status object) when it sent one."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        status_object = json.loads(text)
        message = status_object.get("message") or text
        reason = status_object.get("reason") or reason
    except (ValueError, AttributeError):
        message = text or reason
    return KubeError(status, f"{status} {reason}: {message}".strip(), reason)
