"""`baetylctl` as its user runs it, against one cloud with one token (the demo and e2e tests)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tools.kit.procs import KitError, run_streamed
from tools.kit.progress import Progress

BAETYLCTL = Path(sys.executable).parent / "baetylctl"
RUN_LIMIT = 60.0


class Ctl:
    """Runs `baetylctl` with `BAETYL_URL` and `BAETYL_TOKEN` set, as a user's shell would."""

    def __init__(self, url: str, token: str) -> None:
        self.env = {**os.environ, "BAETYL_URL": url, "BAETYL_TOKEN": token}

    async def run(self, *args: str, progress: Progress) -> None:
        """A command that changes something; its output shown as the step's details."""
        progress.detail(f"$ baetylctl {' '.join(args)}")
        code = await run_streamed(
            [str(BAETYLCTL), *args], progress=progress, limit=RUN_LIMIT, env=self.env
        )
        if code != 0:
            raise KitError(f"baetylctl {' '.join(args)} failed (exit {code}; its output is above)")

    async def read(self, *args: str) -> Any:
        """The `-o json` output of a read; None when the resource does not exist."""
        child = await asyncio.create_subprocess_exec(
            str(BAETYLCTL),
            *args,
            "-o",
            "json",
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(child.communicate(), RUN_LIMIT)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise KitError(
                f"baetylctl {' '.join(args)} did not finish in {RUN_LIMIT:g} s"
            ) from None
        if child.returncode == 0:
            return json.loads(out)
        if b"is not found" in err:
            return None
        raise KitError(f"baetylctl {' '.join(args)}: {err.decode(errors='replace').strip()}")
