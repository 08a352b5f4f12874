"""Living memory: what Engram forms from what it holds (thoughts, reflection), built on
the lifecycle engine (typed links, job kinds, the derivation rule)."""
