#!/usr/bin/env python3
"""Per-message instruction counts from two callgrind runs of the same server that differ
only in the number of messages sent: (cost(N2) - cost(N1)) / (N2 - N1), by function,
inclusive or exclusive. Start-up and one-time work cancel out.

usage: cg_diff.py OUT1 N1 OUT2 N2 [--exclusive] [--top 40] [--check]

--check also prints the per-message cost of work that must happen once, at start:
compiling regexes and reading the configuration (expected: 0).
"""
import re
import subprocess
import sys


def costs(path, inclusive):
    text = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
         "--threshold=100", "--auto=no", path],
        check=True, capture_output=True, text=True).stdout
    total, out = 0, {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = n
            continue
        # Drop the source file and the binary; keep the function.
        name = re.sub(r"\s*\[[^\]]*\]$", "", name)
        name = name.split(":", 1)[1] if ":" in name and not name.startswith("<") else name
        out[name] = out.get(name, 0) + n
    return total, out


def main():
    args = sys.argv[1:]
    inclusive = "--exclusive" not in args
    top = 40
    if "--top" in args:
        top = int(args[args.index("--top") + 1])
    p1, n1, p2, n2 = args[0], int(args[1]), args[2], int(args[3])
    t1, c1 = costs(p1, inclusive)
    t2, c2 = costs(p2, inclusive)
    per = (t2 - t1) / (n2 - n1)
    print(f"instructions per message: {per:,.0f}  (totals {t1:,} for {n1}, {t2:,} for {n2})")
    rows = []
    for name, v in c2.items():
        d = (v - c1.get(name, 0)) / (n2 - n1)
        if d > per * 0.005:
            rows.append((d, name))
    rows.sort(reverse=True)
    for d, name in rows[:top]:
        print(f"{d:12,.0f} {100 * d / per:5.1f}%  {name[:150]}")
    if "--check" in args:
        once = {
            "regex compilation": re.compile(
                r"regex::(regex|regexset)::\w+::\w+::new|RegexBuilder::build|RegexSetBuilder::build"
                r"|regex_automata::meta::regex::Builder::build|regex_syntax::parser"),
            "configuration": re.compile(r"figment::|toml::|toml_edit::|config::Settings::"),
        }
        ti1, ci1 = costs(p1, True)
        ti2, ci2 = costs(p2, True)
        for what, pattern in once.items():
            names = [n for n in set(ci1) | set(ci2) if pattern.search(n)]
            d = max([ci2.get(n, 0) - ci1.get(n, 0) for n in names] or [0])
            at_start = max([ci1.get(n, 0) for n in names] or [0])
            print(f"{what}: {at_start:,} instructions with {n1} messages, "
                  f"{at_start + d:,} with {n2} ({d / (n2 - n1):,.1f} per message; "
                  f"{len(names)} functions)")


if __name__ == "__main__":
    main()
