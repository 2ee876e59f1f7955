"""A minimal Continuum function: push it with `continuum fn push hello.py --name hello`.

The agent calls `handler` with the invocation's JSON input (None for an
empty body) and replies with whatever JSON-serialisable value it returns.
"""


def handler(event):
    name = (event or {}).get("name", "world")
    return {"greeting": f"Hello, {name}!"}
