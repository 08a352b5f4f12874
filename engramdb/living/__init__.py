"""Living memory: what Engram assembles from the memories it holds. `profile`: the
current facts and preferences of a scope by topic (assembled at read time); `topics`:
one derived memory per recurring topic across sessions (built by a background job)."""
