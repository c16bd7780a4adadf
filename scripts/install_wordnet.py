"""Installs WordNet 3.0 for NLTK, which evalstream's METEOR needs.

NLTK's METEOR (``nltk.translate.meteor_score``) matches synonyms through
``nltk.corpus.wordnet``; without WordNet it cannot give NLTK's number, so the
server refuses METEOR rather than score differently. NLTK's own downloader
fetches from a host that build machines often cannot reach, so this script
takes WordNet 3.0 from Debian's packages when it can:

1. WordNet already loadable by NLTK: nothing to do.
2. Debian's ``wordnet-base`` and ``wordnet-sense-index`` (the Princeton
   WordNet 3.0 database): installed with apt-get when ``/usr/share/wordnet`` is
   missing and we are root; the files NLTK's ``WordNetCorpusReader`` opens are
   *copied* (NLTK >= 3.10 refuses symlinks that leave its data root) into
   ``<nltk_data>/corpora/wordnet/``, with the ``lexnames`` file that Debian does
   not ship written from WordNet's lexnames(5WN) man page.
3. Otherwise ``nltk.download('wordnet', download_dir=<nltk_data>)``.

The result is checked in a fresh interpreter (``wordnet.synsets('dog')`` and
NLTK's METEOR doctest value). Exit status 0 when WordNet is loadable afterwards,
1 otherwise. Idempotent: a second run only checks.

    python scripts/install_wordnet.py                 # into <sys.prefix>/nltk_data
    python scripts/install_wordnet.py /path/nltk_data # elsewhere (then set NLTK_DATA)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")

#: The files nltk.corpus.reader.wordnet.WordNetCorpusReader opens (its _FILES),
#: less ``lexnames``, which is written from LEXNAMES below.
DICT_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

#: WordNet 3.0's lexicographer files, from lexnames(5WN): number, name and
#: syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb).
LEXNAMES = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
)

# Run in a fresh interpreter so that a failed load in this process (NLTK's lazy
# loaders keep state) cannot hide a good install, nor a stale one a bad install.
_CHECK = """
import sys
import nltk
nltk.data.path.insert(0, sys.argv[1])
from nltk.corpus import wordnet
from nltk.translate.meteor_score import meteor_score
names = [s.name() for s in wordnet.synsets("dog")]
if "dog.n.01" not in names:
    raise SystemExit(f"wordnet.synsets('dog') gave {names[:3]}")
# NLTK's own doctest value for METEOR (nltk/translate/meteor_score.py).
hyp = ("It is a guide to action which ensures that the military always obeys "
       "the commands of the party").split()
ref = ("It is a guide to action that ensures that the military will forever heed "
       "Party commands").split()
value = round(meteor_score([ref], hyp), 4)
if value != 0.6944:
    raise SystemExit(f"METEOR doctest gave {value}, expected 0.6944")
print(wordnet.get_version())
"""


def lexnames_text() -> str:
    """Returns the ``lexnames`` file: ``NN<TAB>name<TAB>category`` per line."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def check(nltk_data: Path) -> tuple[bool, str]:
    """Whether NLTK loads WordNet (searching ``nltk_data`` first), and what it said."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK, str(nltk_data)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout.strip() or proc.stderr.strip().splitlines()[-1:] or [""]
    return proc.returncode == 0, out if isinstance(out, str) else out[0]


def apt_install() -> bool:
    """Installs Debian's WordNet packages; False when apt-get is unusable here."""
    if DEBIAN_DIR.is_dir():
        return True
    if shutil.which("apt-get") is None:
        print("install_wordnet: no apt-get here")
        return False
    if os.geteuid() != 0:
        print("install_wordnet: not root, skipping apt-get")
        return False
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("install_wordnet: " + " ".join(cmd))
    if subprocess.run(cmd, env=env).returncode != 0:
        # A fresh machine has no package lists yet: fetch them once and retry.
        print("install_wordnet: apt-get update, then retry")
        subprocess.run(["apt-get", "update"], env=env)
        if subprocess.run(cmd, env=env).returncode != 0:
            return False
    return DEBIAN_DIR.is_dir()


def copy_debian(nltk_data: Path) -> bool:
    """Copies Debian's dict files into ``<nltk_data>/corpora/wordnet``."""
    missing = [f for f in DICT_FILES if not (DEBIAN_DIR / f).is_file()]
    if missing:
        print(f"install_wordnet: {DEBIAN_DIR} lacks {', '.join(missing)}")
        return False
    target = nltk_data / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for name in DICT_FILES:
        dest = target / name
        if dest.is_symlink():
            dest.unlink()
        shutil.copyfile(DEBIAN_DIR / name, dest)
    (target / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    print(f"install_wordnet: copied WordNet 3.0 from {DEBIAN_DIR} to {target}")
    return True


def nltk_download(nltk_data: Path) -> bool:
    """NLTK's own downloader (needs network access to NLTK's data host)."""
    try:
        import nltk
    except ImportError:
        print("install_wordnet: nltk is not installed in this interpreter")
        return False
    try:
        return bool(nltk.download("wordnet", download_dir=str(nltk_data), quiet=True))
    except Exception as exc:  # noqa: BLE001 - any failure means "not this way"
        print(f"install_wordnet: nltk.download failed: {exc}")
        return False


def main(argv: list[str] | None = None) -> int:
    """Installs WordNet if needed; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "nltk_data",
        nargs="?",
        type=Path,
        default=Path(sys.prefix) / "nltk_data",
        help="NLTK data directory (default: <sys.prefix>/nltk_data, searched by NLTK in a venv)",
    )
    args = parser.parse_args(argv)
    nltk_data: Path = args.nltk_data.resolve()

    ok, said = check(nltk_data)
    if ok:
        print(f"install_wordnet: WordNet {said} already loadable; nothing to do")
        return 0
    if apt_install() and copy_debian(nltk_data):
        ok, said = check(nltk_data)
        if ok:
            print(f"install_wordnet: WordNet {said} loadable from {nltk_data}")
            return 0
        print(f"install_wordnet: copied files did not load: {said}")
    if nltk_download(nltk_data):
        ok, said = check(nltk_data)
        if ok:
            print(f"install_wordnet: WordNet {said} downloaded to {nltk_data}")
            return 0
    print(
        "install_wordnet: WordNet is still not loadable by NLTK; METEOR will be refused. "
        "Install it by hand: `apt-get install wordnet-base wordnet-sense-index` and rerun "
        f"this script, or `python -c \"import nltk; nltk.download('wordnet', "
        f"download_dir='{nltk_data}')\"`.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
