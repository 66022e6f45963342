"""Render the fleet's status page: pages.json in, a folder of static HTML out.

Usage: python3 build.py OUTPUT_DIR. The page needs Python to be BUILT, but not to be
SERVED: any static web server can serve the folder this writes.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    data = json.loads((Path(__file__).parent / "pages.json").read_text(encoding="utf-8"))
    rows = "\n".join(
        f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(s['status'])}</td></tr>"
        for s in data["services"]
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(
        f"<!doctype html><title>{html.escape(data['title'])}</title>"
        f"<h1>{html.escape(data['title'])}</h1><table>{rows}</table>\n",
        encoding="utf-8",
    )
    print(f"wrote {out / 'index.html'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "public"))
