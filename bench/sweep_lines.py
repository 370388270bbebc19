"""Lines of the sweep machinery (drivers, reports, CLI commands, figures, dashboard tables) at two commits.

    python bench/sweep_lines.py --before 6f7adc1^ --after HEAD

Prints a markdown table per sweep and for the shared pieces: code lines (a line holding a token that is not a
comment or a docstring) and all lines. The files are picked by path, so a sweep is counted whether it lived in six
folders (before) or in one package (after); deprecated alias modules count where their paths match.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import subprocess
import tokenize

GROUPS = {
    "frontier": r"experiments/frontier|formats/frontier_report|cli/frontier\.py|plots/frontier\.py|"
    r"dashboard/frontier\.py",
    "wayward": r"experiments/wayward|formats/wayward_report|cli/wayward\.py",
    "audit": r"experiments/audit|formats/audit_report|cli/audit\.py|plots/audit\.py|dashboard/audit\.py",
    "replicate": r"experiments/replicate|formats/replicate_report|cli/replicate\.py|plots/replicate\.py|"
    r"dashboard/findings\.py",
    "shared (grid, sweep driver, sweep command)": r"experiments/(grid|sweep)\.py|cli/sweeps\.py",
    "explain command": r"cli/explain\.py",
}


def code_lines(text: str) -> int:
    """Lines holding a token other than a comment, a docstring or layout."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return 0
    docs: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else []:  # a lambda's body is one expression
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                docs.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def count(rev: str) -> dict[str, tuple[int, int]]:
    """Group -> (code lines, all lines) at commit ``rev``."""
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "probe"], capture_output=True, text=True, check=True
    ).stdout.split()
    out = {group: (0, 0) for group in GROUPS}
    for name in names:
        group = next((g for g, pattern in GROUPS.items() if name.endswith(".py") and re.search(pattern, name)), None)
        if group is None:
            continue
        text = subprocess.run(["git", "show", f"{rev}:{name}"], capture_output=True, text=True, check=True).stdout
        code, raw = out[group]
        out[group] = (code + code_lines(text), raw + text.count("\n"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="6f7adc1^", help="the commit before (default: before one home per sweep)")
    parser.add_argument("--after", default="HEAD")
    args = parser.parse_args()
    before, after = count(args.before), count(args.after)
    b, a = args.before, args.after
    print(f"| part | code lines {b} | code lines {a} | all lines {b} | all lines {a} |")
    print("|---|---:|---:|---:|---:|")
    for group in GROUPS:
        (c0, r0), (c1, r1) = before[group], after[group]
        print(f"| {group} | {c0} | {c1} ({c1 - c0:+d}) | {r0} | {r1} ({r1 - r0:+d}) |")
    c0, r0 = (sum(v[i] for v in before.values()) for i in (0, 1))
    c1, r1 = (sum(v[i] for v in after.values()) for i in (0, 1))
    print(f"| **total** | {c0} | {c1} ({c1 - c0:+d}) | {r0} | {r1} ({r1 - r0:+d}) |")


if __name__ == "__main__":
    main()
