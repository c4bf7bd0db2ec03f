"""The environment of an app process: a few safe variables of the agent, the spec's, Baetyl's.

The agent's own environment is not passed on wholesale: it may hold credentials (proxy URLs with
passwords, tokens, the agent's configuration) that apps have no business seeing. Only the
variables a program needs to behave (`PATH`, locale, time zone, home, temp dir) are inherited;
everything else an app needs goes into its spec's `env`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from agent.contracts.resources import EnvVar

INHERITED = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}
)
"""Variables copied from the agent's environment (plus every `LC_*`)."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def inherited(agent_env: Mapping[str, str]) -> dict[str, str]:
    """The part of the agent's environment that app processes get."""
    kept = {
        name: value
        for name, value in agent_env.items()
        if name in INHERITED or name.startswith("LC_")
    }
    kept.setdefault("PATH", DEFAULT_PATH)
    return kept


def build(
    agent_env: Mapping[str, str], spec_env: Iterable[EnvVar], platform: Mapping[str, str]
) -> dict[str, str]:
    """inherited < spec `env` < Baetyl's variables: the platform's values cannot be overridden.

    Spec values may refer to variables defined before them as `$(NAME)` (Kubernetes' rule), the
    Baetyl variables included, e.g. `--listen=127.0.0.1:$(BAETYL_SERVICE_DYNAMIC_PORT)`.
    """
    env = inherited(agent_env)
    context = {**env, **platform}
    for var in spec_env:
        value = expand(var.value, context)
        env[var.name] = value
        context[var.name] = value
        context.update(platform)
    env.update(platform)
    return env


def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace `$(NAME)` by its value when NAME is defined; `$$` is a literal `$`.

    An undefined reference is left as it is, as Kubernetes does for command, args and env.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)
