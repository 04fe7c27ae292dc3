#!/usr/bin/env python3
"""Fails when an arrow that docs/architecture.md forbids appears in src/.

Reads every `use` declaration (grouped ones flattened, `use crate::{a, b::c}` included) and every
`crate::x` path written inline, and checks them against the table below. No dependencies: run it
as `scripts/check-architecture.py`; scripts/test.sh and CI run it before the tests.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
SELF_TEST = """
use crate::domain::Pin;
use crate::{clock, http::error::ApiError};
pub(crate) use sqlx::Row;
fn f() { crate::app::build(); } // crate::web in a comment does not count
"""

# layer folder -> (crate modules it must not name, external crates it must not use, why)
FORBIDDEN = {
    "domain": (
        {"app", "config", "http", "identity", "service", "store", "web", "server", "mail",
         "metrics", "dev", "telemetry", "clock"},
        {"axum", "sqlx", "hyper", "reqwest", "tower", "tower_http", "tokio", "lettre"},
        "domain holds pure rules: it imports nothing of ours outside domain and no framework",
    ),
    "service": (
        {"app", "config", "http", "identity", "web", "server", "dev", "telemetry"},
        {"axum", "sqlx", "hyper", "tower", "tower_http"},
        "service is the use cases: it never knows HTTP, SQL or how settings are loaded",
    ),
    "store": (
        {"app", "config", "http", "identity", "service", "web", "server", "dev"},
        {"axum", "hyper", "tower", "tower_http", "reqwest"},
        "store is SQL only: it answers to service, never calls up into it",
    ),
    "http": (
        {"store", "app", "config", "dev"},
        {"sqlx"},
        "http talks to services and identity, never to the store or the loader",
    ),
    "identity": (
        {"app", "config", "http", "service", "store", "web", "server", "dev"},
        {"axum", "sqlx"},
        "identity is a client of the identity provider and knows nothing of our routes",
    ),
    "web": (
        {"store", "app", "config", "dev"},
        {"sqlx"},
        "pages call services like http does, never the store",
    ),
}

USE_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M | re.S)
INLINE_RE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def flatten(tree: str, prefix: str = "") -> list[str]:
    """`crate::{a, b::{c, d}}` -> ['crate::a', 'crate::b::c', 'crate::b::d']."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [prefix + tree]
    head, _, rest = tree.partition("{")
    body = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        out.extend(flatten(p, prefix + head))
    return out


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def arrows(text: str) -> set[str]:
    """What a file names: `crate::module` for our modules, the crate name for external ones."""
    text = strip_comments(text)
    names = set()
    for m in USE_RE.finditer(text):
        for item in flatten(m.group(1)):
            first, _, rest = item.partition("::")
            names.add("crate::" + rest.split("::")[0] if first == "crate" else first)
    for m in INLINE_RE.finditer(text):
        names.add("crate::" + m.group(1))
    return names


def violations(layer: str, names: set[str]) -> list[str]:
    mods, crates, _ = FORBIDDEN[layer]
    return sorted(
        n for n in names
        if (n.startswith("crate::") and n[len("crate::"):] in mods) or n in crates
    )


def main() -> int:
    # The check must be able to fail: it has to see a grouped import, an inline path and an
    # external crate, and ignore a comment.
    found = violations("service", arrows(SELF_TEST))
    if found != ["crate::app", "crate::http", "sqlx"]:
        print(f"architecture check is broken: its self-test found {found}")
        return 2
    problems = []
    for layer, (_, _, why) in FORBIDDEN.items():
        folder = ROOT / layer
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.rs")):
            for name in violations(layer, arrows(path.read_text())):
                problems.append(f"{path.relative_to(ROOT.parent)}: {layer} -> {name} ({why})")
    for p in problems:
        print(p)
    if problems:
        print(f"architecture check: {len(problems)} forbidden arrow(s); see docs/architecture.md")
        return 1
    print("architecture check: no forbidden arrow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
