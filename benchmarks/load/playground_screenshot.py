"""Screenshot of the web playground for docs/serving.md, taken in headless Chromium.

    .venv/bin/python benchmarks/load/playground_screenshot.py [--model DIR] [--out docs/playground.png]

Serves the same model ``mtst serve`` would (default: the shipped model, else the seeded demo model) on a
free 127.0.0.1 port, types the demo sentences, presses the button and saves the page once the results show.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-quic", "--window-size=1100,1250", "--hide-scrollbars"]


def main() -> None:
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from mtst.cli.loading import load_task_model
    from mtst.cli.showcase import DEMO_SENTENCES
    from mtst.serving.app import ServeSettings, create_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "playground.png")
    args = parser.parse_args()

    name = args.model.name if args.model else "mtst-default"
    app = create_app(load_task_model(args.model, "auto"), ServeSettings(model_name=name))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            wait = WebDriverWait(driver, 120)
            wait.until(lambda d: "embeddings" in d.find_element(By.ID, "model-info").text)
            box = driver.find_element(By.ID, "sentences")
            box.clear()
            box.send_keys("\n".join(DEMO_SENTENCES))
            driver.find_element(By.ID, "run").click()
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
            entities = len(driver.find_elements(By.CSS_SELECTOR, "mark.entity"))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
            server.should_exit = True
    print(f"wrote {args.out} ({entities} entities highlighted)", file=sys.stderr)


if __name__ == "__main__":
    main()
