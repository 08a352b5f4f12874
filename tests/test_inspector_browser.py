"""The web inspector in a real headless Chromium against a real server: each page loads,
a derived memory's source turns are one click away, a history chain links its causes and
answers `as_of`, the search playground shows hits, scores and the context block, the job
queue shows a failed job's error, delete and forget ask first and then the memory is
gone (its receipt holds no text), and stored markup stays text.

Screenshots of the main pages go to tmp_path, or to $ENGRAM_INSPECTOR_SHOTS when set
(`ENGRAM_INSPECTOR_SHOTS=docs pytest tests/test_inspector_browser.py` refreshes docs/)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.bench.browser import Browser
from engramdb.clock import format_ts, parse_ts
from engramdb.config import Config
from engramdb.providers.fake import FakeEmbedder
from engramdb.server.auth import Authenticator
from engramdb.server.keys.sqlite import SQLiteKeyStore, keys_path
from engramdb.server.rest import create_app
from engramdb.server.tenants import TenantRegistry
from engramdb.stores.base import NewRecord
from engramdb.types import Scope

from server_helpers import LiveServer

pytestmark = pytest.mark.timeout(300)

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>'
OFFLINE = Config(extractor="offline")


def _populate(store: Path) -> None:
    with Memory(store, tenant="acme", config=OFFLINE, embedder=FakeEmbedder()) as mem:
        mem.add([{"role": "user", "content": "I live in Paris with my dog Rex.", "id": "m1",
                  "timestamp": "2023-01-05T10:00:00Z"},
                 {"role": "assistant", "content": "Nice, Paris is lovely in spring.", "id": "m2",
                  "timestamp": "2023-01-05T10:00:05Z"}], user_id="alice", session_id="s1")
        mem.add([{"role": "user", "content": "I moved to Berlin last month.", "id": "m3",
                  "timestamp": "2024-03-02T09:00:00Z"}], user_id="alice", session_id="s2")
        mem.add([{"role": "user", "content": XSS, "id": "x1", "timestamp": "2024-01-01T00:00:00Z"}],
                user_id="mallory", session_id="evil")
        mem.add("Carol likes green tea.", user_id="carol", session_id="c1")
        assert mem.flush(120)
    # A job that failed for good, as a dead LLM leaves one (a Memory that distils nothing).
    with Memory(store, tenant="acme", config=Config(extractor="none"), embedder=FakeEmbedder()) as mem:
        now = format_ts(parse_ts("2024-05-01T00:00:00Z"))
        turn = NewRecord(id="mem_bobturn", scope=Scope("bob"), kind="turn", text="Bob's turn", created_at=now,
                         recorded_at=now, role="user", sources=["b1"])
        mem.store.insert([turn], mem.embedder.embed(["Bob's turn"]), actor="bob", enqueue=True)
        job = mem.store.claim_job(now=now, lease_until=now)
        mem.store.fail_job(job, "ProviderError: the LLM server timed out after 30 s", at=now, retry_at=None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspector")
    store = folder / "engram.db"
    _populate(store)
    keys = SQLiteKeyStore(keys_path(store))
    secrets = {"acme": keys.create("acme").secret, "acme-ro": keys.create("acme", read_only=True).secret,
               "globex": keys.create("globex").secret}
    registry = TenantRegistry(store, OFFLINE, embedder=FakeEmbedder())
    live = LiveServer(create_app(registry, Authenticator(keys), mcp=False)).start()
    browser = Browser()
    yield Site(live.url, secrets, browser, folder)
    browser.close()
    live.stop()


class Site:
    def __init__(self, url: str, secrets: dict[str, str], browser: Browser, folder: Path) -> None:
        self.url, self.secrets, self.browser, self.folder = url, secrets, browser, folder
        self.driver = browser.driver
        self._fresh = itertools.count()

    def login(self, who: str | None = "acme", page: str = "#/users") -> None:
        """A fresh load of the page with `who`'s key (as `engram ui` opens it), then `page`."""
        self.driver.get(f"{self.url}/ui/?load={next(self._fresh)}")
        self.driver.execute_script("sessionStorage.clear()")
        if who is None:
            self.driver.get(f"{self.url}/ui/?load={next(self._fresh)}{page}")
            self.wait_ready()
            return
        self.driver.get(f"{self.url}/ui/?load={next(self._fresh)}#key={self.secrets[who]}")
        self.wait_ready()
        self.go(page)

    def go(self, page: str) -> None:
        self.driver.execute_script("document.body.dataset.ready = ''; if (location.hash === arguments[0]) route(); "
                                   "else location.hash = arguments[0]", page)
        self.wait_ready()

    def wait_ready(self) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        done = "const r = document.body.dataset.ready; return !!r && r === location.hash"
        WebDriverWait(self.driver, 20).until(lambda d: d.execute_script(done))

    def wait(self, css: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return "\n".join(e.text for e in self.find(css))

    def click_link(self, text: str, within: str = "main") -> None:
        from selenium.webdriver.common.by import By

        self.driver.execute_script("document.body.dataset.ready = ''")
        self.find(within)[0].find_element(By.LINK_TEXT, text).click()
        self.wait_ready()

    def row(self, table: str, text: str):
        rows = [r for r in self.find(f"{table} tbody tr") if text in r.text]
        assert rows, f"no row of {table} holds {text!r}: {self.text(table)!r}"
        return rows[0]

    def shot(self, name: str) -> Path:
        folder = Path(os.environ.get("ENGRAM_INSPECTOR_SHOTS") or self.folder)
        path = folder / f"inspector-{name}.png"
        self.driver.save_screenshot(str(path))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return path


def test_without_a_key_the_page_asks_for_one(site):
    site.login(None)
    site.wait("#api-key")
    assert "key" in site.text("main").lower()
    site.find("#api-key")[0].send_keys("not-a-key")
    site.driver.execute_script("document.body.dataset.ready = ''")
    site.find("main button")[0].click()
    site.wait_ready()
    assert site.find("#api-key") and "API key" in site.text(".error")  # refused, asked again


def test_users_page_lists_the_tenants_users_with_counts(site):
    site.login("acme")
    assert {"alice", "bob", "carol", "mallory"} <= set(site.text("#users tbody").split())
    assert "7" in site.row("#users", "alice").text  # 3 turns and 4 memories derived from them
    assert "local" not in site.text("#who") and "acme" in site.text("#who")
    site.shot("users")


def test_timeline_shows_turns_and_derived_memories_with_sources_one_click_away(site):
    site.login("acme", "#/user/alice")
    timeline = site.text("#timeline")
    assert "I moved to Berlin last month." in timeline and "The user lives in Berlin" in timeline
    assert "retired" in site.row("#timeline", "The user lives in Paris").get_attribute("class")
    assert {"s1", "s2"} <= set(site.text("#sessions tbody").split())
    site.shot("timeline")
    from selenium.webdriver.common.by import By

    site.driver.execute_script("document.body.dataset.ready = ''")
    site.row("#timeline", "The user lives in Berlin").find_element(By.LINK_TEXT, "sources · history").click()
    site.wait_ready()
    assert "I moved to Berlin last month." in site.text("#sources")
    assert "The user lives in Berlin" in site.text("#record-text")


def test_a_session_narrows_the_timeline(site):
    site.login("acme", "#/user/alice")
    site.click_link("s1", "#sessions")
    timeline = site.text("#timeline")
    assert "Paris" in timeline and "Berlin" not in timeline


def test_history_chain_links_its_causes_and_answers_as_of(site):
    site.login("acme", "#/user/alice")
    from selenium.webdriver.common.by import By

    site.driver.execute_script("document.body.dataset.ready = ''")
    site.row("#timeline", "The user lives in Paris").find_element(By.LINK_TEXT, "sources · history").click()
    site.wait_ready()
    history = site.text("#history")
    assert "added" in history and "superseded" in history and "superseded by mem_" in history
    assert "The user lives in Berlin" in site.text("#superseded-by")

    def ask(day: str) -> str:
        field = site.find("#asof-date")[0]
        site.driver.execute_script("arguments[0].value = arguments[1]", field, day)
        site.driver.execute_script("document.getElementById('asof-answer').replaceChildren()")
        site.find("#asof-date")[0].find_element(By.XPATH, "ancestor::form//button").click()
        return site.wait("#asof-answer p").find_element(By.XPATH, "..").text

    assert "The user lives in Paris" in ask("2023-06-01T00:00:00")
    assert "The user lives in Berlin" in ask("2024-06-01T00:00:00")
    assert "nothing of this chain" in ask("2022-01-01T00:00:00")
    site.shot("history")
    cause = site.find("#history a")[0]
    site.driver.execute_script("document.body.dataset.ready = ''")
    cause.click()
    site.wait_ready()
    assert "The user lives in Berlin" in site.text("#record-text")
    assert "The user lives in Paris" in site.text("#supersedes")


def test_search_playground_shows_hits_scores_and_the_context_block(site):
    site.login("acme", "#/search")
    from selenium.webdriver.support.ui import Select

    Select(site.find("#user")[0]).select_by_value("alice")
    site.find("#query")[0].send_keys("where does the user live? Berlin")
    site.find("#go")[0].click()
    site.wait("#context")
    assert "Berlin" in site.text("#hits")
    scores = [float(s.text) for s in site.find("#hits .score")]
    assert scores and all(s > 0 for s in scores) and scores == sorted(scores, reverse=True)
    block = site.text("#context")
    assert "Berlin" in block and block.splitlines()[0].startswith("Remembered conversation")
    site.shot("search")


def test_jobs_page_shows_the_queue_and_a_failed_jobs_error(site):
    site.login("acme", "#/jobs")
    assert "failed" in site.text("#job-summary")
    failed = site.row("#jobs", "timed out")
    assert "failed" in failed.text and "bob" in failed.text
    site.shot("jobs")


def test_stored_markup_renders_as_text_everywhere(site):
    site.login("acme", "#/user/mallory")
    assert XSS in site.text("#timeline")
    inert = "return [window.__pwned, document.querySelectorAll('main img, main script, main b').length]"
    assert site.driver.execute_script(inert) == [None, 0]
    site.click_link("history", "#timeline")
    assert site.text("#record-text") == XSS
    assert site.driver.execute_script(inert) == [None, 0]
    site.go("#/search")
    from selenium.webdriver.support.ui import Select

    Select(site.find("#user")[0]).select_by_value("mallory")
    site.find("#query")[0].send_keys("bold script")
    site.find("#go")[0].click()
    site.wait("#context")
    assert XSS in site.text("#hits") and XSS in site.text("#context")
    assert site.driver.execute_script(inert) == [None, 0]


def test_a_read_only_key_sees_but_cannot_delete(site):
    site.login("acme-ro", "#/user/alice")
    assert "read-only" in site.text("#who") and not site.find("#forget-user")
    site.click_link("history", "#timeline")
    assert site.find("#record-text") and not site.find("#delete")


def test_another_tenants_key_sees_none_of_these_users(site):
    site.login("globex")
    assert not site.find("#users") and "No memories" in site.text("main")


def test_delete_asks_first_then_the_memory_is_gone_leaving_a_receipt_without_text(site):
    site.login("acme", "#/user/alice")
    from selenium.webdriver.common.by import By

    turn = site.row("#timeline", "Nice, Paris is lovely")
    memory_id = turn.get_attribute("data-id")
    site.driver.execute_script("document.body.dataset.ready = ''")
    turn.find_element(By.LINK_TEXT, "history").click()
    site.wait_ready()
    site.find("#delete")[0].click()
    assert site.find("#confirm")[0].is_displayed()
    site.find("#confirm-cancel")[0].click()  # asked, and cancelled: still there
    site.go("#/user/alice")
    assert "Nice, Paris is lovely" in site.text("#timeline")
    site.go(f"#/memory/{memory_id}")
    site.find("#delete")[0].click()
    site.driver.execute_script("document.body.dataset.ready = ''")
    site.find("#confirm-ok")[0].click()
    site.wait_ready()
    assert "Deleted" in site.text("#notice")
    assert "Nice, Paris is lovely" not in site.text("#timeline")
    assert memory_id not in [r.get_attribute("data-id") for r in site.find("#timeline tbody tr")]
    site.go("#/erasures?user=alice")
    assert memory_id in site.text("#receipts")
    assert "lovely" not in site.driver.page_source
    site.shot("erasures")
    site.click_link(memory_id, "#receipts")
    assert "Erased memory" in site.text("h1") and "lovely" not in site.driver.page_source


def test_forget_needs_the_user_id_typed_then_the_user_is_gone(site):
    site.login("acme", "#/user/carol")
    site.find("#forget-user")[0].click()
    ok = site.find("#confirm-ok")[0]
    assert not ok.is_enabled()  # not until the user id is typed
    site.find("#confirm-typed")[0].send_keys("caro")
    assert not ok.is_enabled()
    site.find("#confirm-typed")[0].send_keys("l")
    assert ok.is_enabled()
    site.driver.execute_script("document.body.dataset.ready = ''")
    ok.click()
    site.wait_ready()
    assert "Erased" in site.text("#notice")
    assert "carol" not in site.text("#users tbody").split() and "alice" in site.text("#users tbody")
