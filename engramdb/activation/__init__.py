"""Activation memory: a local model's state after it read a user's stable memory block,
kept on disk so that a chat turn evaluates only what follows the block.

- cache.py: the states on disk, their index (what each was built from) and LRU bound;
- follow.py: the derivation rule for them (a state built from a memory that is no longer
  current is deleted; `Memory` calls it before an erasure returns);
- prompt.py: the stable block and the chat prompt, as token segments;
- engine.py: llama-cpp-python behind a small protocol (a fake for tests);
- runner.py: states computed in the background when a user's block changes;
- chat.py: one chat turn with memory (`engram chat`).

Importing this package imports no model library: llama_cpp is imported when an engine
is made."""
