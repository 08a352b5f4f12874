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
from . import operations as ops
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
POSITIONAL = frozenset({"query", "text", "path"})  # kinds a command takes as arguments (and a required memory id)
METAVARS = {"memory_id": "ID"}


def _positional(param: ops.Param) -> bool:
    return param.required and (param.kind in POSITIONAL or param.public == "memory_id")


def options(name: str, *, skip: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The arguments and options of operation `name`'s command, from its row
    (operations.py): one per parameter its CLI form takes, named as every surface names
    it (`memory_id`, `budget_tokens`), with the row's default and help; and --json."""
    op = ops.operation(name)
    decorators = []
    for param in op.surface_params("cli"):
        if param.public in skip:
            continue
        if _positional(param):
            kind = click.Path(dir_okay=False) if param.kind == "path" else click.STRING
            decorators.append(click.argument(param.public, metavar=METAVARS.get(param.public, param.public.upper()),
                                             type=kind))
            continue
        flag = param.flag or "--" + param.public.replace("_", "-")
        if param.kind == "bool":
            decorators.append(click.option(flag, param.public, is_flag=True, default=bool(param.shown_default),
                                           help=param.help))
        elif param.kind == "ids":
            decorators.append(click.option(flag, param.public, multiple=True, required=param.required,
                                           help=param.help + " (repeat for several)"))
        else:
            json_help = " (JSON)" if param.kind == "json" else ""
            decorators.append(click.option(
                flag, param.public, required=param.required, type={"int": int, "float": float}.get(param.kind, str),
                default=None if param.required else param.shown_default, help=param.help + json_help,
                show_default=param.shown_default is not None and not param.required,
                metavar="JSON" if param.kind == "json" else None))
    decorators.append(json_option)

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def call_args(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The command's values as Memory's keywords: JSON options parsed, `memory_id` as `id`."""
    op = ops.operation(name)
    args = {}
    for param in op.surface_params("cli"):
        if param.public in given:
            value = given[param.public]
            if param.kind == "json":
                value = _json_object(value, param.flag or "--" + param.public.replace("_", "-"))
            elif param.kind == "ids":
                value = list(value) if value else (None if param.default is None else [])
            args[param.name] = value
    return args


def derived_command(op: ops.Operation) -> click.Command:
    """The command of a row whose CLI form is `derived`: its options from the row, the
    result printed as hits, records or text, and with --json as REST gives it."""

    def command(as_json: bool, **given: Any) -> None:
        memory = _app().memory(read_only=op.reads)
        result = getattr(memory, op.name)(**call_args(op.name, given))
        body = ops.body_of(op, result)
        items = result if isinstance(result, list) else []
        if as_json:
            _print_json(body)
        elif isinstance(result, str):
            click.echo(result)
        elif items and all(type(item).__name__ == "Hit" for item in items):
            _console().print(_hits_table(items))
        elif items and all(type(item).__name__ == "Record" for item in items):
            _console().print(_records_table(items))
        else:
            _print_json(body)

    command.__name__ = op.name
    command.__doc__ = op.summary
    form = op.form("cli")
    assert form is not None and form.derived
    return click.command(name=form.name)(options(op.name)(command))


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
@options("update")
def update(as_json: bool, **given: Any) -> None:
    """Replace a memory's text; the old text stays in its history."""
    record = _app().memory().update(**call_args("update", given))
    if as_json:
        _print_json(record.to_dict())
    else:
        _console().print(_records_table([record], title="updated"))


@main.command()
@options("delete")
def delete(as_json: bool, **given: Any) -> None:
    """Erase one memory: its text leaves the store, its indexes and its history."""
    memory_id = given["memory_id"]
    _app().memory().delete(**call_args("delete", given))
    if as_json:
        _print_json({"deleted": memory_id})
    else:
        _console().print(f"Deleted {memory_id}.")


@main.command()
@options("forget")
@click.option("--yes", is_flag=True, help="Confirm: erase without asking.")
def forget(yes: bool, as_json: bool, **given: Any) -> None:
    """Erase every memory of a user (or of one of their sessions or agents). Needs --yes."""
    user_id = given["user_id"]
    if not yes:
        raise UsageError(f"forget erases every memory of user {user_id!r} in that scope; pass --yes to confirm")
    count = _app().memory().forget(**call_args("forget", given))
    if as_json:
        _print_json({"forgotten": count})
    else:
        _console().print(f"Forgot {count} memories of user {user_id}.")


# -- reads -----------------------------------------------------------------------------


@main.command()
@options("search")
def search(as_json: bool, **given: Any) -> None:
    """Find the memories that best match QUERY (keywords and meaning, fused)."""
    hits = _app().memory(read_only=True).search(**call_args("search", given))
    if as_json:
        _print_json([h.to_dict() for h in hits])
    elif hits:
        _console().print(_hits_table(hits))
    else:
        click.echo("No memories found.", err=True)


@main.command(name="list")
@options("list")
def list_(as_json: bool, **given: Any) -> None:
    """Show a user's memories in time order, a page at a time (the current ones; with
    --as-of those true then; with --include-retired also the superseded and retracted)."""
    records = _app().memory(read_only=True).list(**call_args("list", given))
    if as_json:
        _print_json([r.to_dict() for r in records])
    elif records:
        _console().print(_records_table(records))
    else:
        click.echo("No memories.", err=True)


@main.command()
@options("get")
def get(as_json: bool, **given: Any) -> None:
    """Show one memory."""
    record = _app().memory(read_only=True).get(**call_args("get", given))
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
@options("history")
def history(as_json: bool, **given: Any) -> None:
    """Show every version of a memory, oldest first."""
    memory_id = given["memory_id"]
    versions = _app().memory(read_only=True).history(**call_args("history", given))
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
@options("context")
def context(as_json: bool, **given: Any) -> None:
    """Print a prompt block of what matters for QUERY, within --budget tokens."""
    block = _app().memory(read_only=True).context(**call_args("context", given))
    if as_json:
        _print_json({"query": given["query"], "budget": given["budget_tokens"], "context": block})
    elif block:
        click.echo(block)
    else:
        click.echo("No memories fit.", err=True)


@main.command()
@options("recall")
def recall(as_json: bool, **given: Any) -> None:
    """Print the block `context` gives for QUERY, then the memories in it with their
    sources, and whether the user's whole memory fit the budget (complete)."""
    found = _app().memory(read_only=True).recall(**call_args("recall", given))
    if as_json:
        _print_json(found.to_dict())
        return
    if not found.text:
        click.echo("No memories fit.", err=True)
        return
    click.echo(found.text)
    _console().print(_hits_table(found.hits, title="complete: the whole memory fit" if found.complete else
                                 "the best matches that fit"))


@main.command()
@options("stats")
def stats(as_json: bool, **given: Any) -> None:
    """Show counts for the store (or one user)."""
    user_id = given["user_id"]
    data = _app().memory(read_only=True).stats(**call_args("stats", given))
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


@main.command()
@json_option
def reembed(as_json: bool) -> None:
    """Re-embed every memory with the configured embedder (after changing embedders)."""
    from .memory import Memory

    app = _app()
    memory = Memory(app.store, config=app.config, reembed=True)
    try:
        with _err_console().status("re-embedding…"):
            embedder = memory.embedder  # re-embeds when the store's embedder is another
        count = memory.stats()["records"]
    finally:
        memory.close()
    if as_json:
        _print_json({"embedder": embedder.name, "dim": embedder.dim, "records": count})
    else:
        _console().print(f"Every memory ({count}) is embedded with {embedder.name} ({embedder.dim} dims).")


# -- cubes -----------------------------------------------------------------------------


@main.command(name="export")
@options("export")
def export_(as_json: bool, **given: Any) -> None:
    """Write a user's memories to PATH as a portable JSONL cube."""
    path, user_id = given["path"], given["user_id"]
    count = _app().memory(read_only=True).export(**call_args("export", given))
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
for _op in ops.OPERATIONS:  # rows whose command is built from the row alone
    if (_form := _op.form("cli")) is not None and _form.derived and _form.name not in main.commands:
        main.add_command(derived_command(_op))

from .server.ui import ui  # noqa: E402  (the web inspector; light until it runs)

main.add_command(ui)
from .proxy.cli import proxy  # noqa: E402  (light too: the proxy's web stack loads when it runs)

main.add_command(proxy)
from .activation.cli import chat  # noqa: E402  (light: llama_cpp loads when a chat starts)

main.add_command(chat)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
