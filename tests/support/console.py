"""What the console's browser tests share: the runs they look at and the canary.

    run_id = daemon.submit(HOSTILE)
    assert browser_value(CANARY) is None  # nothing of HOSTILE ran on the console page

The scripts are JavaScript expressions, for any driver: Selenium's ``execute_script``
takes ``f"return {CANARY}"``, WebDriver BiDi's ``script.evaluate`` takes ``CANARY``.
"""

from __future__ import annotations

__all__ = [
    "CANARY",
    "CONSOLE_TOKEN",
    "FAILING",
    "HEIGHT",
    "HOSTILE",
    "HOSTILE_SHOWN",
    "RAN",
    "WIDTH",
]

CONSOLE_TOKEN = "console-browser-token"
WIDTH, HEIGHT = 1280, 860  # the browsers' window: a laptop's screen
# Set on the console page by any of HOSTILE's HTML that ran in the console's origin.
CANARY = "document.body.dataset.pwned || null"
# Set inside HOSTILE's HTML artifact by its own script, if it ran at all.
RAN = "document.body.dataset.ran || null"
FAILING = "def divide(a, b):\n    return a / b\n\nprint('about to divide')\ndivide(1, 0)\n"
HOSTILE = (
    "import pathlib\n"
    "print('<script>document.body.dataset.pwned = \"stdout\"</script>')\n"
    "print('<img src=x onerror=\"document.body.dataset.pwned = 1\">')\n"
    "out = pathlib.Path('outputs')\n"
    "(out / '<img src=x onerror=\"document.body.dataset.pwned = 2\">.txt').write_text('x')\n"
    "(out / '<script>name.txt').write_text('x')\n"
    "(out / 'evil.html').write_text(\n"
    "    '<p id=hello>hello</p><script>document.body.dataset.ran = \"yes\";'\n"
    "    'parent.document.body.dataset.pwned = \"frame\"</script>')\n"
)
# What a run page of HOSTILE shows as text: its output and an artifact's name.
HOSTILE_SHOWN = (
    "<script>document.body.dataset.pwned",
    '<img src=x onerror="document.body.dataset.pwned = 2">.txt',
)
