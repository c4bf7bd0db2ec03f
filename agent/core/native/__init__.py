"""The native backend of baetyl-core: apps run as supervised processes on the host (issue 5).

`NativeBackend` implements agent.core.backend.Backend; `Tuning` holds its supervision timers.
"""

from agent.core.native.backend import NativeBackend
from agent.core.native.settings import NativeSettings, Tuning

__all__ = ["NativeBackend", "NativeSettings", "Tuning"]
