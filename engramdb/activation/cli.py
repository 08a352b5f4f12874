"""`engram chat`: a terminal chat with memory on a local model (opt-in: llama-cpp-python
and a GGUF, as `make slow-test` builds them). Each line read is one turn; the answer is
streamed; the exchange is stored. The user's stable block is read by the model once and
kept (engramdb/activation/), again in the background whenever distillation changes it."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import click

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / ".slow" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


@click.command()
@click.option("--user", "user_id", required=True, metavar="ID", help="Whose memory the chat uses and adds to.")
@click.option("--session", "session_id", metavar="ID", help="The session the exchanges are stored under.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The GGUF file [default: .slow/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, from `make slow-test`].")
@click.option("--budget", "budget_tokens", type=click.IntRange(34, 100_000), default=None,
              help="Tokens of the stable block [default: config activation_block_tokens, 1000].")
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=256, show_default=True,
              help="Tokens of each answer at most.")
@click.option("--ctx", "n_ctx", type=click.IntRange(512, 131_072), default=4096, show_default=True,
              help="The model's context size (a state is kept per context size).")
@click.option("--threads", type=click.IntRange(1, 512), default=None, help="CPU threads [default: llama.cpp's].")
@click.option("--no-remember", is_flag=True, help="Do not store the exchanges.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON line per answer: answer, cached, first_token_s, prefix_tokens, prompt_tokens.")
@click.pass_context
def chat(ctx: click.Context, user_id: str, session_id: str | None, model_path: Path | None,
         budget_tokens: int | None, max_tokens: int, n_ctx: int, threads: int | None, no_remember: bool,
         as_json: bool) -> None:
    """Chat with a local model that remembers USER (one line a turn; an empty line or EOF ends)."""
    from ..errors import UsageError
    from .chat import Chat
    from .engine import LlamaEngine
    from .runner import Runner

    engine = LlamaEngine.load(model_path or DEFAULT_MODEL, n_ctx=n_ctx, n_threads=threads)
    memory = ctx.find_root().obj.memory()  # the group's App (engramdb/cli.py)
    if not memory.config.activation and not as_json:
        click.echo("engram: activation is off (config activation = false): every turn reads the whole prompt",
                   err=True)
    lock = threading.Lock()
    runner = Runner(memory, engine, user_ids=[user_id], budget_tokens=budget_tokens, lock=lock)
    if memory.config.activation:
        runner.touch(user_id)  # the block is read while the first line is typed
    talk = Chat(memory, engine, user_id=user_id, budget_tokens=budget_tokens, remember=not no_remember,
                max_tokens=max_tokens, lock=lock, session_id=session_id)
    interactive = sys.stdin.isatty() and not as_json
    try:
        while True:
            if interactive:
                click.echo("you> ", nl=False)
            line = sys.stdin.readline()
            if not line or not line.strip():
                break
            reply = talk.say(line.rstrip("\n"))
            if as_json:
                text = "".join(reply)
                click.echo(json.dumps({"answer": text, "cached": reply.cached, "first_token_s": reply.first_token_s,
                                       "prefix_tokens": reply.prefix_tokens, "prompt_tokens": reply.prompt_tokens}))
                continue
            if interactive:
                click.echo("engram> ", nl=False)
            for piece in reply:
                click.echo(piece, nl=False)
            click.echo()
    except KeyboardInterrupt:
        pass
    except ValueError as exc:  # the prompt does not fit the context
        raise UsageError(str(exc)) from None
    finally:
        runner.stop()

