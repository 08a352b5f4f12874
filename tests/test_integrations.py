"""The framework adapters (engramdb.integrations.*), each driven through its framework's
own interface, from the real package (no LLM: the interface directly, or the framework's
own function model). Erasure through an adapter leaves no text in the store, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.errors import InvalidInputError, MissingDependencyError, NotFoundError
from engramdb.providers.fake import FakeEmbedder


@pytest.fixture(params=["sqlite", "postgresql"])
def any_mem(request, tmp_path):
    url = tmp_path / "engram.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    memory = Memory(url, embedder=FakeEmbedder())
    yield memory
    memory.close()


def held_text(mem: Memory, db_dir: Path | None) -> str:
    """Every byte the store holds: the SQLite files, or every row of the PostgreSQL schema."""
    mem.compact()
    if db_dir is not None:
        return "\n".join(p.read_bytes().decode("latin-1") for p in db_dir.iterdir() if p.is_file())
    store = mem.store
    with store._connection() as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (store.schema,))]
        return "\n".join(row[0] for t in tables for row in conn.execute(f'SELECT t::text FROM "{store.schema}"."{t}" t'))


def db_dir_of(mem: Memory, tmp_path: Path) -> Path | None:
    return tmp_path if mem.store.url.startswith("sqlite") or "postgresql" not in mem.store.url else None


# -- LangGraph ---------------------------------------------------------------------------------


def test_langgraph_store_is_a_base_store_with_namespaced_items(mem):
    from langgraph.store.base import BaseStore, GetOp, Item, ListNamespacesOp, PutOp, SearchOp

    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(mem)
    assert isinstance(store, BaseStore)
    store.put(("memories", "alice"), "home", {"text": "Alice moved to Berlin last May", "year": 2024})
    store.put(("memories", "alice"), "pet", {"text": "Alice has a dog called Rex", "year": 2021})
    store.put(("memories", "bob"), "home", {"text": "Bob lives in Paris", "year": 2020})
    store.put(("prefs", "alice", "food"), "diet", {"text": "vegetarian"})

    item = store.get(("memories", "alice"), "home")
    assert isinstance(item, Item) and item.value == {"text": "Alice moved to Berlin last May", "year": 2024}
    assert item.namespace == ("memories", "alice") and item.key == "home"
    assert store.get(("memories", "alice"), "nothing") is None
    assert store.get(("memories",), "home") is None  # a namespace is exact, not a prefix, for get

    hits = store.search(("memories", "alice"), query="where did alice move? Berlin")
    assert [h.key for h in hits][0] == "home" and {h.namespace for h in hits} == {("memories", "alice")}
    assert all(h.score is not None for h in hits)
    assert {h.key for h in store.search(("memories",), filter={"year": {"$gte": 2021}})} == {"home", "pet"}
    assert [h.value["text"] for h in store.search(("memories",), filter={"year": 2020})] == ["Bob lives in Paris"]
    assert len(store.search(("memories",), limit=2)) == 2 and len(store.search(("memories",), offset=2)) == 1

    assert store.list_namespaces() == [("memories", "alice"), ("memories", "bob"), ("prefs", "alice", "food")]
    assert store.list_namespaces(prefix=("memories",)) == [("memories", "alice"), ("memories", "bob")]
    assert store.list_namespaces(suffix=("alice",)) == [("memories", "alice")]
    assert store.list_namespaces(prefix=("*", "alice")) == [("memories", "alice"), ("prefs", "alice", "food")]
    assert store.list_namespaces(max_depth=1) == [("memories",), ("prefs",)]

    results = store.batch([PutOp(("memories", "bob"), "job", {"text": "Bob is a baker"}),
                           GetOp(("memories", "bob"), "job"), SearchOp(("memories", "bob"), query="baker"),
                           ListNamespacesOp(limit=1)])
    assert results[0] is None and results[1].value == {"text": "Bob is a baker"}
    assert results[2][0].key == "job" and results[3] == [("memories", "alice")]


def test_langgraph_put_again_updates_with_history_and_delete_erases(mem):
    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(mem)
    store.put(("memories", "alice"), "home", {"text": "Alice lives in Paris"})
    first = store.get(("memories", "alice"), "home")
    store.put(("memories", "alice"), "home", {"text": "Alice moved to Berlin"})
    item = store.get(("memories", "alice"), "home")
    assert item.value == {"text": "Alice moved to Berlin"} and item.created_at == first.created_at
    assert item.updated_at > first.updated_at
    (hit,) = store.search(("memories",), query="Berlin")
    assert hit.updated_at == item.updated_at and hit.created_at == first.created_at
    assert [v.text for v in store.history(("memories", "alice"), "home")] == ["Alice lives in Paris",
                                                                            "Alice moved to Berlin"]
    rid = store.memory_id(("memories", "alice"), "home")
    assert mem.get(rid).text == "Alice moved to Berlin"  # one Engram memory: search, context and history see it
    assert mem.search("Berlin", user_id="langgraph")[0].id == rid

    store.delete(("memories", "alice"), "home")
    assert store.get(("memories", "alice"), "home") is None and store.search(("memories",), query="Berlin") == []
    assert all(v.text is None for v in mem.history(rid))  # erased: only hashes remain


def test_langgraph_index_fields_and_index_false(mem):
    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(mem, fields=["summary"])
    store.put(("docs",), "a", {"summary": "kayaking trip in Norway", "body": "zebra"})
    store.put(("docs",), "b", {"summary": "tax forms"}, index=False)
    store.put(("docs",), "c", {"summary": "nothing", "body": "ignored"}, index=["body"])
    assert mem.get(store.memory_id(("docs",), "a")).text == "kayaking trip in Norway"
    assert mem.get(store.memory_id(("docs",), "c")).text == "ignored"
    assert [h.key for h in store.search(("docs",), query="tax forms")] != ["b"]
    assert "b" not in {h.key for h in store.search(("docs",), query="tax forms")}
    assert store.get(("docs",), "b").value == {"summary": "tax forms"}  # not searchable, still kept


def test_langgraph_bad_input_is_refused_with_a_typed_error(mem):
    from langgraph.store.base import InvalidNamespaceError, PutOp

    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(mem)
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("a.b",), "k", {"text": "x"})])
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("a",), "k", ["not", "a", "dict"])])
    store.put(("a",), "k", {"n": 1})
    with pytest.raises(InvalidInputError, match="operator"):
        store.search(("a",), filter={"n": {"$regex": "1"}})
    assert store.list_namespaces() == [("a",)]


def test_langgraph_async_batch_and_a_compiled_graph(mem):
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.store.base import BaseStore

    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(mem)

    async def run() -> None:
        await store.aput(("memories", "alice"), "tea", {"text": "Alice drinks green tea"})
        assert (await store.aget(("memories", "alice"), "tea")).value["text"] == "Alice drinks green tea"
        assert [i.key for i in await store.asearch(("memories",), query="tea")] == ["tea"]
        assert await store.alist_namespaces() == [("memories", "alice")]

    asyncio.run(run())

    def node(state: MessagesState, *, store: BaseStore) -> dict:  # LangGraph injects the compiled store
        found = store.search(("memories", "alice"), query=state["messages"][-1].content)
        store.put(("memories", "alice"), "seen", {"text": "Alice asked about tea"})
        return {"messages": [("assistant", found[0].value["text"])]}

    graph = StateGraph(MessagesState).add_node("answer", node).add_edge(START, "answer").compile(store=store)
    out = graph.invoke({"messages": [("user", "what tea?")]})
    assert out["messages"][-1].content == "Alice drinks green tea"
    assert store.get(("memories", "alice"), "seen").value == {"text": "Alice asked about tea"}


def test_langgraph_erasure_leaves_no_text_in_the_store(any_mem, tmp_path):
    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(any_mem)
    store.put(("memories", "alice"), "secret", {"text": "Alice hides her diary under the loose floorboard",
                                                "note": "quartzite ammonite"})
    store.put(("memories", "alice"), "home", {"text": "Alice lives in Berlin"})
    store.put(("memories", "carol"), "a", {"text": "Carol collects obsidian marbles"})
    store.delete(("memories", "alice"), "secret")
    assert store.forget(("memories", "carol")) == 1
    held = held_text(any_mem, db_dir_of(any_mem, tmp_path))
    for gone in ("floorboard", "quartzite", "ammonite", "obsidian"):
        assert gone not in held
    assert "Berlin" in held  # what was not erased is still there


# -- LangChain ---------------------------------------------------------------------------------


def test_langchain_history_round_trips_messages_per_session(mem):
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from engramdb.integrations.langchain import EngramChatMessageHistory

    history = EngramChatMessageHistory(mem, user_id="alice", session_id="s1")
    assert isinstance(history, BaseChatMessageHistory)
    messages = [SystemMessage("be brief"), HumanMessage("I moved to Berlin", id="m1"), AIMessage("Nice!"),
                AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Berlin"}, "id": "c1"}]),
                ToolMessage("sunny", tool_call_id="c1"),
                HumanMessage([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}])]
    history.add_messages(messages)
    history.add_user_message("and a dog")
    got = history.messages
    assert [type(m).__name__ for m in got] == ["SystemMessage", "HumanMessage", "AIMessage", "AIMessage",
                                               "ToolMessage", "HumanMessage", "HumanMessage"]
    assert [m.content for m in got][:3] == ["be brief", "I moved to Berlin", "Nice!"]
    assert got[1].id == "m1" and got[3].tool_calls[0]["args"] == {"city": "Berlin"} and got[3].content == ""
    assert got[4].tool_call_id == "c1" and got[5].content == messages[5].content
    assert EngramChatMessageHistory(mem, user_id="alice", session_id="s2").messages == []
    assert mem.search("Berlin", user_id="alice")[0].text == "I moved to Berlin"  # searchable across sessions
    assert asyncio.run(history.aget_messages()) == got

    history.clear()
    assert history.messages == [] and mem.list(user_id="alice") == []


def test_langchain_history_with_runnable_with_message_history(mem):
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.runnables.history import RunnableWithMessageHistory

    from engramdb.integrations.langchain import EngramChatMessageHistory

    def echo(messages):  # a stand-in for a chat model: answers with how many messages it saw
        return AIMessage(f"seen {len(messages)}")

    chain = RunnableWithMessageHistory(
        RunnableLambda(echo), lambda session_id: EngramChatMessageHistory(mem, user_id="alice", session_id=session_id))
    config = {"configurable": {"session_id": "s1"}}
    assert chain.invoke("hello", config=config).content == "seen 1"
    assert chain.invoke("again", config=config).content == "seen 3"  # the history came back from Engram
    assert [m.content for m in EngramChatMessageHistory(mem, user_id="alice", session_id="s1").messages] == [
        "hello", "seen 1", "again", "seen 3"]


# -- OpenAI Agents SDK -------------------------------------------------------------------------


def test_openai_agents_session_keeps_items_in_order_and_erases(mem):
    from agents.memory import Session

    from engramdb.integrations.openai_agents import EngramSession

    session = EngramSession("s1", mem, user_id="alice")
    assert isinstance(session, Session)
    items = [
        {"role": "user", "content": "I moved to Berlin"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Nice!\nHow is it?", "annotations": []},
                     {"type": "output_text", "text": "Tell me more.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Berlin"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "https://example.org/x.png"}]},
    ]

    async def run() -> None:
        await session.add_items(items)
        assert await session.get_items() == items
        assert await session.get_items(limit=2) == items[-2:]
        assert await EngramSession("s2", mem, user_id="alice").get_items() == []
        assert await session.pop_item() == items[-1]
        assert await session.get_items() == items[:-1]
        rids = [r.id for r in mem.list(user_id="alice")]
        await session.clear_session()
        assert await session.get_items() == [] and await session.pop_item() is None
        for rid in rids:  # forgotten: not even a history is left
            with pytest.raises(NotFoundError):
                mem.history(rid)

    asyncio.run(run())


def test_openai_agents_memory_tools_store_and_recall(mem):
    from agents import FunctionTool
    from agents.tool_context import ToolContext

    from engramdb.integrations.openai_agents import memory_tools

    remember, recall = memory_tools(mem, user_id="alice")
    assert isinstance(remember, FunctionTool) and (remember.name, recall.name) == ("remember", "recall")
    assert remember.params_json_schema["required"] == ["text"]

    async def call(tool, arguments: str) -> str:
        context = ToolContext(context=None, tool_name=tool.name, tool_call_id="t", tool_arguments=arguments)
        return await tool.on_invoke_tool(context, arguments)

    assert asyncio.run(call(remember, '{"text": "Alice is allergic to peanuts"}')).startswith("remembered (mem_")
    block = asyncio.run(call(recall, '{"query": "what is alice allergic to?"}'))
    assert "Alice is allergic to peanuts" in block and block.startswith("Remembered conversation")


# -- LlamaIndex --------------------------------------------------------------------------------


def test_llama_index_memory_block_takes_flushed_messages_and_answers_with_context(mem):
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import BaseMemoryBlock
    from llama_index.core.memory import Memory as LlamaMemory

    from engramdb.integrations.llama_index import EngramMemoryBlock

    block = EngramMemoryBlock(memory=mem, user_id="alice", session_id="s1")
    assert isinstance(block, BaseMemoryBlock)
    memory = LlamaMemory.from_defaults(session_id="s1", memory_blocks=[block], token_limit=40,
                                       chat_history_token_ratio=0.5, token_flush_size=10, tokenizer_fn=str.split)
    said = ["I moved to Berlin last May with my dog Rex", "Nice, how is Berlin treating you so far today",
            "Great, I love the parks and the lakes around it", "Glad to hear that, enjoy it a lot"]

    async def run() -> list:
        for index, text in enumerate(said):
            await memory.aput(ChatMessage(role="user" if index % 2 == 0 else "assistant", content=text))
        await memory.aput(ChatMessage(role="user", content="Where did I move with Rex?"))
        return await memory.aget()

    messages = asyncio.run(run())
    stored = [r.text for r in mem.list(user_id="alice")]
    assert stored and set(stored) <= set(said)  # what left the short-term buffer went into Engram
    assert all(r.session_id == "s1" for r in mem.list(user_id="alice"))
    system = messages[0]
    assert system.role.value == "system" and "I moved to Berlin last May" in system.content
    assert "with my dog Rex" in system.content
    assert messages[-1].content == "Where did I move with Rex?"
    assert asyncio.run(block.aget([])) == ""  # no user message: nothing to recall


# -- pydantic-ai -------------------------------------------------------------------------------


def test_pydantic_ai_agent_calls_the_memory_tools(mem):
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    from engramdb.integrations.pydantic_ai import memory_toolset

    def model(messages, info):  # pydantic-ai's own function model: remember, recall, answer
        names = {t.name for t in info.function_tools}
        assert names == {"remember", "recall"}
        returns = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("remember", {"text": "Alice is allergic to peanuts"})])
        if len(returns) == 1:
            return ModelResponse(parts=[ToolCallPart("recall", {"query": "what is alice allergic to?"})])
        return ModelResponse(parts=[TextPart(returns[-1].content)])

    agent = Agent(FunctionModel(model), toolsets=[memory_toolset(mem, user_id="alice", session_id="s1")])
    answer = agent.run_sync("remember my allergy, then tell me what it is").output
    assert "Alice is allergic to peanuts" in answer
    (record,) = mem.list(user_id="alice")
    assert record.role == "assistant" and record.session_id == "s1"


# -- AutoGen -----------------------------------------------------------------------------------


def test_autogen_memory_adds_queries_updates_context_and_clears(mem):
    from autogen_core.memory import Memory as AutogenMemory
    from autogen_core.memory import MemoryContent, MemoryMimeType
    from autogen_core.model_context import UnboundedChatCompletionContext
    from autogen_core.models import SystemMessage, UserMessage

    from engramdb.integrations.autogen import EngramAutogenMemory

    memory = EngramAutogenMemory(mem, user_id="alice")
    assert isinstance(memory, AutogenMemory)

    async def run() -> None:
        await memory.add(MemoryContent(content="Alice prefers metric units", mime_type=MemoryMimeType.TEXT,
                                       metadata={"topic": "units"}))
        await memory.add(MemoryContent(content={"diet": "vegan"}, mime_type=MemoryMimeType.JSON))
        with pytest.raises(InvalidInputError):
            await memory.add(MemoryContent(content=b"\x00", mime_type=MemoryMimeType.BINARY))
        found = (await memory.query("which units does alice prefer?")).results
        assert found[0].content == "Alice prefers metric units" and found[0].metadata["topic"] == "units"
        assert found[0].metadata["id"].startswith("mem_") and found[0].metadata["sources"]
        assert {"diet": "vegan"} in [r.content for r in found]
        context = UnboundedChatCompletionContext()
        await context.add_message(UserMessage(content="what units should I use?", source="user"))
        result = await memory.update_context(context)
        messages = await context.get_messages()
        assert isinstance(messages[-1], SystemMessage) and "Alice prefers metric units" in messages[-1].content
        assert len(result.memories.results) == 2
        await memory.clear()
        assert (await memory.query("units")).results == [] and mem.list(user_id="alice") == []

    asyncio.run(run())


# -- a missing framework names its extra ---------------------------------------------------------


@pytest.mark.parametrize("module, framework, extra", [
    ("langgraph", "langgraph", "langgraph"), ("langchain", "langchain_core", "langchain"),
    ("openai_agents", "agents", "openai-agents"), ("llama_index", "llama_index", "llama-index"),
    ("pydantic_ai", "pydantic_ai", "pydantic-ai"), ("autogen", "autogen_core", "autogen"),
])
def test_a_missing_framework_raises_with_the_pip_line(module, framework, extra, monkeypatch):
    for name in [n for n in sys.modules if n == framework or n.startswith(framework + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, f"engramdb.integrations.{module}", raising=False)
    monkeypatch.setitem(sys.modules, framework, None)  # import of it raises ImportError
    import importlib

    with pytest.raises(MissingDependencyError, match=rf"pip install 'engramdb\[{extra}\]'"):
        importlib.import_module(f"engramdb.integrations.{module}")


def test_openai_agents_runner_keeps_the_conversation_in_an_engram_session(mem):
    """The SDK's own Runner with a scripted model (no LLM): the second run sees the first
    run's turns, read back from Engram, and a tool call lands in the session too."""
    from agents import Agent, RunConfig, Runner
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from engramdb.integrations.openai_agents import EngramSession, memory_tools

    seen: list[list] = []

    class Scripted(Model):
        async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                               tracing, **kwargs):
            seen.append(list(input))
            if len(seen) == 1:  # first run: call remember, then answer
                return ModelResponse(output=[ResponseFunctionToolCall(
                    type="function_call", call_id="c1", name="remember", id="fc_1",
                    arguments='{"text": "Alice moved to Berlin"}')], usage=Usage(), response_id=None)
            text = f"I have {len(input)} items"
            return ModelResponse(output=[ResponseOutputMessage(
                type="message", id=f"msg_{len(seen)}", role="assistant", status="completed",
                content=[ResponseOutputText(type="output_text", text=text, annotations=[])])],
                usage=Usage(), response_id=None)

        def stream_response(self, *args, **kwargs):
            raise NotImplementedError

    agent = Agent(name="assistant", model=Scripted(), tools=memory_tools(mem, user_id="alice"))
    session = EngramSession("s1", mem, user_id="alice")
    offline = RunConfig(tracing_disabled=True)  # no trace export
    first = asyncio.run(Runner.run(agent, "I moved to Berlin", session=session, run_config=offline))
    assert first.final_output == "I have 3 items"  # the user turn, the tool call and its output
    second = asyncio.run(Runner.run(agent, "where do I live?", session=session, run_config=offline))
    assert second.final_output == "I have 5 items"  # the first run came back from Engram
    assert [i.get("role") or i.get("type") for i in seen[-1]] == [
        "user", "function_call", "function_call_output", "assistant", "user"]
    stored = [r.text for r in mem.list(user_id="alice", session_id="s1")]
    assert stored[0] == "I moved to Berlin" and stored[-1] == "I have 5 items"
    assert "Alice moved to Berlin" in mem.context("where does alice live?", user_id="alice")


def test_langgraph_concurrent_puts_of_one_key_keep_one_item(mem):
    from concurrent.futures import ThreadPoolExecutor

    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(mem)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(("n",), "k", {"text": f"value {i}"}), range(16)))
    assert len(store.search(("n",))) == 1 and len(mem.list(user_id="langgraph")) == 1
    assert len(store.history(("n",), "k")) == 16
