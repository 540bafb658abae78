"""FakeKube in its own process (so its cost does not share the bot's GIL).

    python bench/_kube_process.py <kubeconfig path>

Writes the kubeconfig, prints "ready", and serves until its stdin closes.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the repo on sys.path)

from tests.fakes.kube import FakeKube


def main() -> None:
    with FakeKube() as kube:
        kube.write_kubeconfig(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
