"""The web page in a real browser against a running system: a worker process, Redis, the API over HTTP.

Headless Chromium from Debian's packages, driven by Selenium through Debian's chromedriver, both
named by path so that Selenium Manager downloads nothing. The worker serves a model whose answer
for a drawn stroke is known (``shape_model``); the API needs a key, which the page asks for.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from api.app import create_app
from api.images.decoding import decode
from inferq.settings import Settings
from tests.support.processes import WorkerProcess, worker_env
from tests.web.shape_model import HORIZONTAL, VERTICAL, build_shape_model, expected_label

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KEY = "page-test-key"
QUEUE = "web"
#: Long enough for a first model call on a busy two-core machine.
WAIT_S = 30
MAX_PIXELS = Settings().max_image_pixels

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no {CHROMIUM}: apt-get install chromium chromium-driver"),
]


@pytest.fixture(scope="module")
def system(tmp_path_factory, own_redis_url: str) -> Iterator[str]:
    """A worker on the shape model and the API with a key, served over HTTP: the page's URL."""
    root = tmp_path_factory.mktemp("web-system")
    build_shape_model(root / "models", 1)
    worker = WorkerProcess(worker_env(own_redis_url, root / "models", QUEUE), root / "worker.log")
    try:
        app = create_app(Settings(redis_url=own_redis_url, queue_name=QUEUE, heartbeat_interval_s=0.5, api_key=KEY))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            worker.wait_serving()
            yield f"http://127.0.0.1:{server.server_port}/"
        finally:
            server.shutdown()
            thread.join(10)
            app.extensions["inferq"].replies.close()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,1100",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, system: str) -> WebDriver:
    """The page, opened with the key already given, the status strip showing the worker."""
    browser.get(system)
    browser.execute_script("localStorage.setItem('inferq.apiKey', arguments[0])", KEY)
    browser.refresh()
    wait_text(browser, "status-ready", "ready")
    return browser


def wait_until(driver: WebDriver, condition, what: str):
    try:
        return WebDriverWait(driver, WAIT_S).until(lambda _: condition())
    except TimeoutException:
        raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}; the page shows:\n"
                             + driver.find_element(By.TAG_NAME, "body").text) from None


def wait_text(driver: WebDriver, element_id: str, text: str) -> None:
    wait_until(driver, lambda: driver.find_element(By.ID, element_id).text == text,
               f"#{element_id} to read {text!r}")


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def draw(driver: WebDriver, points: list[tuple[int, int]]) -> None:
    """One stroke through ``points``, offsets in CSS pixels from the pad's centre."""
    pad = driver.find_element(By.ID, "pad")
    (x, y), *rest = points
    actions = ActionChains(driver).move_to_element_with_offset(pad, x, y).click_and_hold()
    for next_x, next_y in rest:
        actions.move_by_offset(next_x - x, next_y - y)
        x, y = next_x, next_y
    actions.release().perform()


def drawing_as_the_api_reads_it(driver: WebDriver) -> np.ndarray:
    data_url = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    return decode(base64.b64decode(data_url.split(",", 1)[1]), max_pixels=MAX_PIXELS)


def chosen_bar(driver: WebDriver) -> tuple[str, str]:
    row = driver.find_element(By.CSS_SELECTOR, "#bars li.chosen")
    return row.find_element(By.CLASS_NAME, "digit").text, row.find_element(By.CLASS_NAME, "pct").text


def stroke_image(path: Path, *, vertical: bool, dark_on_light: bool = False) -> int:
    """A stroke drawn as a person's scan might be; returns the label the model gives it."""
    ground, ink = (255, 0) if dark_on_light else (0, 255)
    pixels = np.full((120, 90), ground, np.uint8)
    if vertical:
        pixels[15:105, 40:50] = ink
    else:
        pixels[55:65, 10:80] = ink
    Image.fromarray(pixels).save(path)
    return expected_label(decode(path.read_bytes(), max_pixels=MAX_PIXELS))


def batch_sizes_shown(driver: WebDriver) -> list[int]:
    """The status strip's recent batch sizes, from each worker's "<name>: 1, 6 images" label."""
    labels = [spark.get_attribute("aria-label")
              for spark in driver.find_elements(By.CSS_SELECTOR, "#status-batches .spark")]
    return [int(size) for label in labels for size in label.rsplit(": ", 1)[1].removesuffix(" images").split(", ")]


def assert_no_script_errors(driver: WebDriver) -> None:
    # A refused call (the 401 that makes the page ask for the key) is logged too; it is no script error.
    errors = [entry["message"] for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
    assert not errors


def test_the_page_asks_for_the_key_and_recognises_a_drawn_digit(browser: WebDriver, system: str,
                                                                  tmp_path: Path) -> None:
    browser.get(system)
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    key_input = browser.find_element(By.ID, "api-key")
    wait_until(browser, key_input.is_displayed, "the page to ask for the API key")
    assert browser.find_element(By.ID, "key-message").text == "This server needs an API key."
    screenshot(browser, tmp_path, "key-asked")

    key_input.send_keys("wrong")
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait_text(browser, "key-message", "That key was refused. Enter the right one.")
    key_input.clear()
    key_input.send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait_text(browser, "status-ready", "ready")
    assert not key_input.is_displayed()
    assert browser.find_element(By.ID, "status-workers").text == "1"
    assert browser.find_element(By.ID, "status-model").text == "1"

    draw(browser, [(0, -100), (2, -40), (0, 20), (-2, 100)])
    assert expected_label(drawing_as_the_api_reads_it(browser)) == VERTICAL
    browser.find_element(By.ID, "recognise").click()
    wait_text(browser, "label", str(VERTICAL))
    assert chosen_bar(browser)[0] == str(VERTICAL)
    assert browser.find_element(By.ID, "answer-source").text == "Your drawing · model version 1"
    screenshot(browser, tmp_path, "drawn-1")

    browser.find_element(By.ID, "clear").click()
    draw(browser, [(-100, 10), (-30, 8), (40, 12), (100, 10)])
    assert expected_label(drawing_as_the_api_reads_it(browser)) == HORIZONTAL
    browser.find_element(By.ID, "recognise").click()
    wait_text(browser, "label", str(HORIZONTAL))
    digit, pct = chosen_bar(browser)
    assert digit == str(HORIZONTAL) and pct.endswith("%") and float(pct[:-1]) > 50
    screenshot(browser, tmp_path, "drawn-7")
    assert_no_script_errors(browser)


def test_an_uploaded_file_is_recognised(page: WebDriver, tmp_path: Path) -> None:
    image = tmp_path / "scan.png"
    label = stroke_image(image, vertical=False, dark_on_light=True)
    assert label == HORIZONTAL
    page.find_element(By.ID, "files").send_keys(str(image))
    wait_text(page, "label", str(label))
    assert page.find_element(By.ID, "answer-source").text == "scan.png · model version 1"
    screenshot(page, tmp_path, "uploaded")
    assert_no_script_errors(page)


def test_several_files_go_as_a_job_whose_results_are_tabled(page: WebDriver, tmp_path: Path) -> None:
    expected = {}
    for index in range(6):
        path = tmp_path / f"stroke-{index}.png"
        expected[path.name] = stroke_image(path, vertical=index % 3 == 0, dark_on_light=index % 2 == 1)
    assert set(expected.values()) == {VERTICAL, HORIZONTAL}
    page.find_element(By.ID, "files").send_keys("\n".join(str(tmp_path / name) for name in expected))

    wait_until(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == len(expected),
               "the results table")
    rows = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in page.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
    assert [(name, int(label)) for name, label, _ in rows] == sorted(expected.items())
    assert all(confidence.endswith("%") for _, _, confidence in rows)
    assert page.find_element(By.ID, "job-status").text == f"Job done: {len(expected)} images"
    wait_until(page, lambda: max(batch_sizes_shown(page), default=0) >= len(expected),
               "the status strip to show the job's batch")
    screenshot(page, tmp_path, "job")

    # A phone's width, tall enough that the screenshot holds the whole page.
    page.set_window_size(390, 2000)
    try:
        screenshot(page, tmp_path, "job-phone")
        assert page.execute_script("return document.documentElement.scrollWidth") <= 390
    finally:
        page.set_window_size(1280, 1100)
    assert_no_script_errors(page)


def test_an_error_from_the_api_is_shown(page: WebDriver, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not an image")
    page.find_element(By.ID, "files").send_keys(str(broken))
    error = page.find_element(By.ID, "error")
    wait_until(page, error.is_displayed, "the error to be shown")
    assert error.text.startswith("image 0 ('broken.png'): the upload is not an image")
    screenshot(page, tmp_path, "error")
    assert_no_script_errors(page)


def test_a_chosen_folder_goes_as_a_job_without_its_other_files(page: WebDriver, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    (folder / "more").mkdir(parents=True)
    expected = {
        "scans/a.png": stroke_image(folder / "a.png", vertical=True),
        "scans/more/b.png": stroke_image(folder / "more" / "b.png", vertical=False),
    }
    (folder / "notes.txt").write_text("not an image")
    page.find_element(By.ID, "folder").send_keys(str(folder))

    wait_until(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == len(expected),
               "the results table")
    rows = {row.find_elements(By.TAG_NAME, "td")[0].text: int(row.find_elements(By.TAG_NAME, "td")[1].text)
            for row in page.find_elements(By.CSS_SELECTOR, "#results tbody tr")}
    assert rows == expected
    assert page.find_element(By.ID, "error").text == "1 file(s) that are not images were left out."
    screenshot(page, tmp_path, "folder")
    assert_no_script_errors(page)


def test_dropped_files_go_as_a_job(page: WebDriver, tmp_path: Path) -> None:
    expected = {f"dropped-{index}.png": stroke_image(tmp_path / f"dropped-{index}.png", vertical=index == 0)
                for index in range(2)}
    files = [[name, base64.b64encode((tmp_path / name).read_bytes()).decode()] for name in expected]
    # A drop of files from the desktop, as the page's drop handler receives it.
    page.execute_script("""
        const transfer = new DataTransfer();
        for (const [name, data] of arguments[0]) {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          transfer.items.add(new File([bytes], name, { type: "image/png" }));
        }
        document.getElementById("drop").dispatchEvent(
          new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    """, files)

    wait_until(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == len(expected),
               "the results table")
    rows = {row.find_elements(By.TAG_NAME, "td")[0].text: int(row.find_elements(By.TAG_NAME, "td")[1].text)
            for row in page.find_elements(By.CSS_SELECTOR, "#results tbody tr")}
    assert rows == expected
    assert_no_script_errors(page)
