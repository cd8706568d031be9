"""The contributor page in a real headless browser (Playwright driving Debian's Chromium)
against the real provider (`sqlmpc provider`, a process on loopback).

A person's flow: the page loads the session, rows are pasted from a spreadsheet (Ctrl+V of
tab-separated text), invalid cells (a value not allowed, out of range, missing, not a number)
are marked and block the submission (no request leaves the page), they are fixed in the grid,
the table is submitted and a receipt shown; then a CSV and an XLSX file are loaded and
submitted again (the receipt names the submission it replaces); an unknown code and a paused
session get the provider's error on the page. Every submission is intercepted: each server's
sealed box is opened with that server's private key, the shares are recombined with MPyC's own
Lagrange recombination, and the values must be exactly the typed ones in MPyC's fixed-point
encoding, with no plaintext value anywhere in the request.

Screenshots go to out/contributor_page/. Chromium, the playwright package and the built
vendor/ folder (`make web`) are required: without them the test fails, it is never skipped.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from sqlmpc.runtime.workspace import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "contributors" / "web"
EXAMPLE = ROOT / "examples" / "pay_equity_contributors"
SHOTS = ROOT / "out" / "contributor_page"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FRAC_BITS = 32
STARTUP_SECONDS = 30

pytestmark = pytest.mark.slow


def _require_browser():
    """The sync Playwright API, or a clear failure naming what CI must install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing: pip install playwright "
                    "(no browser download: Debian's chromium is used)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if not (WEB / "vendor" / "tabulator.js").exists():
        pytest.fail("contributors/web/vendor/ is not built: run `make web` (npm ci, npm run build)")
    return sync_playwright


def _sqlmpc(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "sqlmpc", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"sqlmpc {args[0]} failed: {done.stderr.strip()}"
    return done.stdout


class Provider:
    """`sqlmpc provider` on the example session with fresh server keys, open, two codes."""

    def __init__(self, folder: Path) -> None:
        from nacl.public import PrivateKey
        shutil.copy(EXAMPLE / "session.toml", folder)
        shutil.copy(EXAMPLE / "query.sql", folder)
        self.keys = {}
        for name in ("provider", "s2", "s3"):
            _sqlmpc("server-keys", name, "--out", "keys", cwd=folder)
            raw = base64.b64decode((folder / "keys" / f"{name}.key").read_text())
            self.keys[name] = PrivateKey(raw)
        db = folder / "provider.sqlite"
        self.codes = _sqlmpc("codes", "session.toml", "--count", "2", "--db", str(db),
                             cwd=folder).split()
        self.url = f"http://127.0.0.1:{_free_port()}/"
        self.log = (folder / "provider.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sqlmpc", "provider", "session.toml", "--listen",
             self.url[len("http://"):-1], "--db", str(db), "--open", "--quiet"],
            cwd=folder, stdout=self.log, stderr=subprocess.STDOUT)
        self.info = self._wait_until_up(folder / "provider.log")
        self.token = (folder / "provider.sqlite.analyst-token").read_text().strip()
        self.modulus = int(self.info["field"]["modulus"])
        self.columns = self.info["table"]["columns"]
        self.servers = [s["name"] for s in self.info["servers"]]

    def _wait_until_up(self, log: Path) -> dict:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"sqlmpc provider exited: {log.read_text().strip()}")
            try:
                with urllib.request.urlopen(self.url + "api/session", timeout=2) as response:
                    return json.load(response)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        pytest.fail(f"sqlmpc provider did not answer within {STARTUP_SECONDS} s")

    def analyst(self, action: str) -> dict:
        request = urllib.request.Request(self.url + f"api/analyst/{action}", method="POST",
                                         data=b"{}", headers={
                                             "Authorization": f"Bearer {self.token}",
                                             "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    _require_browser()  # fail before starting anything when the browser cannot run
    running = Provider(tmp_path_factory.mktemp("provider"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, provider):
    context = browser.new_context(viewport={"width": 1100, "height": 1300})
    context.grant_permissions(["clipboard-read", "clipboard-write"],
                              origin=provider.url.rstrip("/"))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the browser logs each refused request itself (the 403 tested below): not a page error
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource: the server responded") else None)
    # nothing but the sealed submission may carry data out of the page
    page.on("request", lambda r: errors.append(f"{r.method} {r.url} carries a body")
            if r.post_data is not None and not r.url.endswith("/api/submit") else None)
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"


# --- helpers ---------------------------------------------------------------------------------

def encode(column: dict, text: str, modulus: int) -> int:
    """The contract's field element of a cell, computed independently of the page's code."""
    if "values" in column:
        x = column["values"].index(text) << FRAC_BITS
    else:
        x = round(Fraction(Decimal(text)) * (1 << FRAC_BITS))
    return x % modulus


def open_submission(body: dict, provider: Provider) -> list[list[str]]:
    """Opens every server's box, checks the payloads, recombines: rows of field elements."""
    from mpyc import thresha
    from mpyc.runtime import mpc
    from nacl.public import SealedBox
    field = mpc.SecFxp(96, 32).field
    payloads = [json.loads(SealedBox(provider.keys[name]).decrypt(
        base64.b64decode(body["shares"][name]))) for name in provider.servers]
    names = [c["name"] for c in provider.columns]
    for payload in payloads:
        assert payload["session"] == provider.info["name"] and payload["code"] == body["code"]
        assert payload["columns"] == names and payload["rows"] == body["rows"]
        assert [len(col) for col in payload["shares"]] == [body["rows"]] * len(names)
    rows = []
    for r in range(body["rows"]):
        row = []
        for c, column in enumerate(provider.columns):
            shares = [int(p["shares"][c][r]) for p in payloads]
            assert all(0 <= s < provider.modulus for s in shares)
            # any t + 1 = 2 of the 3 servers give the same secret: a degree-1 polynomial
            secrets = {recombined % provider.modulus for pair in ((0, 1), (1, 2), (0, 2))
                       for recombined in thresha.recombine(
                           field, [(i + 1, [shares[i]]) for i in pair])}
            assert len(secrets) == 1, f"row {r} {column['name']}: shares are inconsistent"
            row.append(secrets.pop())
        rows.append(row)
    return rows


def assert_carries(body: dict, provider: Provider, table: list[list[str]]) -> None:
    """The submission holds exactly `table` (rows of cell texts) and no plaintext of it."""
    expected = [[encode(c, text, provider.modulus) for c, text in zip(provider.columns, row)]
                for row in table]
    assert open_submission(body, provider) == expected
    raw = json.dumps(body)
    assert set(body) == {"code", "rows", "shares"}
    for row, encoded in zip(table, expected):
        for text, element in zip(row, encoded):
            if len(text) >= 4:
                assert text not in raw, f"{text!r} is in the request in the clear"
            if element >= 10**12:  # a short number (0, a category's index) appears by chance
                assert str(element) not in raw


def cell(page, row: int, column: str):
    """The grid cell of a 1-based row and a column."""
    return page.locator(f"#grid .tabulator-row:nth-child({row}) "
                        f".tabulator-cell[tabulator-field='{column}']")


def paste_at(page, row: int, column: str, text: str) -> None:
    """Selects a cell and pastes text there with Ctrl+V, as from a spreadsheet's copy."""
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    cell(page, row, column).click()
    page.keyboard.press("Control+V")


def type_into(page, row: int, column: str, text: str) -> None:
    """Edits a cell as a person would: double-click, replace the text, Enter."""
    cell(page, row, column).dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def problem_of(page, row: int, column: str) -> str:
    """The reason a cell is marked invalid ("" when it is not marked)."""
    target = cell(page, row, column)
    marked = "cell-invalid" in (target.get_attribute("class") or "")
    return (target.get_attribute("title") or "(no reason)") if marked else ""


def capture_submissions(page) -> list[dict]:
    """Every POST /api/submit body the page sends, in order."""
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data))
            if r.url.endswith("/api/submit") and r.method == "POST" else None)
    return bodies


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# --- the flow --------------------------------------------------------------------------------

PASTED = [["gender", "ethnicity", "job_level", "salary"],
          ["F", "Asian", "L1", "52000.50"],
          ["M", "White", "L3", "98000"],
          ["Q", "Hispanic", "L2", "61234.75"],    # not an allowed value
          ["F", "Black", "L5", "20000000"],       # above the maximum
          ["M", "Other", "", "0.01"],             # a missing value
          ["X", "Asian", "L4", "12x"]]            # not a number
FIXED = [["F", "Asian", "L1", "52000.50"],
         ["M", "White", "L3", "98000"],
         ["X", "Hispanic", "L2", "61234.75"],
         ["F", "Black", "L5", "200000"],
         ["M", "Other", "L4", "0.01"],
         ["X", "Asian", "L4", "45500"]]


def test_fill_fix_submit_resubmit(page, provider):
    bodies = capture_submissions(page)
    assert [c["name"] for c in provider.columns] == PASTED[0], "the example's table changed"
    from mpyc.runtime import mpc
    assert provider.modulus == mpc.SecFxp(96, 32).field.modulus  # the page pins this prime
    page.goto(provider.url + f"?code={provider.codes[0]}")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#session-name").inner_text() == provider.info["name"]
    assert page.locator("#code").input_value() == provider.codes[0]

    paste_at(page, 1, "gender", "\n".join("\t".join(r) for r in PASTED) + "\n")
    assert problem_of(page, 3, "gender") == '"Q" is not one of F, M, X'
    assert problem_of(page, 4, "salary") == "20000000 is above the maximum 10000000"
    assert problem_of(page, 5, "job_level") == "missing value"
    assert problem_of(page, 6, "salary") == '"12x" is not a number'
    assert problem_of(page, 1, "salary") == "" and problem_of(page, 7, "gender") == ""
    assert "4 cells need fixing" in page.locator("#check-summary").inner_text()
    assert "Row 4, salary: 20000000 is above the maximum" in \
        page.locator("#problem-list").inner_text()
    page.click("#submit")
    assert "fix the 4 highlighted cell" in page.locator("#submit-message").inner_text()
    shot(page, "1-invalid-values")
    assert bodies == [], "a table with invalid cells was sent"

    # fix them in the grid: typing on a selected cell (its list editor), editing after a
    # double-click, a one-cell paste
    cell(page, 3, "gender").click()
    page.keyboard.type("X")
    page.keyboard.press("Enter")
    type_into(page, 4, "salary", "200000")
    paste_at(page, 5, "job_level", "L4")
    type_into(page, 6, "salary", "45500")
    assert [problem_of(page, r, c) for r, c in
            ((3, "gender"), (4, "salary"), (5, "job_level"), (6, "salary"))] == [""] * 4
    assert page.locator("#check-summary").inner_text() == \
        "6 rows ready to submit (4 empty rows are ignored)."
    assert page.locator("#submit-message").is_hidden()
    page.click("#submit")
    page.wait_for_selector("#receipt:not(.hidden)")
    assert page.locator("#receipt-rows").inner_text() == "6"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                        page.locator("#receipt-time").inner_text())
    first_receipt = page.locator("#receipt-id").inner_text()
    assert page.locator("#receipt-replaces").inner_text() == ""
    shot(page, "2-receipt")
    assert len(bodies) == 1
    assert_carries(bodies[0], provider, FIXED)

    # resubmit from a CSV file (its header in another order, a category in lower case)
    csv = "salary,job_level,gender,ethnicity\n75000.25,L2,f,White\n43000,L1,M,Asian\n"
    page.set_input_files("#file", files=[{"name": "payroll.csv", "mimeType": "text/csv",
                                          "buffer": csv.encode()}])
    page.wait_for_selector("#load-message.info")
    assert "Loaded 2 rows from payroll.csv" in page.locator("#load-message").inner_text()
    assert cell(page, 1, "gender").inner_text() == "F"  # shown as the schema spells it
    page.click("#submit")
    page.wait_for_function("document.querySelector('#receipt-replaces').textContent !== ''")
    assert f"replaces your earlier submission {first_receipt}" in \
        page.locator("#receipt").inner_text()
    assert_carries(bodies[1], provider, [["F", "White", "L2", "75000.25"],
                                         ["M", "Asian", "L1", "43000"]])
    shot(page, "3-resubmitted")


def test_xlsx_upload_and_provider_error(page, provider):
    bodies = capture_submissions(page)
    page.goto(provider.url)
    page.wait_for_selector("body[data-ready=true]")
    paste_at(page, 1, "job_level", "L2\t50000\t7\n")  # one column too many from there
    assert page.locator("#load-message").inner_text() == (
        "The pasted text does not fit the table: the data has 3 columns but the table has 2 "
        "from there (job_level, salary).")
    # an XLSX workbook made by the page's own SheetJS (binary floats, as Excel stores them)
    workbook = page.evaluate("""async () => {
        const XLSX = await import("./static/vendor/xlsx.js");
        const sheet = XLSX.utils.aoa_to_sheet([["gender", "ethnicity", "job_level", "salary"],
            ["X", "Other", "L4", 88000.1 + 0.2], ["F", "Hispanic", "L1", 15000]]);
        const book = XLSX.utils.book_new();
        XLSX.utils.book_append_sheet(book, sheet, "payroll");
        return Array.from(new Uint8Array(XLSX.write(book, {type: "array", bookType: "xlsx"})));
    }""")
    page.set_input_files("#file", files=[{
        "name": "payroll.xlsx", "buffer": bytes(workbook),
        "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}])
    page.wait_for_selector("#load-message.info")
    assert cell(page, 1, "salary").inner_text() == "88000.3"
    assert "2 rows ready" in page.locator("#check-summary").inner_text()

    page.fill("#code", "NOT-A-CODE")
    page.click("#submit")
    page.wait_for_selector("#submit-message.error")
    assert page.locator("#submit-message").inner_text() == \
        "Not submitted: unknown or revoked participation code"
    assert page.locator("#receipt").is_hidden()
    shot(page, "4-provider-error")

    page.fill("#code", provider.codes[1])
    page.click("#submit")
    page.wait_for_selector("#receipt:not(.hidden)")
    assert_carries(bodies[-1], provider, [["X", "Other", "L4", "88000.3"],
                                          ["F", "Hispanic", "L1", "15000"]])


def test_share_code_edge_values(page, provider):
    """The page's encoding of negative, tiny and large values and its sharing, checked here."""
    page.goto(provider.url)
    page.wait_for_selector("body[data-ready=true]")
    texts = ["-1234.56", "0.01", "-0.01", "999999999999.99", "0", "1,234.50", "7"]
    result = page.evaluate("""async ([texts, modulus]) => {
        const { parseDecimalText } = await import("./static/schema.js");
        const { encodeValue, shamirShares } = await import("./static/shares.js");
        const p = BigInt(modulus);
        return texts.map((t) => {
            const x = encodeValue({ decimal: parseDecimalText(t) }, p, 32);
            return [x.toString(), shamirShares(x, 2, 5, p).map(String)];
        });
    }""", [texts, str(provider.modulus)])
    from mpyc import thresha
    from mpyc.runtime import mpc
    field = mpc.SecFxp(96, 32).field
    for text, (element, shares) in zip(texts, result):
        expected = round(Fraction(Decimal(text.replace(",", ""))) * (1 << FRAC_BITS))
        assert int(element) == expected % provider.modulus, text
        points = [(i + 1, [int(shares[i])]) for i in (0, 2, 4)]  # t + 1 = 3 of 5 servers
        assert thresha.recombine(field, points)[0] % provider.modulus == int(element), text
        assert len({int(s) for s in shares}) == 5, f"{text}: shares repeat (no randomness?)"


def test_paused_session_takes_no_submission(page, provider):
    bodies = capture_submissions(page)
    page.goto(provider.url + f"?code={provider.codes[1]}")
    page.wait_for_selector("body[data-ready=true]")
    paste_at(page, 1, "gender", "M\tBlack\tL3\t70000\n")
    provider.analyst("pause")  # while the contributor is filling in the page
    try:
        page.click("#submit")
        page.wait_for_selector("#submit-message.error")
        assert page.locator("#submit-message").inner_text() == \
            "Not submitted: the session is paused, not open"
        assert len(bodies) == 1, "the sealed request was not sent"
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#session-status").inner_text().lower() == "paused"
        assert "This session is paused" in page.locator("#session-message").inner_text()
        assert page.locator("#submit").is_disabled()
        shot(page, "5-paused")
    finally:
        provider.analyst("open")


def test_schema_checks_in_the_page(page, provider):
    """The page's verdict on single cells of the example's salary column, decimal(12,2) in
    [0, 10^7], and of a categorical column."""
    page.goto(provider.url)
    page.wait_for_selector("body[data-ready=true]")
    cases = {"1.234": "1.234 has more than 2 decimals", "1.230": None,
             "12345678901": "12345678901 has more than 10 digits before the decimal point",
             "-5": "-5 is below the minimum 0", " 1,234.5 ": None, "1e5": '"1e5" is not a number',
             "10000000.00": None, "10000000.01": "10000000.01 is above the maximum 10000000"}
    verdicts = page.evaluate("""async ([columns, texts]) => {
        const { readCell } = await import("./static/schema.js");
        const salary = columns.find((c) => c.name === "salary");
        const gender = columns.find((c) => c.name === "gender");
        return [texts.map((t) => readCell(salary, t).error ?? null),
                ["m", "Male"].map((t) => readCell(gender, t).error ?? null)];
    }""", [provider.columns, list(cases)])
    assert dict(zip(cases, verdicts[0])) == cases
    assert verdicts[1] == [None, '"Male" is not one of F, M, X']


@pytest.mark.parametrize("change, message", [
    ({"threshold": 0}, "the session's threshold 0 does not fit its 3 servers"),
    ({"modulus": "2305843009213693951"},
     "the session's field is not the one the compute servers use")])
def test_page_refuses_an_unsafe_session(page, provider, change, message):
    """A provider that serves a weaker sharing (threshold 0: every share is the value, or
    another field) gets no submission: the page says why and offers no submit."""
    def weakened(route):
        info = route.fetch().json()
        info["field"].update(change)
        route.fulfill(json=info)
    page.route("**/api/session", weakened)
    page.goto(provider.url)
    page.wait_for_selector("#session-message.error")
    assert page.locator("#session-message").inner_text() == \
        f"This page cannot take submissions: {message}."
    assert page.locator("#submit").is_disabled()
