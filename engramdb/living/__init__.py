"""Living memory: what Engram assembles and forms from the memories it holds, and what
use and time do to them, built on the lifecycle engine (typed links, job kinds, the
derivation rule). `profile`: the current facts and preferences of a scope by topic
(assembled at read time); `topics`: one derived memory per recurring topic across
sessions (built by a background job); `thoughts`, `thinking`, `reflection`: conclusions
an agent (or, with an LLM, a reflection job) reached, linked to what they rest on;
`vitals`: strength, retention, utility and states (pure decisions; the stores execute
them and the lifecycle lanes schedule them); `notes`, `llm_notes`: each memory's
keywords, tags and context line, its `relates_to` links and their evolution (A-MEM)."""
