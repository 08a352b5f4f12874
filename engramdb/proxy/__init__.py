"""Memory in the model's path: an OpenAI-compatible proxy (`engram proxy --upstream URL`).

Any application that speaks OpenAI's chat API gets a user's memory without a line of
glue: the proxy puts what matters for the conversation into a system message (layout.py,
rendered by engramdb/block.py), forwards the request to the upstream (forward.py) and
stores the exchange once the answer has gone out (inject.py). app.py is the ASGI app,
cli.py the command. Needs the `server` extra (Starlette, uvicorn) and httpx; nothing
here is imported by `import engramdb`."""
