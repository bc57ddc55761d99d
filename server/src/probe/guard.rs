//! The SSRF guard, alone so it can be reviewed alone. The console sits inside the
//! network, so a probe that went wherever it was told would be a server-side request
//! forgery tool. Every request, and every redirect it would follow, goes through
//! [`Guard::check`] before a packet leaves:
//! - only `http` and `https`, no user-info, no other host than a gateway's own address
//!   (for `{gateway, path}`) or one on `--probe-allow` (for `{url}`);
//! - names are resolved here, every address they resolve to must be public (no loopback,
//!   private, link-local / cloud metadata, shared, multicast or reserved ranges, in IPv4,
//!   IPv6 and IPv4-mapped form), and the connection is pinned to the address that was
//!   checked, so a second lookup cannot rebind the name;
//! - addresses written out (`http://10.0.0.5:8080/`) pass only when the allow-list names
//!   that exact address and port, or when they are a gateway's own; metadata addresses
//!   never pass;
//! - redirects are followed by hand, at most five, each checked the same way.

use crate::error::{AppError, Result};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Why an address may not be probed, if it may not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.to_ipv4_mapped().is_some() {
                // ::ffff:0:0/96: an IPv4 address in IPv6 clothing; name the IPv4 one instead.
                return Some("an IPv4-mapped address (::ffff:0:0/96)");
            }
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if s[..6] == [0; 6] {
                Some("an IPv4-compatible address (::/96, deprecated)")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("a site-local address (fec0::/10)")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                Some("a local-use NAT64 address (64:ff9b:1::/48)")
            } else if s[0] == 0x2002 {
                Some("a 6to4 address (2002::/16), which can carry any IPv4 address")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("a multicast address")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64: the IPv4 address inside decides.
                forbidden_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("a documentation address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if ip.is_private() {
        Some("a private address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("a shared (carrier-grade NAT) address")
    } else if o[0] == 0 {
        Some("a 'this network' address")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("a multicast or reserved address")
    } else if (o[0], o[1], o[2]) == (192, 0, 0) || (o[0] == 198 && (18..20).contains(&o[1])) {
        Some("a reserved address")
    } else if ip.is_documentation() {
        Some("a documentation address")
    } else {
        None
    }
}

/// Link-local addresses (where cloud metadata services answer): never probed, whatever
/// the allow-list says.
fn metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local()) || v6.segments()[0] & 0xffc0 == 0xfe80
        }
    }
}

/// One `--probe-allow` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    /// A host name (`api.example.com`) or every name under a domain (`*.example.com`),
    /// optionally on one port; they must resolve to public addresses.
    Name {
        /// Lower case; a leading `*.` matches any subdomain.
        pattern: String,
        /// Only this port.
        port: Option<u16>,
    },
    /// Exactly this address and port (may be private: the operator said so).
    Addr(SocketAddr),
}

impl Allowed {
    /// Parses `host`, `*.domain`, `host:port` or `ip:port` (`[v6]:port`).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            if metadata(addr.ip()) {
                return Err(format!(
                    "'{s}' is a link-local address (cloud metadata lives there); it cannot be allowed"
                ));
            }
            return Ok(Allowed::Addr(addr));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("'{s}': '{p}' is not a port"))?)),
            None => (s, None),
        };
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let valid = !bare.is_empty()
            && bare.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !valid || bare.parse::<IpAddr>().is_ok() {
            return Err(format!("'{s}' is neither a host name, '*.domain' nor an address with a port"));
        }
        Ok(Allowed::Name { pattern: host.to_ascii_lowercase(), port })
    }

    fn allows_name(&self, host: &str, port: u16) -> bool {
        match self {
            Allowed::Name { pattern, port: p } => {
                let host = host.to_ascii_lowercase();
                let name_ok = match pattern.strip_prefix("*.") {
                    Some(domain) => host.ends_with(&format!(".{domain}")),
                    None => host == *pattern,
                };
                name_ok && p.is_none_or(|p| p == port)
            }
            Allowed::Addr(_) => false,
        }
    }
}

/// Decides where probes may go.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow: Vec<Allowed>,
    /// Whether a gateway's own address may be loopback or link-local: true only for the
    /// simulator, whose listeners the console started itself. A Deployment's annotation
    /// is written by whoever can edit it, so there such an address must be on the list.
    own_loopback: bool,
}

/// Loopback or link-local: the console's own host.
fn on_this_host(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.segments()[0] & 0xffc0 == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_link_local())
        }
    }
}

/// A gateway's own address: the one non-public place a `{gateway, path}` probe may go.
#[derive(Clone, Debug, PartialEq)]
pub enum Own {
    /// An address (the simulator's listeners).
    Addr(SocketAddr),
    /// A name and port (a Deployment's `gatewarden.io/probe-url`, usually a Service's
    /// cluster name): whatever it resolves to, except link-local (metadata) addresses.
    Name(String, u16),
}

/// A checked request target: connect only to `addr`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The URL.
    pub url: Url,
    /// The checked address to connect to.
    pub addr: SocketAddr,
    /// Time spent resolving the name.
    pub dns: Duration,
}

fn refuse(message: String) -> AppError {
    AppError::Forbidden(message)
}

impl Guard {
    /// A guard allowing `allow` (besides gateways' own addresses).
    pub fn new(allow: Vec<Allowed>) -> Self {
        Guard { allow, own_loopback: false }
    }

    /// The same guard letting gateways' own addresses be on this host (the simulator's
    /// listeners are).
    pub fn own_addresses_on_this_host(mut self) -> Self {
        self.own_loopback = true;
        self
    }

    /// Refuses a gateway's own address on this host unless allowed (see `own_loopback`).
    fn own_on_this_host(&self, addr: SocketAddr, what: &str) -> Result<()> {
        if on_this_host(addr.ip()) && !self.own_loopback && !self.allow.contains(&Allowed::Addr(addr)) {
            return Err(refuse(format!(
                "{what} is {addr}, on the console's own host (loopback or link-local): a gateway's own address \
                 may be there only when --probe-allow names it"
            )));
        }
        Ok(())
    }

    /// Checks a service's direct target (the address a DNS bypass sends its clients to,
    /// from the console's configuration, never from a request): anywhere but a link-local
    /// (metadata) address, and on this host only for the simulator or when listed.
    pub fn check_direct(&self, addr: SocketAddr) -> Result<()> {
        if metadata(addr.ip()) {
            return Err(refuse(format!("{addr} is a link-local address (cloud metadata lives there); never probed")));
        }
        self.own_on_this_host(addr, "the direct target")
    }

    /// Checks `url` for a probe; `own` is the gateway's own address when probing a gateway
    /// (the only non-public address besides those listed exactly).
    pub async fn check(&self, url: &Url, own: Option<&Own>) -> Result<Target> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(format!("only http and https can be probed, not '{}'", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("credentials in the URL are not allowed".into()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(h) => h,
            None => return Err(refuse("the URL has no host".into())),
        };
        let literal: Option<IpAddr> = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            let addr = SocketAddr::new(ip, port);
            let listed = own == Some(&Own::Addr(addr)) || self.allow.contains(&Allowed::Addr(addr));
            if metadata(ip) {
                return Err(refuse(format!(
                    "{addr} is a link-local address (cloud metadata lives there); never probed"
                )));
            }
            if own == Some(&Own::Addr(addr)) {
                self.own_on_this_host(addr, "the gateway's address")?;
            }
            if !listed {
                return Err(refuse(match forbidden(ip) {
                    Some(why) => format!("{addr} is {why} and not on the allow-list"),
                    None => format!("{addr} is not on the allow-list (--probe-allow)"),
                }));
            }
            return Ok(Target { url: url.clone(), addr, dns: Duration::ZERO });
        }
        let name = url.host_str().unwrap_or_default().trim_end_matches('.').to_string();
        let own_name = matches!(own, Some(Own::Name(n, p)) if n.eq_ignore_ascii_case(&name) && *p == port);
        if !own_name && (own.is_some() || !self.allow.iter().any(|a| a.allows_name(&name, port))) {
            return Err(refuse(format!("{name}:{port} is not on the allow-list (--probe-allow)")));
        }
        let started = Instant::now();
        let addrs: Vec<SocketAddr> =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| AppError::invalid("url", format!("resolving {name} took longer than 5 s")))?
                .map_err(|e| AppError::invalid("url", format!("{name} does not resolve: {e}")))?
                .collect();
        let dns = started.elapsed();
        // Every address must be public: a name that also resolves inside would let a
        // later lookup choose the inside one.
        for a in &addrs {
            if metadata(a.ip()) {
                return Err(refuse(format!("{name} resolves to {}, a link-local (metadata) address", a.ip())));
            }
            if let Some(why) = forbidden(a.ip()).filter(|_| !own_name) {
                return Err(refuse(format!("{name} resolves to {}, {why}", a.ip())));
            }
            if own_name {
                let listed = self.allow.iter().any(|x| x.allows_name(&name, port));
                if !listed {
                    self.own_on_this_host(*a, &format!("the gateway's address {name}"))?;
                }
            }
        }
        let addr = *addrs.first().ok_or_else(|| AppError::invalid("url", format!("{name} has no address")))?;
        Ok(Target { url: url.clone(), addr, dns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_target_may_be_anywhere_but_metadata_and_on_this_host_only_for_the_simulator_or_when_listed() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let guard = Guard::new(vec![Allowed::parse("127.0.0.1:8443").unwrap()]);
        assert!(guard.check_direct(addr("203.0.113.7:443")).is_ok());
        assert!(guard.check_direct(addr("10.1.2.3:443")).is_ok(), "a private load balancer is a direct target too");
        assert!(guard.check_direct(addr("127.0.0.1:8443")).is_ok(), "listed");
        let e = guard.check_direct(addr("127.0.0.1:9000")).unwrap_err().to_api().message;
        assert!(e.contains("the direct target is 127.0.0.1:9000, on the console's own host"), "{e}");
        let e = guard.check_direct(addr("169.254.169.254:80")).unwrap_err().to_api().message;
        assert!(e.contains("metadata"), "{e}");
        let sim = Guard::new(vec![]).own_addresses_on_this_host();
        assert!(sim.check_direct(addr("127.0.2.7:41234")).is_ok(), "the simulator's own listeners");
        assert!(sim.check_direct(addr("169.254.169.254:80")).is_err());
    }

    #[test]
    fn inside_addresses_are_forbidden_in_every_spelling() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.170",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "::a00:1",
            "fec0::1",
            "feff::1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:2::808:808",
            "2002:a00:1::1",
            "2002:808:808::1",
        ] {
            assert!(forbidden(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for good in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(forbidden(good.parse().unwrap()), None, "{good}");
        }
    }

    #[test]
    fn allow_list_entries_parse_and_match_names_ports_and_subdomains() {
        let a = Allowed::parse("*.example.com").unwrap();
        assert!(a.allows_name("api.example.com", 443) && a.allows_name("A.B.EXAMPLE.COM", 80));
        assert!(!a.allows_name("example.com", 443) && !a.allows_name("evilexample.com", 443));
        let b = Allowed::parse("status.example.org:8443").unwrap();
        assert!(b.allows_name("status.example.org", 8443) && !b.allows_name("status.example.org", 443));
        assert_eq!(Allowed::parse("10.0.0.5:8080").unwrap(), Allowed::Addr("10.0.0.5:8080".parse().unwrap()));
        assert!(Allowed::parse("169.254.169.254:80").is_err(), "metadata can never be allowed");
        assert!(Allowed::parse("10.0.0.5").is_err(), "an address needs its port");
        assert!(Allowed::parse("bad host").is_err() && Allowed::parse("x:notaport").is_err());
    }

    #[tokio::test]
    async fn a_gateways_own_address_on_this_host_needs_the_allow_list_unless_the_console_started_it() {
        let own = Own::Addr("127.0.0.1:4000".parse().unwrap());
        let url = url_of("http://127.0.0.1:4000/healthz");
        let e = Guard::new(vec![]).check(&url, Some(&own)).await.unwrap_err().to_string();
        assert!(e.contains("console's own host"), "{e}");
        assert!(Guard::new(vec![]).own_addresses_on_this_host().check(&url, Some(&own)).await.is_ok());
        let listed = Guard::new(vec![Allowed::parse("127.0.0.1:4000").unwrap()]);
        assert!(listed.check(&url, Some(&own)).await.is_ok());
        let named = Own::Name("localhost".into(), 4000);
        let by_name = url_of("http://localhost:4000/");
        assert!(Guard::new(vec![]).check(&by_name, Some(&named)).await.is_err());
        let private = Own::Addr("10.0.0.7:80".parse().unwrap());
        assert!(
            Guard::new(vec![]).check(&url_of("http://10.0.0.7/"), Some(&private)).await.is_ok(),
            "a cluster IP is fine"
        );
    }

    fn url_of(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn the_guard_refuses_before_connecting() {
        // As for the simulator, whose gateways listen on this host (the rule for annotated
        // addresses has its own test above).
        let guard = Guard::new(vec![
            Allowed::parse("localhost").unwrap(),
            Allowed::parse("10.0.0.5:8080").unwrap(),
            Allowed::parse("*.example.com").unwrap(),
        ])
        .own_addresses_on_this_host();
        let check = |u: &str| {
            let guard = guard.clone();
            let url = Url::parse(u).unwrap();
            async move { guard.check(&url, None).await }
        };
        let refused = |r: Result<Target>| match r {
            Err(AppError::Forbidden(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused(check("http://169.254.169.254/latest/meta-data/").await).contains("link-local"));
        assert!(refused(check("http://[::ffff:169.254.169.254]/").await).contains("link-local"));
        assert!(refused(check("http://127.0.0.1:5432/").await).contains("loopback"));
        assert!(refused(check("http://10.0.0.5:22/").await).contains("private"), "only the listed port");
        assert!(check("http://10.0.0.5:8080/health").await.is_ok(), "listed exactly");
        assert!(refused(check("http://localhost:5432/").await).contains("resolves to"), "a name that resolves inside");
        assert!(refused(check("http://elsewhere.org/").await).contains("allow-list"));
        assert!(refused(check("file:///etc/passwd").await).contains("http"));
        assert!(refused(check("http://user:pw@api.example.com/").await).contains("credentials"));
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let own = Own::Addr(addr);
        let url = Url::parse("http://127.0.0.1:4000/healthz").unwrap();
        assert_eq!(guard.check(&url, Some(&own)).await.unwrap().addr, addr, "a gateway's own address");
        let other = Url::parse("http://127.0.0.1:4001/").unwrap();
        assert!(guard.check(&other, Some(&own)).await.is_err(), "not the port next to it");
        // A gateway known by name (a Service's cluster name) may resolve inside.
        let named = Own::Name("localhost".into(), 4000);
        let target = guard.check(&url_of("http://localhost:4000/healthz"), Some(&named)).await.unwrap();
        assert!(target.addr.ip().is_loopback() && target.addr.port() == 4000, "{target:?}");
        assert!(guard.check(&url_of("http://localhost:4001/"), Some(&named)).await.is_err(), "its port only");
        assert!(guard.check(&url_of("http://127.0.0.1:4000/"), Some(&named)).await.is_err(), "its name only");
    }
}
