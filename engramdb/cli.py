"""The `engram` command line: one thin layer over `Memory`.

Configuration is built here and only here (`Config.load`: defaults, TOML, ENGRAM_*).
Every command prints a rich table by default and JSON with `--json`. Any EngramError
becomes one line on stderr, ``error: <Class>: message``, with exit code 2 for the
caller's mistakes (UsageError) and 1 for everything else."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from . import __version__
from .console import console as _console, err_console as _err_console, print_json as _print_json
from .errors import EngramError, InvalidInputError, UsageError
from .messages import ROLES

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config
    from .memory import Memory
    from .types import Hit, Record

ADD_BATCH = 256  # messages per Memory.add call when ingesting a file
TABLE_ROWS = 50  # `add` lists what it stored up to this many records
DISTILL_WAIT_S = 60.0  # `add` waits this long at most for distillation before exiting


class App:
    """What the group's options resolve to; builds Config and Memory on first use."""

    def __init__(self, store: str | None, config_path: str | None) -> None:
        self.store = store
        self.config_path = config_path
        self._config: Config | None = None
        self._memory: Memory | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from .config import Config

            self._config = Config.load(self.config_path)
        return self._config

    def memory(self, store: str | None = None, *, read_only: bool = False) -> Memory:
        """The Memory of this command; `read_only` for commands that only read, which
        never create, migrate or write a store (a missing one is a ConfigError)."""
        if self._memory is None:
            from .memory import Memory

            self._memory = Memory(store or self.store, config=self.config, read_only=read_only)
        return self._memory

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None


class EngramGroup(click.Group):
    """Turns EngramError into one line on stderr and an exit code, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"error: {type(exc).__name__}: {message}", err=True)
            ctx.exit(2 if isinstance(exc, UsageError) else 1)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
user_option = click.option("--user", "user_id", required=True, help="Whose memories.")


@click.group(name="engram", cls=EngramGroup)
@click.option("--store", metavar="URL", help="Store URL or path, e.g. sqlite:///engram.db (default: config `store`, "
              "ENGRAM_STORE, or engram.db in the user data dir).")
@click.option("--config", "config_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="TOML config file (default: ENGRAM_CONFIG).")
@click.version_option(__version__, prog_name="engram")
@click.pass_context
def main(ctx: click.Context, store: str | None, config_path: str | None) -> None:
    """Engram: long-term memory for LLM agents, from the shell.

    \b
      engram add "I moved to Lisbon in May" --user alice
      engram search "where does alice live?" --user alice
      engram demo
    """
    app = App(store, config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


# -- helpers ---------------------------------------------------------------------------


def _app() -> App:
    return click.get_current_context().find_object(App)


def _json_object(value: str | None, option: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{option} must be a JSON object, got {type(data).__name__}")
    return data


def parse_messages(text: str, source: str) -> list[Any]:
    """Messages from JSON (a list, or one object) or JSONL (one message per line)."""
    return _parse_messages(text, source)[0]


def _parse_messages(text: str, source: str) -> tuple[list[Any], list[str] | None]:
    """The messages, and for JSONL where each came from ("chat.jsonl line 12")."""
    if not text.strip():
        raise InvalidInputError(f"{source} holds no messages")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) < 2:
            raise InvalidInputError(f"{source} is not valid JSON or JSONL: {whole}") from None
        items = []
        for number, line in lines:
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{source} line {number} is not valid JSON: {exc}") from None
        return items, [f"{source} line {number}" for number, _ in lines]
    if isinstance(data, list):
        return data, None
    if isinstance(data, (dict, str)):
        return [data], None
    raise InvalidInputError(f"{source} must hold a list of messages, one message, or JSONL; got {type(data).__name__}")


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text, or an error naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInputError(f"{source} is not valid UTF-8: byte 0x{data[exc.start]:02x} on line {line} "
                                f"(byte {exc.start}); convert it to UTF-8 first") from None


def _read_messages(texts: tuple[str, ...], role: str, file: str | None) -> tuple[list[Any], list[str] | None, bool]:
    """The messages to add, where each came from (JSONL lines), and whether they came
    from a file or stdin. Files and stdin are read as bytes and must be UTF-8."""
    if texts and file is not None:
        raise InvalidInputError("give messages as arguments or with --file, not both")
    if texts:
        return [{"role": role, "content": t} for t in texts], None, False
    if file is None or file == "-":
        stdin = sys.stdin
        if file is None and stdin.isatty():
            raise InvalidInputError("no messages: pass them as arguments, with --file, or as JSON on stdin")
        raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8", "surrogateescape")
        return (*_parse_messages(_decode(raw, "stdin"), "stdin"), True)
    try:
        with open(file, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {file}: {exc}") from None
    return (*_parse_messages(_decode(raw, file), file), True)


@contextmanager
def _progress(total: int, label: str, show: bool) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_err_console()) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _short(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _day(ts: str | None) -> str:
    return ts[:16].replace("T", " ") if ts else ""


def _records_table(records: list[Record], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("memory", no_wrap=True)
    table.add_column("text", ratio=1, min_width=24)
    for r in records:
        where = " · ".join(x for x in (_day(r.created_at), r.session_id) if x)
        about = Text.assemble((r.id, "cyan"), f"\n{where}\n{r.name or r.role or r.kind}")
        table.add_row(about, _short(r.text))
    return table


def _hits_table(hits: list[Hit], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("memory", no_wrap=True)
    table.add_column("text", ratio=1, min_width=24)
    for rank, h in enumerate(hits, start=1):
        where = " · ".join(x for x in (_day(h.created_at), h.session_id) if x)
        about = Text.assemble((h.id, "cyan"), f"\n{where}\nscore {h.score:.4f}\nsources {', '.join(h.sources)}")
        table.add_row(str(rank), about, _short(h.text))
    return table


# -- writes ----------------------------------------------------------------------------


@main.command()
@click.argument("texts", nargs=-1, metavar="[MESSAGE]...")
@user_option
@click.option("--session", "session_id", help="Session the messages belong to.")
@click.option("--agent", "agent_id", help="Agent the messages belong to.")
@click.option("--metadata", help="JSON object stored with every message.")
@click.option("--file", "file", metavar="PATH",
              help="JSON (list or one object) or JSONL file of messages; - for stdin.")
@click.option("--role", default="user", show_default=True, type=click.Choice(sorted(ROLES)),
              help="Role of messages given as arguments.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the turns to be distilled into memories before exiting.")
@click.option("--batch-size", default=ADD_BATCH, show_default=True, type=click.IntRange(1, 10_000),
              help="Messages per Memory.add call when ingesting a file.")
@click.option("--skip-empty", is_flag=True,
              help="Leave out messages whose content is empty or only whitespace (counted), instead of refusing "
                   "the input.")
@json_option
def add(texts: tuple[str, ...], user_id: str, session_id: str | None, agent_id: str | None, metadata: str | None,
        file: str | None, role: str, batch_size: int, skip_empty: bool, wait: bool, as_json: bool) -> None:
    """Store messages: as arguments, from --file, or JSON/JSONL on stdin, then wait
    (at most a minute) for them to be distilled into memories.

    Each message in a file is a string or an object with `content` and optionally
    `role`, `id`, `name` and `timestamp`. The whole input is validated before anything
    is stored; an empty message refuses it unless --skip-empty."""
    from .clock import SystemClock
    from .memory import _check_metadata
    from .messages import read_batch
    from .types import Scope

    app = _app()
    meta = _check_metadata(_json_object(metadata, "--metadata"))
    items, origins, from_file = _read_messages(texts, role, file)
    Scope(user_id, agent_id, session_id)
    config = app.config
    read_batch(items, now=SystemClock().now(), max_chars=config.max_message_chars, max_messages=max(len(items), 1),
               skip_empty=skip_empty, origins=origins)
    memory = app.memory()
    stored: list[Record] = []
    skipped = 0
    show = from_file and len(items) > batch_size
    try:
        with _progress(len(items), "adding", show) as advance:
            for start in range(0, len(items), batch_size):
                chunk = items[start:start + batch_size]
                result = memory.add(chunk, user_id=user_id, session_id=session_id, agent_id=agent_id, metadata=meta,
                                    skip_empty=skip_empty)
                stored.extend(result.records)
                skipped += result.skipped
                advance(len(chunk))
    except EngramError:
        if stored:
            click.echo(f"note: {len(stored)} of {len(items)} messages were stored before the error", err=True)
        raise
    distilled = memory.flush(DISTILL_WAIT_S) if wait and stored else None
    if as_json:
        _print_json({"records": [r.to_dict() for r in stored], "skipped": skipped, "distilled": distilled})
        return
    console = _console()
    where = f"user {user_id}" + (f", session {session_id}" if session_id else "")
    left_out = f"; skipped {skipped} empty message{'s' if skipped != 1 else ''}" if skipped else ""
    console.print(f"Added {len(stored)} memories ({where}){left_out}.")
    if distilled is False:
        click.echo("note: distillation is still queued; it resumes with the next command (see engram jobs)", err=True)
    if len(stored) <= TABLE_ROWS:
        console.print(_records_table(stored))


@main.command()
@click.argument("memory_id", metavar="ID")
@click.option("--user", "user_id", help="Only if the memory belongs to this user.")
@json_option
def delete(memory_id: str, user_id: str | None, as_json: bool) -> None:
    """Erase one memory: its text leaves the store, its indexes and its history."""
    _app().memory().delete(memory_id, user_id=user_id)
    if as_json:
        _print_json({"deleted": memory_id})
    else:
        _console().print(f"Deleted {memory_id}.")


@main.command()
@user_option
@click.option("--session", "session_id", help="Only this session.")
@click.option("--agent", "agent_id", help="Only this agent.")
@click.option("--yes", is_flag=True, help="Confirm: erase without asking.")
@json_option
def forget(user_id: str, session_id: str | None, agent_id: str | None, yes: bool, as_json: bool) -> None:
    """Erase every memory of a user (or of one of their sessions or agents). Needs --yes."""
    if not yes:
        raise UsageError(f"forget erases every memory of user {user_id!r} in that scope; pass --yes to confirm")
    count = _app().memory().forget(user_id=user_id, agent_id=agent_id, session_id=session_id)
    if as_json:
        _print_json({"forgotten": count})
    else:
        _console().print(f"Forgot {count} memories of user {user_id}.")


# -- reads -----------------------------------------------------------------------------


@main.command()
@click.argument("query")
@user_option
@click.option("--limit", default=10, show_default=True, type=int, help="How many hits.")
@click.option("--session", "session_id", help="Only this session.")
@click.option("--agent", "agent_id", help="Only this agent.")
@click.option("--filters", help='JSON filter, e.g. \'{"role": "user"}\'.')
@click.option("--as-of", "as_of", help="Answer as of this date (ISO 8601): what was true then.")
@click.option("--include-retired", is_flag=True, help="Also superseded and retracted memories.")
@json_option
def search(query: str, user_id: str, limit: int, session_id: str | None, agent_id: str | None, filters: str | None,
           as_of: str | None, include_retired: bool, as_json: bool) -> None:
    """Find the memories that best match QUERY (keywords and meaning, fused)."""
    conditions = _json_object(filters, "--filters")
    memory = _app().memory(read_only=True)
    hits = memory.search(query, user_id=user_id, limit=limit, filters=conditions, session_id=session_id,
                         agent_id=agent_id, as_of=as_of, include_retired=include_retired)
    if as_json:
        _print_json([h.to_dict() for h in hits])
    elif hits:
        _console().print(_hits_table(hits))
    else:
        click.echo("No memories found.", err=True)


@main.command(name="list")
@user_option
@click.option("--limit", default=20, show_default=True, type=int, help="Page size.")
@click.option("--offset", default=0, show_default=True, type=int, help="Skip this many.")
@click.option("--session", "session_id", help="Only this session.")
@click.option("--agent", "agent_id", help="Only this agent.")
@click.option("--filters", help="JSON filter, as for search.")
@json_option
def list_(user_id: str, limit: int, offset: int, session_id: str | None, agent_id: str | None, filters: str | None,
          as_json: bool) -> None:
    """Show a user's memories in time order, a page at a time."""
    records = _app().memory(read_only=True).list(user_id=user_id, limit=limit, offset=offset, session_id=session_id,
                                                 agent_id=agent_id, filters=_json_object(filters, "--filters"))
    if as_json:
        _print_json([r.to_dict() for r in records])
    elif records:
        _console().print(_records_table(records))
    else:
        click.echo("No memories.", err=True)


@main.command()
@click.argument("memory_id", metavar="ID")
@click.option("--user", "user_id", help="Only if the memory belongs to this user.")
@json_option
def get(memory_id: str, user_id: str | None, as_json: bool) -> None:
    """Show one memory."""
    record = _app().memory(read_only=True).get(memory_id, user_id=user_id)
    if as_json:
        _print_json(record.to_dict())
        return
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in record.to_dict().items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)
        table.add_row(key, "" if value is None else shown)
    _console().print(table)


@main.command()
@click.argument("memory_id", metavar="ID")
@click.option("--user", "user_id", help="Only if the memory belongs to this user.")
@json_option
def history(memory_id: str, user_id: str | None, as_json: bool) -> None:
    """Show every version of a memory, oldest first."""
    versions = _app().memory(read_only=True).history(memory_id, user_id=user_id)
    if as_json:
        _print_json([v.to_dict() for v in versions])
        return
    table = Table(title=memory_id)
    for name in ("version", "event", "at", "actor", "text"):
        table.add_column(name)
    for v in versions:
        text = v.text if v.text is not None else f"(erased; sha256 {v.content_hash[:12]}…)"
        table.add_row(str(v.version), v.event, _day(v.at), v.actor or "", _short(text))
    _console().print(table)


@main.command()
@click.argument("query")
@user_option
@click.option("--budget", default=1500, show_default=True, type=int, help="Token budget of the block.")
@click.option("--session", "session_id", help="Only this session.")
@click.option("--agent", "agent_id", help="Only this agent.")
@json_option
def context(query: str, user_id: str, budget: int, session_id: str | None, agent_id: str | None,
            as_json: bool) -> None:
    """Print a prompt block of what matters for QUERY, within --budget tokens."""
    block = _app().memory(read_only=True).context(query, user_id=user_id, budget_tokens=budget,
                                                  session_id=session_id, agent_id=agent_id)
    if as_json:
        _print_json({"query": query, "budget": budget, "context": block})
    elif block:
        click.echo(block)
    else:
        click.echo("No memories fit.", err=True)


@main.command()
@click.option("--user", "user_id", help="Only this user's memories.")
@json_option
def stats(user_id: str | None, as_json: bool) -> None:
    """Show counts for the store (or one user)."""
    data = _app().memory(read_only=True).stats(user_id=user_id)
    if as_json:
        _print_json(data)
        return
    table = Table(show_header=False, title="engram stats" + (f" — user {user_id}" if user_id else ""))
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        table.add_row(key, "" if value is None else str(value))
    _console().print(table)


@main.command()
@click.option("--user", "user_id", help="Only this user's jobs.")
@click.option("--wait", is_flag=True, help="Run the queue now and wait until nothing is ready.")
@json_option
def jobs(user_id: str | None, wait: bool, as_json: bool) -> None:
    """Show the distillation queue: pending, running and failed jobs, recent errors."""
    memory = _app().memory(read_only=not wait)  # --wait runs the queue: it writes
    finished = memory.flush(None) if wait else None
    data = {**memory.jobs(user_id=user_id), **({"finished": finished} if wait else {})}
    if as_json:
        _print_json(data)
        return
    click.echo(f"pending {data['pending']}, running {data['running']}, failed {data['failed']}"
               + (f"; oldest {data['oldest']}" if data["oldest"] else ""))
    for item in data["recent_errors"]:
        click.echo(f"  job {item['job']}: {item['error']}")


@main.command()
@json_option
def compact(as_json: bool) -> None:
    """Rewrite the store so erased text leaves the file (slow on a big store)."""
    _app().memory().compact()
    if as_json:
        _print_json({"compacted": True})
    else:
        click.echo("Compacted.")


# -- cubes -----------------------------------------------------------------------------


@main.command(name="export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@user_option
@click.option("--session", "session_id", help="Only this session.")
@click.option("--agent", "agent_id", help="Only this agent.")
@json_option
def export_(path: str, user_id: str, session_id: str | None, agent_id: str | None, as_json: bool) -> None:
    """Write a user's memories to PATH as a portable JSONL cube."""
    count = _app().memory(read_only=True).export(path, user_id=user_id, session_id=session_id, agent_id=agent_id)
    if as_json:
        _print_json({"exported": count, "path": path})
    else:
        _console().print(f"Exported {count} memories of user {user_id} to {path}.")


@main.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--user", "user_id", help="Move every record into this user's scope (under new ids).")
@json_option
def import_(path: str, user_id: str | None, as_json: bool) -> None:
    """Load a cube written by `engram export`. Records already present are skipped."""
    memory = _app().memory()
    with _err_console().status(f"importing {path}…"):
        count = memory.import_(path, user_id=user_id)
    if as_json:
        _print_json({"imported": count, "path": path})
    else:
        _console().print(f"Imported {count} memories from {path}.")


@main.command()
@click.option("--from", "source_url", required=True, metavar="URL", help="The store to copy from.")
@click.option("--to", "target_url", required=True, metavar="URL", help="The (empty) store to copy into.")
@json_option
def migrate(source_url: str, target_url: str, as_json: bool) -> None:
    """Copy a whole store to another, losslessly (e.g. SQLite to PostgreSQL)."""
    from .stores import open_store
    from .stores.transfer import copy_store

    config = _app().config
    source = open_store(source_url, config, read_only=True)
    try:
        target = open_store(target_url, config)
        try:
            with _err_console().status(f"migrating to {target.url}…"):
                moved = copy_store(source, target)
        finally:
            target.close()
    finally:
        source.close()
    if as_json:
        _print_json({"from": source.url, "to": target.url, **moved.to_dict()})
    else:
        _console().print(
            f"Migrated {moved.records} memories of {moved.users} users and {moved.tombstones} deletion "
            f"records from {source.url} to {target.url}."
        )


# -- demo ------------------------------------------------------------------------------


@main.command()
@json_option
def demo(as_json: bool) -> None:
    """Store a sample conversation and ask it questions (offline, in a temporary store
    unless --store is given)."""
    import tempfile

    from . import demo as sample_demo

    app = _app()
    with tempfile.TemporaryDirectory(prefix="engram-demo-") as tmp:
        memory = app.memory(app.store or f"sqlite:///{tmp}/demo.db")
        try:
            _run_demo(memory, sample_demo, as_json)
        finally:
            app.close()


def _run_demo(memory: Memory, sample_demo: Any, as_json: bool) -> None:
    console = _err_console() if as_json else _console()
    sample = sample_demo.load_sample()
    user_id = sample["user_id"]
    turns = sum(len(s["messages"]) for s in sample["sessions"])
    with console.status(f"storing {turns} turns of {len(sample['sessions'])} sessions…"):
        added = sample_demo.ingest(memory, sample)
    console.print(f"Stored {added} turns for user {user_id} in {memory.store.url}"
                  + (" (the sample was already there)" if added == 0 else "") + ".")
    with console.status("distilling facts and preferences in the background…"):
        derived = sample_demo.distilled(memory, user_id)
    answers = sample_demo.ask(memory, user_id)
    block = memory.context(sample_demo.CONTEXT_QUESTION, user_id=user_id, budget_tokens=sample_demo.CONTEXT_BUDGET)
    if as_json:
        _print_json({
            "store": memory.store.url, "user_id": user_id, "added": added,
            "distilled": [r.to_dict() for r in derived],
            "answers": [a.to_dict() for a in answers],
            "context": {"query": sample_demo.CONTEXT_QUESTION, "budget": sample_demo.CONTEXT_BUDGET, "context": block},
        })
        return
    console.print()
    console.print("Distilled from the turns (offline, no LLM):", style="bold")
    for record in derived:
        status = f"until {record.valid_to[:10]}" if record.valid_to else "current"
        console.print(f"  {record.kind}: {record.text}  [{record.created_at[:10]}, {status}; "
                      f"from {', '.join(record.sources)}]")
    for answer in answers:
        console.print()
        console.print(f"Q: {answer.question}", style="bold")
        for rank, hit in enumerate(answer.hits, start=1):
            speaker = hit.name or hit.role or hit.kind
            console.print(f"  {rank}. {speaker}: {hit.text}")
            console.print(f"     source {', '.join(hit.sources)} · session {hit.session_id} · {hit.created_at[:10]}"
                          f" · score {hit.score:.4f}", style="dim")
    console.print()
    console.print(f"Context for: {sample_demo.CONTEXT_QUESTION} (budget {sample_demo.CONTEXT_BUDGET} tokens)",
                  style="bold")
    console.print(block or "(nothing fits)")


# -- plug-ins --------------------------------------------------------------------------

try:
    from .bench.cli import bench
except ModuleNotFoundError as exc:  # engramdb/bench/cli.py is not written yet
    if exc.name not in ("engramdb.bench.cli", "engramdb.bench"):
        raise
else:
    main.add_command(bench)

from .server.cli import keys, serve  # noqa: E402  (light: the web stack loads only when serve runs)

main.add_command(serve)
main.add_command(keys)

from .proxy.cli import proxy  # noqa: E402  (light too: the proxy's web stack loads when it runs)

main.add_command(proxy)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
