//! The dependency map's logic, shared by server and browser: blast radius, the actions that apply to a node, and a layered layout drawn as SVG text.
//!
//! The layout is written here rather than taken from a library: the graph always has three
//! layers (gateways → routes → services), so a layered layout needs no crossing-minimising
//! search beyond ordering each layer by the mean position of what points at it, and long
//! layers wrap into columns so 2,000 services stay on a screen a person can zoom into.
//! The drawing is one SVG string set at once: the browser parses it far faster than it
//! would build 20,000 elements one call at a time from WASM.

use crate::dto::{DepEdge, DepNode, DependencyGraph, Role};
use crate::health::{NodeHealth, node_health};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write;

/// The graph with lookups.
pub struct Graph<'a> {
    /// The nodes.
    pub g: &'a DependencyGraph,
    index: HashMap<&'a str, usize>,
    out: Vec<Vec<usize>>,
    inc: Vec<Vec<usize>>,
}

impl<'a> Graph<'a> {
    /// Indexes `g`; edges naming unknown nodes are ignored.
    pub fn new(g: &'a DependencyGraph) -> Self {
        let index: HashMap<&str, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
        let mut out = vec![Vec::new(); g.nodes.len()];
        let mut inc = vec![Vec::new(); g.nodes.len()];
        for e in &g.edges {
            if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
                out[a].push(b);
                inc[b].push(a);
            }
        }
        Graph { g, index, out, inc }
    }

    /// The node with `id`.
    pub fn node(&self, id: &str) -> Option<&'a DepNode> {
        self.index.get(id).map(|&i| &self.g.nodes[i])
    }

    fn reach(&self, id: &str, next: &[Vec<usize>]) -> Vec<&'a DepNode> {
        let Some(&start) = self.index.get(id) else { return Vec::new() };
        let mut seen = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(i) = queue.pop_front() {
            for &j in &next[i] {
                if seen.insert(j) {
                    queue.push_back(j);
                }
            }
        }
        seen.remove(&start);
        let mut found: Vec<usize> = seen.into_iter().collect();
        found.sort_unstable();
        found.into_iter().map(|i| &self.g.nodes[i]).collect()
    }

    /// The blast radius of `id`: every node that depends on it, directly or not.
    pub fn dependents(&self, id: &str) -> Vec<&'a DepNode> {
        self.reach(id, &self.inc)
    }

    /// Everything `id` depends on, directly or not.
    pub fn dependencies(&self, id: &str) -> Vec<&'a DepNode> {
        self.reach(id, &self.out)
    }
}

/// A mitigation that applies to a node of the map.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeAction {
    /// Gateway it runs on.
    pub gateway: String,
    /// Action name (as in `/api/v1/gateways/{id}/actions/{action}`).
    pub action: &'static str,
    /// Least role that may run it.
    pub role: Role,
    /// What it does, in words.
    pub label: String,
}

/// The actions that act on `id`: for a service, a circuit breaker or a bypass on every
/// gateway that reaches it; for a route, a rate limit on it; for a gateway, restart,
/// scale and rollback.
pub fn actions_for(graph: &Graph, id: &str) -> Vec<NodeAction> {
    let Some(node) = graph.node(id) else { return Vec::new() };
    let mut out = Vec::new();
    match node.kind.as_str() {
        "service" => {
            let mut gateways: Vec<&str> = graph
                .dependents(id)
                .iter()
                .filter(|n| n.kind == "gateway")
                .filter_map(|n| n.gateway.as_deref())
                .collect();
            gateways.dedup();
            for g in gateways {
                out.push(NodeAction {
                    gateway: g.into(),
                    action: "circuit-breaker",
                    role: Role::Responder,
                    label: format!("Circuit breaker on {g} (fail fast to {})", node.name),
                });
                out.push(NodeAction {
                    gateway: g.into(),
                    action: "bypass",
                    role: Role::Admin,
                    label: format!("Send {}'s traffic around {g}", node.name),
                });
            }
        }
        "route" => {
            if let Some(g) = &node.gateway {
                out.push(NodeAction {
                    gateway: g.clone(),
                    action: "rate-limit",
                    role: Role::Responder,
                    label: format!("Emergency rate limit on {} at {g}", node.name),
                });
            }
        }
        _ => {
            if let Some(g) = &node.gateway {
                for (action, role, what) in [
                    ("restart", Role::Responder, "Rollout restart"),
                    ("scale", Role::Responder, "Scale"),
                    ("rollback", Role::Admin, "Roll back"),
                ] {
                    out.push(NodeAction { gateway: g.clone(), action, role, label: format!("{what} {g}") });
                }
            }
        }
    }
    out
}

/// Node box size and spacing, px.
pub const NODE_W: f64 = 170.0;
/// Node box height.
pub const NODE_H: f64 = 18.0;
const ROW: f64 = 24.0;
const COLUMN_GAP: f64 = 30.0;
const LAYER_GAP: f64 = 90.0;

/// Where each node goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Top-left corner of each node, in the graph's node order.
    pub pos: Vec<(f64, f64)>,
    /// Size of the drawing.
    pub width: f64,
    /// Size of the drawing.
    pub height: f64,
}

fn layer(kind: &str) -> usize {
    match kind {
        "gateway" => 0,
        "route" => 1,
        _ => 2,
    }
}

/// Lays `graph` out in three layers, left to right; a layer of more than a screenful
/// wraps into columns (about twice as many rows as columns).
pub fn layout(graph: &Graph) -> Layout {
    let nodes = &graph.g.nodes;
    let mut layers: [Vec<usize>; 3] = Default::default();
    for (i, n) in nodes.iter().enumerate() {
        layers[layer(&n.kind)].push(i);
    }
    // Gateways by name; routes by their gateway's place, then path; services by the mean
    // place of the routes that reach them (barycenter), so edges mostly run straight.
    let mut rank = vec![0.0f64; nodes.len()];
    layers[0].sort_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
    for (k, &i) in layers[0].iter().enumerate() {
        rank[i] = k as f64;
    }
    for members in layers.iter_mut().skip(1) {
        let mut keyed: Vec<(f64, usize)> = members
            .iter()
            .map(|&i| {
                let from: Vec<f64> = graph.inc[i].iter().map(|&j| rank[j]).collect();
                let key = if from.is_empty() { f64::MAX } else { from.iter().sum::<f64>() / from.len() as f64 };
                (key, i)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| nodes[a.1].name.cmp(&nodes[b.1].name)));
        *members = keyed.iter().map(|&(_, i)| i).collect();
        for (k, &i) in members.iter().enumerate() {
            rank[i] = k as f64;
        }
    }
    let rows_of = |n: usize| -> usize { n.min(((n as f64).sqrt() * 2.2).ceil().max(30.0) as usize).max(1) };
    let mut pos = vec![(0.0, 0.0); nodes.len()];
    let heights: Vec<f64> = layers.iter().map(|l| rows_of(l.len()) as f64 * ROW).collect();
    let height = heights.iter().copied().fold(0.0, f64::max);
    let mut x = 0.0;
    for (l, members) in layers.iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        let rows = rows_of(members.len());
        let top = (height - heights[l]) / 2.0;
        let columns = members.len().div_ceil(rows);
        for (k, &i) in members.iter().enumerate() {
            pos[i] = (x + (k / rows) as f64 * (NODE_W + COLUMN_GAP), top + (k % rows) as f64 * ROW);
        }
        x += columns as f64 * (NODE_W + COLUMN_GAP) - COLUMN_GAP + LAYER_GAP;
    }
    Layout { pos, width: (x - LAYER_GAP).max(0.0), height }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// How a node is drawn besides its health.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    /// Nothing special.
    Plain,
    /// The selected node.
    Selected,
    /// In the selected node's blast radius.
    Blast,
    /// Left out by the search or the selection.
    Dim,
}

/// The graph as SVG elements: edges first, as one path per colour (thousands of separate
/// paths cost the browser more than the drawing itself), then per node a box carrying
/// `data-id` and its label.
pub fn svg(graph: &Graph, layout: &Layout, mark: impl Fn(&DepNode) -> Mark) -> String {
    let nodes = &graph.g.nodes;
    let mut out = String::with_capacity(nodes.len() * 200 + graph.g.edges.len() * 60);
    let marks: Vec<Mark> = nodes.iter().map(&mark).collect();
    // (health, dimmed) → path data.
    let mut paths: Vec<((NodeHealth, bool), String)> = Vec::new();
    for e in &graph.g.edges {
        let (Some(&a), Some(&b)) = (graph.index.get(e.from.as_str()), graph.index.get(e.to.as_str())) else {
            continue;
        };
        let ((ax, ay), (bx, by)) = (layout.pos[a], layout.pos[b]);
        let (x1, y1, x2, y2) = (ax + NODE_W, ay + NODE_H / 2.0, bx, by + NODE_H / 2.0);
        let mid = (x1 + x2) / 2.0;
        let key = (node_health(e.error_rate, None), marks[a] == Mark::Dim || marks[b] == Mark::Dim);
        let d = match paths.iter_mut().find(|(k, _)| *k == key) {
            Some((_, d)) => d,
            None => {
                paths.push((key, String::new()));
                &mut paths.last_mut().expect("just pushed").1
            }
        };
        let _ = write!(d, "M{x1:.0} {y1:.0}C{mid:.0} {y1:.0} {mid:.0} {y2:.0} {x2:.0} {y2:.0}");
    }
    // Healthy first, so failing edges are drawn on top.
    paths.sort_by_key(|((h, dim), _)| (!*dim, *h != NodeHealth::Ok, *h == NodeHealth::Down));
    for ((h, dim), d) in &paths {
        let _ = write!(out, "<path class=\"dep-edge {h}{}\" d=\"{d}\"></path>", if *dim { " dim" } else { "" });
    }
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = layout.pos[i];
        let mark = match marks[i] {
            Mark::Plain => "",
            Mark::Selected => " selected",
            Mark::Blast => " blast",
            Mark::Dim => " dim",
        };
        let _ = write!(out, "<rect class=\"dep-node {} {}{mark}\" data-id=\"", n.kind, n.health);
        escape(&n.id, &mut out);
        let _ = write!(
            out,
            "\" x=\"{x:.0}\" y=\"{y:.0}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"3\"></rect><text class=\"dep-label{}\" x=\"{:.0}\" y=\"{:.0}\">",
            if marks[i] == Mark::Dim { " dim" } else { "" },
            x + 6.0,
            y + 13.0
        );
        let mut name: String = n.name.chars().take(24).collect();
        if n.name.chars().count() > 24 {
            name.push('…');
        }
        escape(&name, &mut out);
        out.push_str("</text>");
    }
    out
}

/// Whether `n` matches a search (name or id, case-insensitive; `health:down` style filters).
pub fn matches(n: &DepNode, search: &str) -> bool {
    search.split_whitespace().all(|w| {
        let w = w.to_ascii_lowercase();
        match w.split_once(':') {
            Some(("health", h)) => n.health.as_str() == h,
            Some(("kind", k)) => n.kind == k,
            _ => n.name.to_ascii_lowercase().contains(&w) || n.id.to_ascii_lowercase().contains(&w),
        }
    })
}

/// A graph of `services` services behind `gateways` gateways (each service reached by one
/// or two routes), some failing: for tests and the browser benchmark.
pub fn synthetic(gateways: usize, services: usize) -> DependencyGraph {
    let mut g = DependencyGraph::default();
    let node = |id: String, kind: &str, name: String, gateway: Option<String>, error_rate: f64| DepNode {
        id,
        kind: kind.into(),
        name,
        gateway,
        health: node_health(Some(error_rate), None),
        rps: Some(10.0),
        error_rate: Some(error_rate),
        latency_ms: Some(20.0),
        ready_endpoints: None,
        endpoints: None,
    };
    for k in 0..gateways {
        g.nodes.push(node(format!("gateway:gw-{k}"), "gateway", format!("gw-{k}"), Some(format!("gw-{k}")), 0.0));
    }
    for s in 0..services {
        let failing = if s % 97 == 0 { 0.5 } else { 0.0 };
        g.nodes.push(node(format!("service:svc-{s}"), "service", format!("svc-{s}"), None, failing));
        for r in 0..(1 + s % 2) {
            let gw = (s + r * 7) % gateways.max(1);
            let route = format!("route:gw-{gw}:/svc-{s}/{r}");
            g.nodes.push(node(route.clone(), "route", format!("/svc-{s}/{r}"), Some(format!("gw-{gw}")), failing));
            g.edges.push(DepEdge {
                from: format!("gateway:gw-{gw}"),
                to: route.clone(),
                rps: Some(10.0),
                error_rate: Some(failing),
            });
            g.edges.push(DepEdge {
                from: route,
                to: format!("service:svc-{s}"),
                rps: Some(10.0),
                error_rate: Some(failing),
            });
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blast_radius_of_a_service_is_every_route_and_gateway_that_reaches_it() {
        let g = synthetic(3, 10);
        let graph = Graph::new(&g);
        let ids = |nodes: Vec<&DepNode>| nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        // svc-1 has two routes: on gw-1 and on gw-(1+7)%3 = gw-2.
        let mut radius = ids(graph.dependents("service:svc-1"));
        radius.sort();
        assert_eq!(radius, ["gateway:gw-1", "gateway:gw-2", "route:gw-1:/svc-1/0", "route:gw-2:/svc-1/1"]);
        assert!(graph.dependents("gateway:gw-0").is_empty(), "nothing here depends on a gateway");
        assert_eq!(ids(graph.dependencies("route:gw-1:/svc-1/0")), ["service:svc-1"]);
        let actions = actions_for(&graph, "service:svc-1");
        assert_eq!(actions.len(), 4, "breaker and bypass on both gateways");
        assert!(actions.iter().any(|a| a.gateway == "gw-2" && a.action == "bypass" && a.role == Role::Admin));
    }

    #[test]
    fn the_layout_keeps_layers_apart_wraps_long_ones_and_overlaps_nothing() {
        let g = synthetic(20, 2000);
        let graph = Graph::new(&g);
        let l = layout(&graph);
        let x_of = |kind: &str| -> (f64, f64) {
            let xs: Vec<f64> = g.nodes.iter().zip(&l.pos).filter(|(n, _)| n.kind == kind).map(|(_, p)| p.0).collect();
            (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max))
        };
        let (gw, routes, services) = (x_of("gateway"), x_of("route"), x_of("service"));
        assert!(gw.1 < routes.0 && routes.1 < services.0, "{gw:?} {routes:?} {services:?}");
        assert!(l.width < 4.0 * l.height && l.height < 4.0 * l.width, "roughly square: {} x {}", l.width, l.height);
        let mut seen = HashSet::new();
        for p in &l.pos {
            assert!(seen.insert(((p.0 * 10.0) as i64, (p.1 * 10.0) as i64)), "two nodes at {p:?}");
        }
        let drawn = svg(&graph, &l, |_| Mark::Plain);
        assert_eq!(drawn.matches("<rect class=\"dep-node").count(), g.nodes.len());
        assert_eq!(drawn.matches("<text class=\"dep-label").count(), g.nodes.len());
        // One path per colour, one curve per edge.
        assert_eq!(drawn.matches("<path class=\"dep-edge").count(), 2, "ok and down");
        assert_eq!(drawn.matches('C').count(), g.edges.len());
    }

    #[test]
    fn names_are_escaped_and_searches_filter_by_words_and_health() {
        let mut g = synthetic(1, 1);
        g.nodes[1].name = "<script>\"x\"".into();
        let graph = Graph::new(&g);
        let drawn = svg(&graph, &layout(&graph), |_| Mark::Plain);
        assert!(!drawn.contains("<script>") && drawn.contains("&lt;script&gt;&quot;x&quot;"));
        let g = synthetic(2, 100);
        let down: Vec<&str> =
            g.nodes.iter().filter(|n| matches(n, "health:down kind:service")).map(|n| n.name.as_str()).collect();
        assert_eq!(down, ["svc-0", "svc-97"]);
        assert!(matches(&g.nodes[0], "GW-0"));
    }
}
