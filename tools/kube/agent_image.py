"""The agent's container image, built offline from the wheel: what the Kubernetes install
manifest runs (`deploy/kubernetes/agent/`, docs/kubernetes.md).

The wheel with its `kube` extra and the three edge commands, on this machine's Python
(tools/kube/wheel_image). Cached by the wheel's digest.

    python -m tools.kube.agent_image --wheel dist/baetyl_py-0.1.0-py3-none-any.whl --out F.tar
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.contracts.version import VERSION
from cloud.settings import DEFAULT_AGENT_IMAGE
from tools.kube import wheel_image

AGENT_IMAGE = f"{DEFAULT_AGENT_IMAGE}:{VERSION}"
"""What the cloud's manifest names by default (`baetyl-cloud serve --agent-image` changes it)."""
AGENT = wheel_image.WheelImageSpec(
    name="agent",
    extras="kube",
    commands={
        "baetyl-core": "agent.core.cli",
        "baetyl-init": "agent.init.cli",
        "baetyl-function": "function_proxy.cli",
    },
    command=("baetyl-core", "--help"),
)


def build(wheel: Path, out: Path | None = None, reference: str = AGENT_IMAGE) -> Path:
    """The agent image's docker-archive (cached); its path, or `out` when given."""
    return wheel_image.build(AGENT, wheel, reference, out)


def main(argv: list[str] | None = None) -> int:
    """`--wheel W --out F.tar [--tag REF]`."""
    return wheel_image.main(AGENT, AGENT_IMAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
