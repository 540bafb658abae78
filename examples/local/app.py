"""A staging's app for the local trial: one page saying what it runs, and its own SQLite file.

Started by staging.py with the staging's STAGING_* variables in its environment; it needs
nothing but Python's standard library. Not a framework to build on: a stand-in for your app.
"""

from __future__ import annotations

import argparse
import html
import os
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2rem}}td{{padding:.2rem 1rem .2rem 0}}</style>
</head><body><h1>{title}</h1><table>{rows}</table>
<p>This staging has its own database ({db}); this page was viewed {visits} times.</p>
</body></html>
"""


def facts() -> list[tuple[str, str]]:
    """What the page shows: the staging's data, then each override (`/staging set`)."""
    env = os.environ
    shown = [
        ("repository", env.get("STAGING_REPO", "")),
        ("request", "#" + env.get("STAGING_PR", "")),
        ("branch", env.get("STAGING_BRANCH", "")),
        ("commit", env.get("STAGING_SHA", "")),
        ("staging", env.get("STAGING_NAME", "")),
    ]
    prefix = env.get("STAGING_OVERRIDE_PREFIX", "STAGING_ENV_")
    for key in env.get("STAGING_OVERRIDE_KEYS", "").split():
        shown.append((f"override {key}", env.get(prefix + key, "")))
    return shown


class Database:
    """The staging's own data: a visit counter, kept across updates, archive and restore."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        with self.connect() as db:
            db.execute("create table if not exists visits (id integer primary key, at text)")

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def visit(self) -> int:
        with self.lock, self.connect() as db:
            db.execute("insert into visits (at) values (datetime('now'))")
            (count,) = db.execute("select count(*) from visits").fetchone()
        return int(count)


def handler(database: Database) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path == "/healthz":
                self.answer(200, "text/plain", "ok\n")
            elif self.path == "/":
                title = f"Staging of {os.environ.get('STAGING_REPO', '')}"
                rows = "".join(
                    f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(value)}</code></td></tr>"
                    for name, value in facts()
                )
                page = PAGE.format(
                    title=html.escape(title),
                    rows=rows,
                    db=html.escape(os.path.basename(database.path)),
                    visits=database.visit(),
                )
                self.answer(200, "text/html; charset=utf-8", page)
            else:
                self.answer(404, "text/plain", "not found\n")

        def answer(self, status: int, kind: str, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Database(args.db)))
    print(f"serving on http://127.0.0.1:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
