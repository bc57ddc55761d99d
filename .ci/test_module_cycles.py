#!/usr/bin/env python3
"""The cycle check finds circles written in every import form, and only those."""
import importlib.util
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("module_cycles", os.path.join(HERE, "module-cycles.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def circles(name):
    return check.cycles(check.sibling_graph(check.edges_of(os.path.join(HERE, "fixtures", "module-cycles", name))))


class ModuleCycles(unittest.TestCase):
    def test_a_circle_through_grouped_imports_is_found(self):
        self.assertEqual(circles("grouped"), [("net::api", "net::sse")])

    def test_a_circle_through_super_super_and_a_nested_group_is_found(self):
        self.assertEqual(circles("nested"), [("outer", "store")])

    def test_grouped_imports_comments_strings_and_tests_make_no_false_circle(self):
        self.assertEqual(circles("clean"), [])

    def test_use_trees_expand_to_every_path_they_name(self):
        paths = check.use_paths(check.strip_alias("super::{a, b::{self, c as d}, e::*}"))
        self.assertEqual(sorted(map(tuple, paths)), [("super", "a"), ("super", "b"), ("super", "b", "c"), ("super", "e")])


if __name__ == "__main__":
    unittest.main()
