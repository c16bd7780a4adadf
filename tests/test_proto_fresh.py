"""The generated code in client/evalstream/v1 is what `make proto` makes from protos/."""

from __future__ import annotations

import filecmp
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTOS = sorted((ROOT / "protos" / "evalstream" / "v1").glob("*.proto"))
GENERATED = ROOT / "client" / "evalstream" / "v1"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    assert PROTOS, "no .proto files found"
    rc = protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'protos'}",
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *map(str, PROTOS),
        ]
    )
    assert rc == 0
    fresh = sorted(p.name for p in (tmp_path / "evalstream" / "v1").iterdir())
    committed = sorted(
        p.name
        for p in GENERATED.iterdir()
        if p.suffix in (".py", ".pyi") and p.name != "__init__.py"
    )
    assert fresh == committed
    stale = [
        n
        for n in fresh
        if not filecmp.cmp(tmp_path / "evalstream" / "v1" / n, GENERATED / n, shallow=False)
    ]
    assert not stale, f"stale generated code, run `make proto`: {stale}"


def test_every_field_is_commented() -> None:
    """One contract: the .proto comments every field (units, ranges) and every rpc."""
    import re

    missing = []
    for proto in PROTOS:
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            is_field = re.match(r"\s+(optional |repeated )?[\w.<>, ]+ \w+ = \d+( \[.*\])?;", line)
            is_rpc = line.strip().startswith("rpc ")
            if not (is_field or is_rpc) or "=" in line and re.match(r"\s+[A-Z_0-9]+ = \d+;", line):
                continue
            if "//" in line:
                continue
            prev = lines[i - 1].strip() if i else ""
            if not prev.startswith("//"):
                missing.append(f"{proto.name}:{i + 1}: {line.strip()}")
    assert not missing, "uncommented fields:\n" + "\n".join(missing)
