#!/usr/bin/env python3
"""Fails when a Rust module imports one that imports it back.

For every source file under the given roots, collects the modules it names (test modules
excluded): every `use` tree in full (grouped `{a, b::{c}}`, `self`, `*`, `as`), and every
path written inline, whether it starts at `crate::`, `self::`, one or more `super::`, or a
child module's name. Each is resolved to the longest module that exists, and every edge is
reduced to the two sibling modules it connects (the children of their common parent). Any
cycle among siblings, at any folder level, is an error.

Usage: .ci/module-cycles.py server/src app/src
"""
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
INLINE = re.compile(rf"(?<![A-Za-z0-9_:])((?:crate|self|super)(?:::(?:{IDENT}))+)")
USE = re.compile(r"\buse\s+([^;]*);", re.S)


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text):
    """The code without comments, string and char literals (which may hold `::`)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1', '""', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text, flags=re.S)
    text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)
    return re.sub(r"//[^\n]*", "", text)


def use_paths(tree):
    """Every full path a `use` tree names: `a::{b, c::{d, self}}` -> a::b, a::c::d, a::c.
    Aliases (`as x`) are already gone."""
    tree = re.sub(r"\s+", "", tree)
    paths = []

    def walk(prefix, text):
        # text is one tree: segments, then optionally a {group}
        brace = text.find("{")
        if brace < 0:
            segs = [s for s in text.split("::") if s and s != "*"]
            if segs and segs[-1] == "self":
                segs = segs[:-1]
            paths.append(prefix + segs)
            return
        head = [s for s in text[:brace].split("::") if s]
        inner = text[brace + 1 : text.rfind("}")]
        depth, start = 0, 0
        for i, ch in enumerate(inner + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                part = inner[start:i]
                start = i + 1
                if part:
                    walk(prefix + head, part)

    walk([], tree)
    return paths


def strip_alias(tree):
    """`a::b as c` -> `a::b` inside a whitespace-collapsed tree."""
    return re.sub(r"\s+as\s+" + IDENT, "", tree)


def absolute(current, segs, mods):
    """A path as written in module `current`, as a module path from the crate root."""
    if not segs:
        return None
    if segs[0] == "crate":
        return tuple(segs[1:])
    if segs[0] == "self":
        return tuple(current) + tuple(segs[1:])
    if segs[0] == "super":
        base = list(current)
        while segs and segs[0] == "super":
            if not base:
                return None
            base.pop()
            segs = segs[1:]
        return tuple(base + segs)
    # A bare first segment names a child module (`mod x;` here) or an external crate.
    if tuple(current) + (segs[0],) in mods:
        return tuple(current) + tuple(segs)
    return None


def refs_of(module, text, mods):
    text = strip(text)
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    paths = []
    for tree in USE.findall(text):
        paths.extend(use_paths(strip_alias(tree)))
    body = USE.sub(" ", text)
    paths.extend(p.split("::") for p in INLINE.findall(body))
    refs = set()
    for segs in paths:
        path = absolute(module, segs, mods)
        if path:
            refs.add(path)
    return refs


def edges_of(root):
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")]
    mods = {module_of(root, f): f for f in files}
    edges = set()
    for m, f in mods.items():
        if "tests" in m:
            continue
        with open(f, encoding="utf-8") as handle:
            text = handle.read()
        for r in refs_of(m, text, mods):
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
