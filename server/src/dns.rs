//! The public DNS record of a service, read and changed on the zone's primary server
//! with RFC 2136 dynamic UPDATE signed with TSIG (issue 17: the runbook's "update DNS to
//! route traffic directly"). The wire format, TSIG signing and the UPDATE message are
//! hickory's; this module only decides what to ask and reads the answers.
//!
//! A change is a compare-and-swap: the UPDATE carries the RRset the console read as a
//! prerequisite (RFC 2136 §2.4.2, "RRset exists, value dependent"), so a record someone
//! else changed since is never overwritten: the server answers NXRRSET and nothing
//! changes. One RRset of one type (A, AAAA or CNAME) is swapped for another of the same
//! type.

use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_client::proto::dnssec::tsig::TSigner;
use hickory_client::proto::op::{MessageFinalizer, ResponseCode};
use hickory_client::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::serialize::txt::RDataParser;
use hickory_client::proto::tcp::TcpClientStream;
use hickory_client::proto::xfer::DnsMultiplexer;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long one exchange with a DNS server may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key file read (a BIND key statement is about 150 bytes).
const KEY_FILE_MAX: u64 = 64 * 1024;

/// A TSIG key as `tsig-keygen` writes it: `key "name" { algorithm hmac-sha256; secret "..."; };`.
#[derive(Clone)]
pub struct TsigKey {
    /// The key's name, as the server knows it.
    pub name: String,
    /// `hmac-sha256`, `hmac-sha384` or `hmac-sha512`.
    pub algorithm: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey").field("name", &self.name).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl TsigKey {
    /// Reads a key file in BIND's format (the first `key` statement in it).
    pub fn load(path: &std::path::Path) -> Result<TsigKey, String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(KEY_FILE_MAX).read_to_string(&mut text))
            .map_err(|e| format!("cannot read the TSIG key file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses BIND's `key` statement. Comments (`#`, `//`, `/* */`) are allowed around it.
    pub fn parse(text: &str) -> Result<TsigKey, String> {
        let text = strip_comments(text);
        let rest = text.trim_start().strip_prefix("key").ok_or("it does not start with a `key` statement")?;
        let (name, rest) = quoted(rest.trim_start()).ok_or("the key's name is not a quoted string")?;
        let body = rest.trim_start().strip_prefix('{').ok_or("`{` expected after the key's name")?;
        let body = &body[..body.find('}').ok_or("the key statement has no closing `}`")?];
        let (mut algorithm, mut secret) = (None, None);
        for clause in body.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let (word, value) =
                clause.split_once(char::is_whitespace).ok_or_else(|| format!("`{clause}` has no value"))?;
            let value = value.trim();
            match word {
                "algorithm" => algorithm = Some(value.trim_matches('"').to_ascii_lowercase()),
                "secret" => secret = Some(quoted(value).map(|(s, _)| s).ok_or("the secret is not a quoted string")?),
                other => return Err(format!("unknown clause `{other}` in the key statement")),
            }
        }
        let algorithm = algorithm.ok_or("the key has no `algorithm`")?;
        if !["hmac-sha256", "hmac-sha384", "hmac-sha512"].contains(&algorithm.as_str()) {
            return Err(format!(
                "algorithm {algorithm} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)"
            ));
        }
        let secret = secret.ok_or("the key has no `secret`")?;
        let secret =
            data_encoding::BASE64.decode(secret.as_bytes()).map_err(|e| format!("the secret is not base64: {e}"))?;
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        Name::from_ascii(&name).map_err(|e| format!("the key's name is not a DNS name: {e}"))?;
        Ok(TsigKey { name, algorithm, secret })
    }

    fn signer(&self) -> Result<Arc<dyn MessageFinalizer>, String> {
        let algorithm = match self.algorithm.as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            _ => TsigAlgorithm::HmacSha512,
        };
        let name = Name::from_ascii(&self.name).map_err(|e| e.to_string())?;
        // 300 s of clock skew, BIND's and nsupdate's default fudge.
        let signer = TSigner::new(self.secret.clone(), algorithm, name, 300).map_err(|e| e.to_string())?;
        Ok(Arc::new(signer))
    }
}

/// What a hickory client error says, with its cause (the outer error says only
/// "proto error" and does not expose it as a source).
fn describe(e: &hickory_client::ClientError) -> String {
    use hickory_client::ClientErrorKind;
    match e.kind() {
        ClientErrorKind::Proto(inner) => chain(inner),
        ClientErrorKind::DnsSec(inner) => chain(inner),
        ClientErrorKind::Io(inner) => chain(inner),
        _ => chain(e),
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else if rest.starts_with('#') || rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if rest.starts_with('"') {
            // Keep quoted strings whole (a secret may hold "//").
            let end = rest[1..].find('"').map_or(rest.len(), |e| e + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `"text" rest` as (`text`, `rest`).
fn quoted(s: &str) -> Option<(String, &str)> {
    let inner = s.strip_prefix('"')?;
    let end = inner.find('"')?;
    Some((inner[..end].to_string(), &inner[end + 1..]))
}

/// One RRset: every record of one type at one name, with its TTL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// The fully qualified name, with its trailing dot.
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Seconds resolvers may cache it.
    pub ttl: u32,
    /// The records' data in presentation format, sorted (`192.0.2.7`, `lb.example.net.`).
    pub values: Vec<String>,
}

impl RecordSet {
    /// `name TTL IN TYPE value` lines, as a zone file would show them.
    pub fn lines(&self) -> Vec<String> {
        self.values.iter().map(|v| format!("{} {} IN {} {v}", self.name, self.ttl, self.rtype)).collect()
    }

    fn records(&self) -> Result<hickory_client::proto::rr::RecordSet, DnsError> {
        let name = Name::from_str(&self.name).map_err(|e| DnsError::Invalid(format!("{}: {e}", self.name)))?;
        let rtype = RecordType::from_str(&self.rtype).map_err(|e| DnsError::Invalid(e.to_string()))?;
        let mut set = hickory_client::proto::rr::RecordSet::with_ttl(name.clone(), rtype, self.ttl);
        for value in &self.values {
            let data = RData::try_from_str(rtype, value)
                .map_err(|e| DnsError::Invalid(format!("{} {value}: {e}", self.rtype)))?;
            set.insert(Record::from_rdata(name.clone(), self.ttl, data), 0);
        }
        Ok(set)
    }
}

/// Why a DNS exchange did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No answer (refused connection, timeout, a broken reply).
    #[error("the DNS server at {0} did not answer: {1}")]
    Unreachable(SocketAddr, String),
    /// The server refused the update: a key it does not know or accept, or a policy
    /// that does not let the key change this name.
    #[error("{0}")]
    Refused(String),
    /// The record is no longer what the change was planned against.
    #[error("{0}")]
    Changed(String),
    /// A name, type or value that cannot be a record.
    #[error("{0}")]
    Invalid(String),
}

/// The zone's primary server, a zone in it, and the key that may change it.
#[derive(Clone, Debug)]
pub struct Dns {
    /// Where UPDATEs and reads go (`--dns-server`).
    pub server: SocketAddr,
    /// The zone (`--dns-zone`), fully qualified.
    pub zone: String,
    /// `--dns-tsig-key-file`.
    pub key: Option<TsigKey>,
    /// The zone's name servers to ask after a change (`--dns-check-server`); none: those
    /// its NS records name (see [`Dns::authoritative`]).
    pub name_servers: Vec<SocketAddr>,
    /// Recursive resolvers asked too after a change (`--dns-check-resolver`): they serve
    /// the new answer once their cached copy of the old one expires.
    pub resolvers: Vec<SocketAddr>,
    /// How long a change may take to be served everywhere asked before its action fails
    /// (`--dns-propagation-deadline`; with resolvers, at least the old record's TTL + 30 s).
    pub deadline: Duration,
}

/// `--dns-propagation-deadline`'s default.
pub const PROPAGATION_DEADLINE: Duration = Duration::from_secs(120);

impl Dns {
    /// A zone `zone` on `server`.
    pub fn new(server: SocketAddr, zone: &str, key: Option<TsigKey>) -> Result<Dns, String> {
        let mut name = Name::from_str(zone).map_err(|e| format!("--dns-zone {zone}: {e}"))?;
        name.set_fqdn(true);
        Ok(Dns {
            server,
            zone: name.to_ascii(),
            key,
            name_servers: Vec::new(),
            resolvers: Vec::new(),
            deadline: PROPAGATION_DEADLINE,
        })
    }

    /// `service` as a name in the zone (`payments` -> `payments.example.com.`).
    pub fn name_of(&self, service: &str) -> String {
        format!("{service}.{}", self.zone)
    }

    /// A TCP connection to `at`, signing what it sends when `signed`. A connection that
    /// fails before anything was sent is tried once more.
    async fn client(&self, at: SocketAddr, signed: bool) -> Result<Client, DnsError> {
        let signer = match (&self.key, signed) {
            (Some(key), true) => Some(key.signer().map_err(DnsError::Invalid)?),
            _ => None,
        };
        let mut last = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (stream, sender) =
                TcpClientStream::new(at, None, Some(EXCHANGE_TIMEOUT), TokioRuntimeProvider::default());
            let multiplexer = DnsMultiplexer::with_timeout(stream, sender, EXCHANGE_TIMEOUT, signer.clone());
            match tokio::time::timeout(EXCHANGE_TIMEOUT, Client::connect(multiplexer)).await {
                Ok(Ok((client, driver))) => {
                    tokio::spawn(driver);
                    return Ok(client);
                }
                Ok(Err(e)) => last = chain(&e),
                Err(_) => last = "no connection within 5 s".into(),
            }
        }
        Err(DnsError::Unreachable(at, last))
    }

    /// The RRset at `name` as the server at `at` serves it: the first of A, AAAA and
    /// CNAME that exists (`None` when none does).
    pub async fn read_at(&self, at: SocketAddr, name: &str) -> Result<Option<RecordSet>, DnsError> {
        let mut client = self.client(at, false).await?;
        let owner = Name::from_str(name).map_err(|e| DnsError::Invalid(format!("{name}: {e}")))?;
        for rtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            let response = tokio::time::timeout(EXCHANGE_TIMEOUT, client.query(owner.clone(), DNSClass::IN, rtype))
                .await
                .map_err(|_| DnsError::Unreachable(at, "no answer within 5 s".into()))?
                .map_err(|e| DnsError::Unreachable(at, describe(&e)))?;
            match response.response_code() {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                other => return Err(DnsError::Refused(format!("the DNS server at {at} answered {other} for {name}"))),
            }
            let records: Vec<&Record> =
                response.answers().iter().filter(|r| r.record_type() == rtype && r.name() == &owner).collect();
            if let Some(first) = records.first() {
                let mut values: Vec<String> = records.iter().map(|r| r.data().to_string()).collect();
                values.sort();
                return Ok(Some(RecordSet {
                    name: owner.to_ascii(),
                    rtype: rtype.to_string(),
                    ttl: first.ttl(),
                    values,
                }));
            }
        }
        Ok(None)
    }

    /// The zone's authoritative servers, as its NS records on the primary name them, each
    /// on the primary's port (a test zone on a loopback port lists loopback addresses), and
    /// the primary itself first (it may be a hidden primary no NS record names). A name
    /// server whose address is not in the zone is looked up with the system's resolver;
    /// one that cannot be found is left out, and says so in the log.
    pub async fn authoritative(&self) -> Result<Vec<SocketAddr>, DnsError> {
        let mut client = self.client(self.server, false).await?;
        let zone = Name::from_str(&self.zone).map_err(|e| DnsError::Invalid(e.to_string()))?;
        let response = tokio::time::timeout(EXCHANGE_TIMEOUT, client.query(zone, DNSClass::IN, RecordType::NS))
            .await
            .map_err(|_| DnsError::Unreachable(self.server, "no answer within 5 s".into()))?
            .map_err(|e| DnsError::Unreachable(self.server, describe(&e)))?;
        let names: Vec<String> = response
            .answers()
            .iter()
            .filter(|r| r.record_type() == RecordType::NS)
            .map(|r| r.data().to_string())
            .collect();
        let port = self.server.port();
        let mut servers = vec![self.server];
        for ns in names {
            let mut found = Vec::new();
            for rtype in [RecordType::A, RecordType::AAAA] {
                let Ok(owner) = Name::from_str(&ns) else { break };
                if let Ok(Ok(answer)) =
                    tokio::time::timeout(EXCHANGE_TIMEOUT, client.query(owner, DNSClass::IN, rtype)).await
                {
                    found.extend(answer.answers().iter().filter_map(|r| match r.data() {
                        RData::A(a) => Some(SocketAddr::new(a.0.into(), port)),
                        RData::AAAA(a) => Some(SocketAddr::new(a.0.into(), port)),
                        _ => None,
                    }));
                }
            }
            if found.is_empty() {
                match tokio::net::lookup_host((ns.trim_end_matches('.'), port)).await {
                    Ok(addrs) => found.extend(addrs),
                    Err(e) => tracing::warn!(name_server = %ns, error = %e, "a name server of the zone has no address"),
                }
            }
            for at in found {
                if !servers.contains(&at) {
                    servers.push(at);
                }
            }
        }
        Ok(servers)
    }

    /// The RRset at `name` on the primary.
    pub async fn read(&self, name: &str) -> Result<Option<RecordSet>, DnsError> {
        self.read_at(self.server, name).await
    }

    /// Replaces `current` with `new` in one signed UPDATE whose prerequisite is that the
    /// RRset is still exactly `current`.
    pub async fn swap(&self, current: &RecordSet, new: &RecordSet) -> Result<(), DnsError> {
        if current.name != new.name || current.rtype != new.rtype {
            return Err(DnsError::Invalid(format!(
                "a {} record at {} cannot be swapped for a {} record at {}",
                current.rtype, current.name, new.rtype, new.name
            )));
        }
        let zone = Name::from_str(&self.zone).map_err(|e| DnsError::Invalid(e.to_string()))?;
        let (old, replacement) = (current.records()?, new.records()?);
        if !zone.zone_of(old.name()) {
            return Err(DnsError::Invalid(format!("{} is not in the zone {}", current.name, self.zone)));
        }
        let mut client = self.client(self.server, true).await?;
        let response = tokio::time::timeout(EXCHANGE_TIMEOUT, client.compare_and_swap(old, replacement, zone))
            .await
            .map_err(|_| DnsError::Unreachable(self.server, "no answer to the update within 5 s".into()))?
            .map_err(|e| {
                // A server that refuses the key answers with a TSIG error and no valid
                // signature, which the client cannot verify: that is this error.
                let text = describe(&e);
                let lower = text.to_ascii_lowercase();
                if lower.contains("tsig") || lower.contains("hmac") {
                    tracing::warn!(server = %self.server, error = %text, "a DNS update's reply did not verify");
                    DnsError::Refused(format!(
                        "the DNS server at {} refused the console's TSIG key {} (a wrong secret, or a key it does \
                         not know); nothing was changed",
                        self.server,
                        self.key.as_ref().map_or("(none)", |k| k.name.as_str())
                    ))
                } else {
                    DnsError::Unreachable(self.server, text)
                }
            })?;
        match response.response_code() {
            ResponseCode::NoError => Ok(()),
            ResponseCode::NXRRSet | ResponseCode::YXRRSet | ResponseCode::NXDomain => Err(DnsError::Changed(format!(
                "{} {} changed on the DNS server since it was read; nothing was changed",
                current.name, current.rtype
            ))),
            ResponseCode::NotAuth => Err(DnsError::Refused(format!(
                "the DNS server at {} did not accept the console's TSIG key ({}) for the zone {}",
                self.server,
                self.key.as_ref().map_or("none configured", |k| k.name.as_str()),
                self.zone
            ))),
            ResponseCode::Refused => Err(DnsError::Refused(format!(
                "the DNS server at {} refused the update of {} (its update policy does not allow this key to change it)",
                self.server, current.name
            ))),
            other => Err(DnsError::Refused(format!("the DNS server at {} answered {other}", self.server))),
        }
    }
}

/// Whether `server` answers `expected`'s name with `expected`'s type and values (the TTL
/// is left out: a resolver counts it down).
pub async fn serves(dns: &Dns, server: SocketAddr, expected: &RecordSet) -> bool {
    matches!(dns.read_at(server, &expected.name).await,
        Ok(Some(set)) if set.rtype == expected.rtype && set.values == expected.values)
}

/// Asks every one of `servers` until each answers with `expected` or `deadline` passes,
/// reporting after each round which do (`progress`). `Ok(elapsed)` when all do;
/// otherwise the servers that still did not.
pub async fn wait_served(
    dns: &Dns,
    servers: &[SocketAddr],
    expected: &RecordSet,
    deadline: Duration,
    mut progress: impl FnMut(&[(SocketAddr, bool)]),
) -> Result<Duration, Vec<SocketAddr>> {
    let started = tokio::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(500));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let answers =
            futures::future::join_all(servers.iter().map(|&at| async move { (at, serves(dns, at, expected).await) }))
                .await;
        progress(&answers);
        let pending: Vec<SocketAddr> = answers.iter().filter(|(_, ok)| !ok).map(|(at, _)| *at).collect();
        if pending.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= deadline {
            return Err(pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsig_keygen_output_parses_and_other_forms_are_refused_with_the_reason() {
        let key = TsigKey::parse(
            "key \"gw-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"tRVC0wnEOfxhLtscWAMIfl53qso9/V0792wC4hMO9IU=\";\n};\n",
        )
        .unwrap();
        assert_eq!((key.name.as_str(), key.algorithm.as_str(), key.secret.len()), ("gw-key", "hmac-sha256", 32));
        let commented =
            TsigKey::parse("# made by tsig-keygen\nkey \"k\" { algorithm HMAC-SHA512; /* x */ secret \"YWJj\"; };")
                .unwrap();
        assert_eq!(commented.algorithm, "hmac-sha512");
        for (text, reason) in [
            ("", "does not start with a `key`"),
            ("key k { algorithm hmac-sha256; secret \"YWJj\"; };", "not a quoted string"),
            ("key \"k\" { algorithm hmac-md5; secret \"YWJj\"; };", "hmac-md5 is not supported"),
            ("key \"k\" { algorithm hmac-sha256; };", "no `secret`"),
            ("key \"k\" { algorithm hmac-sha256; secret \"not base64!\"; };", "not base64"),
            ("key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; owner x; };", "unknown clause `owner`"),
            ("key \"k\" { algorithm hmac-sha256; secret \"YWJj\";", "no closing"),
        ] {
            let e = TsigKey::parse(text).unwrap_err();
            assert!(e.contains(reason), "{text:?}: {e}");
        }
        assert!(!format!("{key:?}").contains("tRVC0"), "the secret never reaches a log");
    }

    #[test]
    fn a_record_set_reads_as_zone_file_lines() {
        let set = RecordSet {
            name: "payments.example.com.".into(),
            rtype: "A".into(),
            ttl: 300,
            values: vec!["192.0.2.7".into(), "192.0.2.8".into()],
        };
        assert_eq!(
            set.lines(),
            ["payments.example.com. 300 IN A 192.0.2.7", "payments.example.com. 300 IN A 192.0.2.8"]
        );
        assert_eq!(set.records().unwrap().records_without_rrsigs().count(), 2);
        let bad = RecordSet { values: vec!["not-an-address".into()], ..set };
        assert!(matches!(bad.records(), Err(DnsError::Invalid(_))));
    }
}
