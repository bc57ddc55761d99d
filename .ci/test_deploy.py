#!/usr/bin/env python3
"""Checks deploy/kubernetes.yaml says what README's Security section promises (issue 29,
item 3): the console believes X-Forwarded-For from the ingress's addresses, and a
NetworkPolicy lets nothing else reach its port, so those addresses cannot be forged.
Run with a Python that has PyYAML (the Schemathesis venv `make test` installs)."""

import ipaddress
import pathlib
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()) if d]


def one(kind):
    found = [d for d in DOCS if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


class Manifest(unittest.TestCase):
    def setUp(self):
        self.deployment = one("Deployment")
        self.pod = self.deployment["spec"]["template"]
        self.env = {e["name"]: e.get("value") for e in self.pod["spec"]["containers"][0]["env"]}

    def test_the_ingress_is_a_trusted_proxy_and_the_public_url_is_https(self):
        proxies = self.env.get("GATEWARDEN_TRUSTED_PROXIES")
        self.assertTrue(proxies, "without it every user shares the ingress's address")
        for cidr in proxies.split(","):
            ipaddress.ip_network(cidr.strip())
        self.assertTrue(self.env["GATEWARDEN_PUBLIC_URL"].startswith("https://"))

    def test_only_the_ingress_controller_reaches_the_port(self):
        policy = one("NetworkPolicy")
        self.assertEqual(policy["metadata"]["namespace"], self.deployment["metadata"]["namespace"])
        labels = self.pod["metadata"]["labels"]
        selector = policy["spec"]["podSelector"]["matchLabels"]
        self.assertTrue(selector.items() <= labels.items(), "it selects the console's pods")
        self.assertIn("Ingress", policy["spec"]["policyTypes"])
        port = self.pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        for rule in policy["spec"]["ingress"]:
            self.assertTrue(rule.get("from"), "no rule lets everyone in")
            for peer in rule["from"]:
                self.assertNotIn("ipBlock", peer, "addresses, not the ingress's pods")
                self.assertTrue(peer.get("podSelector", {}).get("matchLabels"), "named pods only")
            self.assertEqual([p["port"] for p in rule["ports"]], [port])


if __name__ == "__main__":
    unittest.main()
