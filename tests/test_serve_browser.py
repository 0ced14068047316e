"""The chat page in a real browser: Debian's chromium driven by Selenium through chromedriver.

Asks a Korean question, waits for the streamed answer and its [n] citation, opens the cited
chunk (the quoted sentence highlighted), uploads a file and finds it in the document list.
`make install-dev` installs chromium and chromium-driver; nothing is downloaded at test time.
Set RAG_SCREENSHOT=path to save the page (docs/images/serving-page.png is made so).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_app.app import RagApp
from rag_app.server import Service
from tests.support.serve_server import running_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "rag_app" / "samples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Where to save a screenshot of the page; the test runs without it too.
SCREENSHOT = os.environ.get("RAG_SCREENSHOT")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromedriver are not installed (`make install-dev` does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,800",
        "--lang=ko-KR",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_asks_streams_cites_and_uploads(browser, make_settings, embedder, tmp_path) -> None:
    app = RagApp(make_settings(), embedder=embedder)
    app.ingest([SAMPLES])
    service = Service(app)
    wait = WebDriverWait(browser, 60)
    with running_server(service) as url:
        browser.get(url + "/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "memory"))
        assert "e5" in browser.find_element(By.ID, "status").text
        question = browser.find_element(By.ID, "question")
        question.send_keys("벡터 데이터베이스는 무엇을 저장하나요?")
        browser.find_element(By.ID, "send").click()
        turn = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".turn[data-done]")))
        answer = turn.find_element(By.CLASS_NAME, "answer").text
        assert "벡터" in answer and "[1]" in answer
        assert answer == app.query("벡터 데이터베이스는 무엇을 저장하나요?").text
        turn.find_element(By.CSS_SELECTOR, "button.cite").click()
        wait.until(ec.visibility_of_element_located((By.ID, "chunk")))
        assert "[1]" in browser.find_element(By.ID, "chunk-title").text
        marked = browser.find_elements(By.CSS_SELECTOR, "#chunk-text mark")
        assert marked and marked[0].text.split()[0] in answer

        upload = tmp_path / "zebra_notes.md"
        upload.write_text("# Zebra\n\nThe zebra index stores stripes.\n", encoding="utf-8")
        browser.find_element(By.ID, "files").send_keys(str(upload))
        browser.find_element(By.CSS_SELECTOR, "#upload button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "upload-result"), "1 added"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "documents"), "uploads/zebra_notes.md"))
        if SCREENSHOT:
            browser.find_element(By.CSS_SELECTOR, "button.cite").click()
            browser.save_screenshot(SCREENSHOT)
        assert "uploads/zebra_notes.md" in [d.doc_id for d in app.documents()]
