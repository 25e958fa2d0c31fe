"""The web playground in a real headless Chromium: type, submit, see predictions, heat map and a <mark>."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from helpers import live_server
from mtst.serving.app import ServeSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Root user, closed network: no sandbox, no background traffic, a fresh profile per run.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-quic", "--window-size=1100,900"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or shutil.which(str(CHROMEDRIVER)) is None,
                                reason="needs /usr/bin/chromium and /usr/bin/chromedriver "
                                       "(apt-get install -y chromium chromium-driver)")


def chromium(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture
def ner_model(tiny_model):
    """The tiny model with its NER head pushed towards B-PER, so the page must show an entity."""
    labels = tiny_model.config.heads["ner"].labels
    with torch.no_grad():
        tiny_model.heads["ner"].classifier.bias[labels.index("B-PER")] = 50.0
    return tiny_model


def test_type_submit_and_see_results(ner_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    sentences = ["john smith lives in paris", "the cat sat on the mat"]
    with live_server(create_app(ner_model, ServeSettings(model_name="tiny"))) as url:
        driver = chromium(tmp_path / "profile")
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 30)
            wait.until(ready.text_to_be_present_in_element((By.ID, "model-info"), "32-d embeddings"))
            box = driver.find_element(By.ID, "sentences")
            box.clear()
            box.send_keys("\n".join(sentences))
            driver.find_element(By.ID, "run").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#predictions mark.entity"))
            marks = [(m.get_attribute("data-label"), m.text)
                     for m in driver.find_elements(By.CSS_SELECTOR, "#predictions mark.entity")]
            cards = driver.find_elements(By.CSS_SELECTOR, "#predictions .card")
            topics = [c.text for c in driver.find_elements(By.CSS_SELECTOR, '.chip[data-task="topic"] .label')]
            cells = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#heatmap td")]
            n_cards = len(cards)
            driver.save_screenshot(str(tmp_path / "playground.png"))
            error = driver.find_element(By.ID, "error")
            assert not error.is_displayed(), error.text
        finally:
            driver.quit()
    assert n_cards == 2 and len(topics) == 2
    assert set(topics) <= {"world", "sports", "business"}
    assert marks[0][0] == "PER" and marks[0][1].startswith("john")
    assert len(cells) == 4 and cells[0] == "1.00"  # 2 x 2 heat map, self-similarity 1
    assert (tmp_path / "playground.png").stat().st_size > 1000
