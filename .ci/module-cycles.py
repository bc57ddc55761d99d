#!/usr/bin/env python3
"""Fails when a Rust module imports one that imports it back.

For every source file under the given roots, collects the modules it names through
`crate::a::b` and `super::x` paths (test modules excluded), resolves each to the longest
module that exists, and reduces every edge to the two sibling modules it connects (the
children of their common parent). Any cycle among siblings, at any folder level, is an
error. Usage: .ci/module-cycles.py server/src app/src
"""
import os
import re
import sys


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def edges_of(root):
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")]
    mods = {module_of(root, f): f for f in files}
    edges = set()
    for m, f in mods.items():
        if "tests" in m:
            continue
        text = open(f, encoding="utf-8").read()
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        refs = {tuple(x.split("::")) for x in re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", text)}
        parent = list(m[:-1])
        refs |= {tuple(parent + x.split("::")) for x in re.findall(r"\bsuper::([a-z_]+(?:::[a-z_]+)*)", text)}
        for r in refs:
            target = next((r[:k] for k in range(len(r), 0, -1) if r[:k] in mods), None)
            if target and target != m:
                edges.add((m, target))
    return edges


def sibling_graph(edges):
    graph = {}
    for a, b in edges:
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        if k == len(a) or k == len(b):
            continue  # a module and its own descendant
        graph.setdefault(a[: k + 1], set()).add(b[: k + 1])
    return graph


def cycles(graph):
    found = set()

    def walk(node, path):
        for nxt in graph.get(node, ()):
            if nxt in path:
                found.add(tuple(sorted("::".join(p) for p in path[path.index(nxt):])))
            elif len(path) < 32:
                walk(nxt, path + [nxt])

    for start in list(graph):
        walk(start, [start])
    return sorted(found)


def main():
    bad = 0
    for root in sys.argv[1:]:
        for cycle in cycles(sibling_graph(edges_of(root))):
            print(f"{root}: import cycle between {', '.join(cycle)}", file=sys.stderr)
            bad += 1
    if bad:
        sys.exit(1)
    print("module graph ok: no import cycles in " + ", ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
