"""The demo page (facseg.demo): what it shows for a photo, and the page itself, served and driven in a real headless
Chromium (`make install-browser` installs it; CI does)."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from facseg.data.formats import read_image
from facseg.models.demo_page import Demo
from facseg.models.photos import FaceFinder, overlay, parse_photo
from tests.helpers import REAL_SAMPLES, subprocess_env

PHOTO = REAL_SAMPLES / "celebamask-hq" / "images" / "0.jpg"


@pytest.mark.slow
def test_the_page_shows_what_predict_writes_and_an_ensemble_of_a_model_with_itself_is_the_model(
    checkpoint, tiny_root, tmp_path
):
    twin = tmp_path / "twin.ckpt"
    shutil.copy(checkpoint, twin)
    demo = Demo([str(checkpoint), str(twin)], device="cpu")
    image = read_image(tiny_root / "test" / "images" / "test_00000.jpg")
    shown, areas, summary = demo.parse(image, [str(checkpoint)])
    parser = demo.parsers[str(checkpoint)]
    label = parse_photo(image, FaceFinder(parser.image_size, parser.margin)(image), parser)
    assert np.array_equal(shown, overlay(image, label, parser.labels.colour_table()))
    assert [row[0] for row in areas] == [parser.labels.names[i] for i in np.unique(label) if i > 0]
    assert sum(row[1] for row in areas) == (label > 0).sum()
    assert sum(row[2] for row in areas) == pytest.approx(100, abs=0.5)  # shares rounded to 0.1
    assert summary.startswith("unet: ") and " ms " in summary
    # Averaged in the crop, the same net twice parses as the net (up to a pixel or two where the warp back
    # interpolates log probabilities instead of logits).
    both = demo.parse(image, [str(checkpoint), str(twin)])[0]
    assert (both == shown).all(-1).mean() > 0.999
    with pytest.raises(ValueError, match="pick one or more of the models"):
        demo.parse(image, [])
    with pytest.raises(ValueError, match="give models="):
        Demo([])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium():
    """Headless Chromium through Selenium and Debian's chromedriver, no network of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1300",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def parse_in_the_page(url: str, photo: Path, screenshot: Path) -> dict:
    """Open the page, upload the photo, press Parse, wait for the result; what the page shows, and a screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#photo input[type=file]"))
        upload.send_keys(str(photo))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo img"))
        driver.find_element(By.CSS_SELECTOR, "#parse-button").click()
        wait.until(lambda d: " ms " in d.find_element(By.ID, "summary").text)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#parse img"))
        shown = {
            "summary": driver.find_element(By.ID, "summary").text,
            "areas": driver.find_element(By.ID, "areas").text,
            "parse_src": driver.find_element(By.CSS_SELECTOR, "#parse img").get_attribute("src"),
        }
        driver.save_screenshot(str(screenshot))
        return shown
    finally:
        driver.quit()


def test_the_page_parses_an_uploaded_real_photo_in_a_headless_browser(checkpoint, tmp_path):
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} is absent: the page is tested on a shared real photo")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("no chromium/chromedriver: `make install-browser` installs them (CI does)")
    port = free_port()
    command = [sys.executable, "-m", "facseg.demo", f"models=[{checkpoint}]", f"port={port}", "device=cpu"]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                assert time.time() < deadline, "the page did not come up in 2 minutes"
                time.sleep(0.5)
        shown = parse_in_the_page(url, PHOTO, tmp_path / "page.png")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert shown["summary"].startswith("unet: 1 face(s), ")  # YuNet found the face in the real photo
    assert "skin" in shown["areas"] and "% of non-background" in shown["areas"]
    assert shown["parse_src"]  # the overlay is on the page
    page = cv2.imread(str(tmp_path / "page.png"))
    assert page.shape[1] == 1280 and page.std() > 10  # a rendered page, not a blank one
