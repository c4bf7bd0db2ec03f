"""The pipeline's two functions: `ingest` cleans a reading and hands it to `enrich` through the
function proxy, at $BAETYL_FUNCTION_ADDRESS (the node's proxy)."""

import json
import os
import urllib.request

from units import fahrenheit


def ingest(event, context):
    """A reading in, trimmed and checked, then enriched by the other function."""
    reading = {"sensor": str(event["sensor"]).strip(), "celsius": float(event["celsius"])}
    request = urllib.request.Request(
        f"http://{os.environ['BAETYL_FUNCTION_ADDRESS']}/pipeline/enrich",
        data=json.dumps(reading).encode(),
        headers={"Content-Type": "application/json", "X-Baetyl-Invoke-Id": context["invokeId"]},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - a plain handler: a thread
        return {"stored": json.load(answer), "by": context["functionName"]}


async def enrich(event, context):
    """Adds Fahrenheit and says which invocation it served."""
    return {**event, "fahrenheit": fahrenheit(event["celsius"]), "invokeId": context["invokeId"]}
