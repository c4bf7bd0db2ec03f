"""The Kubernetes backend (DESIGN §8): apps rendered to manifests and applied server-side.

`render` is pure (an app → the objects it needs); `client` is the one place that imports
kubernetes_asyncio, so a native agent never loads it.
"""
