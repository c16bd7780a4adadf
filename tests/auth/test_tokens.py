"""Token files, minting, rotation and constant-time lookup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from evalstream_server import auth


def _entry(name: str, token: str, role: str = "read", projects: list[str] | None = None) -> dict:
    return {
        "name": name,
        "sha256": auth.hash_token(token),
        "role": role,
        "projects": projects or ["*"],
    }


def test_mint_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path, capsys) -> None:
    file = tmp_path / "tokens.json"
    assert (
        auth.main(
            [
                "mint",
                "--name",
                "ci",
                "--role",
                "write",
                "--project",
                "vision-*",
                "--file",
                str(file),
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert token.startswith("es_") and len(token) >= 40
    text = file.read_text()
    assert token not in text
    [entry] = json.loads(text)["tokens"]
    assert entry == _entry("ci", token, "write", ["vision-*"])
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    # A name cannot be used twice; revoke removes it.
    assert (
        auth.main(["mint", "--name", "ci", "--role", "read", "--project", "x", "--file", str(file)])
        == 1
    )
    assert auth.main(["revoke", "--name", "ci", "--file", str(file)]) == 0
    assert json.loads(file.read_text())["tokens"] == []


def test_mint_without_a_file_prints_the_entry(capsys) -> None:
    assert auth.main(["mint", "--name", "ci", "--role", "read", "--project", "a"]) == 0
    out, err = capsys.readouterr()
    entry = json.loads(err.splitlines()[1])
    assert entry["sha256"] == auth.hash_token(out.strip())


def test_rotation_reloads_the_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    old, new = auth.mint_token(), auth.mint_token()
    file.write_text(json.dumps({"tokens": [_entry("old", old)]}))
    table = auth.TokenTable(auth.read_token_file(file), path=file, reload_seconds=0)
    assert table.lookup(old) is not None and table.lookup(new) is None
    file.write_text(json.dumps({"tokens": [_entry("old", old), _entry("new", new)]}))
    os.utime(file, ns=(1, 1))  # a different mtime even on coarse clocks
    assert table.lookup(new).name == "new"  # type: ignore[union-attr]
    file.write_text(json.dumps({"tokens": [_entry("new", new)]}))
    os.utime(file, ns=(2, 2))
    assert table.lookup(old) is None
    # A broken file keeps the tokens in force.
    file.write_text("{not json")
    os.utime(file, ns=(3, 3))
    assert table.lookup(new) is not None


def test_admin_token_from_the_environment_is_an_all_projects_admin(tmp_path: Path) -> None:
    token = auth.mint_token()
    table = auth.TokenTable.from_config(None, token)
    principal = table.lookup(token)  # type: ignore[union-attr]
    assert principal is not None and principal.role == "admin" and principal.all_projects
    assert auth.TokenTable.from_config(None, "") is None


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"name": "", "sha256": "0" * 64, "role": "read", "projects": ["a"]}, "name"),
        ({"name": "a", "sha256": "xyz", "role": "read", "projects": ["a"]}, "sha256"),
        ({"name": "a", "sha256": "0" * 64, "role": "root", "projects": ["a"]}, "role"),
        ({"name": "a", "sha256": "0" * 64, "role": "read", "projects": []}, "projects"),
        (
            {"name": "a", "sha256": "0" * 64, "role": "read", "projects": ["a"], "token": "t"},
            "unknown keys",
        ),
    ],
)
def test_bad_entries_are_named(entry: dict, needle: str) -> None:
    with pytest.raises(auth.TokenFileError, match=needle):
        auth.parse_entries({"tokens": [entry]})


def test_project_patterns() -> None:
    p = auth.Principal("t", "read", ("vision-*", "nlp"))
    assert p.can_access("vision-") and p.can_access("vision-vqa")
    assert p.can_access("nlp") and not p.can_access("nlp2") and not p.can_access("xvision-a")
    assert not auth.Principal("t", "read", ("a.b",)).can_access("axb")  # only * is special


def test_bearer_parsing() -> None:
    assert auth.bearer_token([("authorization", "bearer  tok ")]) == "tok"
    assert auth.bearer_token([("authorization", "Bearer a"), ("authorization", "Bearer b")]) is None
    assert auth.bearer_token([("authorization", "Bearer")]) is None
    assert auth.bearer_token(None) is None
