"""PWA benchmark (on demand, not in CI): what a phone downloads and how fast the app opens.

1. First-load transfer: every shell file the service worker precaches (plus sw.js), fetched as
   served and gzipped (level 6, what nginx and most CDNs use), against a 250 KB budget.
2. Opening offline: after a login, the network is cut and the page reloaded; time from the
   reload to the villages list on screen, in headless Chromium at 360×740 (median of runs).
3. Drafts: 500 drafts put into IndexedDB, then the time from opening the drafts tab to the
   500 rows on screen.

    .venv/bin/python tests/bench/bench_pwa.py [--runs 7] [--drafts 500]
"""

import argparse
import gzip
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import demo_database  # noqa: E402
from pwa_helpers import (  # noqa: E402
    CHROMIUM,
    LiveServer,
    launch_chromium,
    logged_in_phone,
    make_app,
    wait_service_worker,
)

BUDGET_BYTES = 250 * 1024


def transfer_sizes(app) -> list[tuple[str, int, int]]:
    """(url, raw bytes, gzipped bytes) of every file of the first load."""
    sw = (ROOT / "client_pwa" / "sw.js").read_text(encoding="utf-8")
    urls = re.findall(r"^  '(/[^']*)',$", sw, re.M) + ["/app/sw.js"]
    client = app.test_client()
    out = []
    for url in urls:
        response = client.get(url)
        body = response.get_data()
        response.close()
        assert response.status_code == 200, url
        out.append((url, len(body), len(gzip.compress(body, compresslevel=6))))
    return out


def bench_browser(server, runs: int, drafts: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        context, page = logged_in_phone(browser, server, "inspector", "Field-Team1-2026")
        wait_service_worker(page)

        context.set_offline(True)
        opens = []
        for _ in range(runs):
            t0 = time.perf_counter()
            page.reload()
            page.wait_for_selector("main a.row", timeout=15000)
            opens.append((time.perf_counter() - t0) * 1000)
        context.set_offline(False)

        page.evaluate(
            """async (n) => {
                const { store } = window.villagecheck;
                const forms = await store.latestForms();
                const facilities = await store.facilitiesOf('450222101001');
                for (let i = 0; i < n; i += 1) {
                    const f = facilities[i % facilities.length];
                    const d = await store.newDraft(forms.toilet, {
                        record: `${f.id}-${i}`, recordType: 'facility',
                        village: f.village, name: f.name,
                    });
                    d.answers.sanitary = true;
                    await store.saveDraft(d, forms.toilet);
                }
            }""",
            drafts,
        )
        renders = []
        for _ in range(runs):
            page.evaluate("() => { location.hash = '#/villages'; }")
            page.wait_for_selector("main a.row")
            ms = page.evaluate(
                """async (n) => {
                    const t0 = performance.now();
                    location.hash = '#/drafts';
                    for (;;) {
                        await new Promise((r) => requestAnimationFrame(r));
                        if (document.querySelectorAll('#drafts li').length >= n) break;
                    }
                    return performance.now() - t0;
                }""",
                drafts,
            )
            renders.append(ms)
        browser.close()
    return {"open_offline_ms": opens, "drafts_render_ms": renders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--drafts", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        app = make_app(tmp, demo_database(tmp / "demo.db", now=datetime.now(UTC)))
        sizes = transfer_sizes(app)
        raw = sum(s[1] for s in sizes)
        gz = sum(s[2] for s in sizes)
        print(f"python {platform.python_version()} on {platform.machine()}")
        print(f"\nfirst load: {len(sizes)} files, {raw / 1024:.1f} KB raw, {gz / 1024:.1f} KB gzip")
        verdict = "within" if gz <= BUDGET_BYTES else "OVER"
        print(f"budget 250 KB gzip: {verdict} ({100 * gz / BUDGET_BYTES:.0f}%)")
        for url, r, g in sorted(sizes, key=lambda s: -s[2])[:8]:
            print(f"  {g / 1024:7.1f} KB gz  {r / 1024:7.1f} KB  {url}")
        if not CHROMIUM.exists():
            print("\nChromium not found at /usr/bin/chromium: browser timings skipped")
            return
        with LiveServer(app) as server:
            result = bench_browser(server, args.runs, args.drafts)
        for key, label in (
            ("open_offline_ms", "open offline (reload → villages list)"),
            ("drafts_render_ms", f"render {args.drafts} drafts"),
        ):
            values = result[key]
            print(
                f"\n{label}: median {statistics.median(values):.0f} ms, "
                f"min {min(values):.0f}, max {max(values):.0f} ({len(values)} runs)"
            )


if __name__ == "__main__":
    main()
