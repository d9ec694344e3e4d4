"""axe-core (Deque's accessibility engine, from the npm registry) run inside the page under test.

``ops/test.sh`` installs it once at setup (``npm install --prefix .cache/axe axe-core@4``) and points
``STOREHUB_AXE`` at ``axe.min.js``; nothing is downloaded while the tests run. The browser tests fail on
any violation of impact "serious" or "critical"; the whole report is kept next to the screenshots.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(os.environ.get("STOREHUB_AXE", ROOT / ".cache/axe/node_modules/axe-core/axe.min.js"))
BLOCKING = ("serious", "critical")


def axe_violations(page: Page, report: Path) -> list[dict[str, Any]]:
    """Run axe on the page as it is now; the serious and critical violations, each with its nodes."""
    assert AXE.is_file(), (
        f"axe-core is not installed at {AXE}: run "
        "`npm install --no-save --prefix .cache/axe axe-core@4` (ops/test.sh does it) or set STOREHUB_AXE"
    )
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, { resultTypes: ['violations'] });
            return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(n => ({ target: n.target.join(' '), summary: n.failureSummary })) }));
        }"""
    )
    report.write_text(json.dumps(result, indent=2))
    return [v for v in result if v["impact"] in BLOCKING]


def assert_accessible(page: Page, report: Path) -> None:
    bad = axe_violations(page, report)
    assert not bad, "axe: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:4]]}" for v in bad
    )
