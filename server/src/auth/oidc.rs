//! Single sign-on with an OpenID Connect provider: the authorization-code flow with PKCE
//! and a nonce, through the `openidconnect` crate (discovery, the token exchange, the ID
//! token's signature and claims; no JOSE here). This module knows the provider; the
//! sign-in handlers (`http::sso`) hold the browser's side: the session, the pages, the
//! audit trail.
//!
//! The provider's discovery document and keys are kept as long as its `Cache-Control:
//! max-age` says (between a minute and a day; five minutes without one), and fetched
//! again at once when an ID token names a key they lack (the provider rotated keys).

use app::dto::Role;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How `--oidc-*` configure single sign-on.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The provider's issuer URL (discovery is at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// This console's client id there.
    pub client_id: String,
    /// Its client secret (from `--oidc-client-secret-file`).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `<public URL>/auth/oidc/callback`.
    pub redirect_url: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The ID-token claim listing the person's groups.
    pub role_claim: String,
    /// Group → role; the highest role of a person's groups wins.
    pub role_map: Vec<(String, Role)>,
    /// The role of a person none of whose groups is mapped (none: refused).
    pub default_role: Option<Role>,
    /// The name on the sign-in button.
    pub provider_name: String,
}

/// Every claim of the ID token, so that the role claim can be any of them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AllClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for AllClaims {}

type Fields = IdTokenFields<
    AllClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type OidcClient = Client<
    AllClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a started sign-in keeps in the browser's session until the provider sends it back.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Pending {
    /// The `state` sent (and expected back).
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// When it started, Unix ms.
    pub started_ms: i64,
}

/// A started sign-in is good this long.
pub const PENDING_FOR_MS: i64 = 10 * 60 * 1000;

/// The person the provider vouched for.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The provider's stable id for them (`sub`).
    pub subject: String,
    /// Their account name here: `preferred_username`, else `sub`.
    pub username: String,
    /// Their groups, as the role claim lists them.
    pub groups: Vec<String>,
    /// The role they get: the highest mapped group's, else the default; none: refused.
    pub role: Option<Role>,
}

/// Why single sign-on did not work.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered wrongly: a 502 page.
    #[error("the identity provider at {issuer} did not answer as expected: {detail}")]
    Unavailable {
        /// Its issuer URL.
        issuer: String,
        /// What went wrong.
        detail: String,
    },
    /// What came back does not prove who the person is: a 400 page.
    #[error("{0}")]
    Rejected(String),
}

/// Responses larger than this from the provider are refused (a discovery document or key
/// set is a few KB).
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

struct Discovered {
    metadata: CoreProviderMetadata,
    until: Instant,
}

/// The provider, as this process knows it.
pub struct Oidc {
    settings: OidcSettings,
    issuer: IssuerUrl,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Discovered>>,
    starts: Mutex<Starts>,
}

/// Sign-ins started this minute: each writes a session row, so they are bounded per
/// address and in all (in memory, per replica).
#[derive(Default)]
struct Starts {
    minute: i64,
    total: usize,
    by_addr: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// Sign-ins one address may start a minute.
pub const STARTS_PER_ADDRESS: usize = 20;
/// Sign-ins all addresses together may start a minute (on one replica).
pub const STARTS_IN_ALL: usize = 600;

/// How long a response may be kept, from its `Cache-Control` (none: not said).
fn max_age(headers: &axum::http::HeaderMap) -> Option<Duration> {
    let value = headers.get(axum::http::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    age
}

/// How long discovered metadata is kept: what the provider said (the shorter of the two
/// documents), within a minute and a day; five minutes when it said nothing.
pub fn keep_for(said: Option<Duration>) -> Duration {
    said.unwrap_or(Duration::from_secs(300)).clamp(Duration::from_secs(60), Duration::from_secs(86_400))
}

impl Oidc {
    /// The provider of `settings` (nothing is fetched until the first sign-in).
    pub fn new(settings: OidcSettings) -> Result<Arc<Self>, String> {
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| format!("--oidc-issuer: {e}"))?;
        RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| format!("the OIDC redirect URL: {e}"))?;
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer send us anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the OIDC HTTP client: {e}"))?;
        Ok(Arc::new(Oidc {
            settings,
            issuer,
            http,
            cache: tokio::sync::Mutex::new(None),
            starts: Mutex::new(Starts::default()),
        }))
    }

    /// Counts a sign-in started from `addr` at `now_ms`, or says why not and for how many
    /// seconds (the rest of the minute).
    pub fn admit(&self, addr: std::net::IpAddr, now_ms: i64) -> Result<(), (String, u64)> {
        let minute = now_ms.max(0) / 60_000;
        let retry = (60 - (now_ms.max(0) / 1000 % 60) as u64).max(1);
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        if starts.minute != minute {
            *starts = Starts { minute, ..Starts::default() };
        }
        if starts.total >= STARTS_IN_ALL {
            return Err((
                format!("{STARTS_IN_ALL} single sign-ons were started this minute (at most {STARTS_IN_ALL})"),
                retry,
            ));
        }
        let mine = starts.by_addr.entry(addr).or_insert(0);
        if *mine >= STARTS_PER_ADDRESS {
            return Err((
                format!(
                    "{mine} single sign-ons were started from your address this minute (at most {STARTS_PER_ADDRESS})"
                ),
                retry,
            ));
        }
        *mine += 1;
        starts.total += 1;
        Ok(())
    }

    /// Its settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    fn unavailable(&self, detail: impl std::fmt::Display) -> OidcError {
        OidcError::Unavailable { issuer: self.settings.issuer.clone(), detail: detail.to_string() }
    }

    /// One HTTP exchange with the provider, noting how long its answer may be kept.
    async fn exchange(
        http: reqwest::Client,
        ages: Arc<Mutex<Option<Duration>>>,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(format!("{}: {e}", parts.uri)))?;
        let mut builder = axum::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        if let Some(age) = max_age(response.headers()) {
            let mut kept = ages.lock().unwrap_or_else(|e| e.into_inner());
            *kept = Some(kept.map_or(age, |k| k.min(age)));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| HttpError(format!("{}: {e}", parts.uri)))? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(HttpError(format!("{}: the answer is larger than {MAX_RESPONSE} bytes", parts.uri)));
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| HttpError(e.to_string()))
    }

    /// The provider's metadata and keys: kept, or fetched (`fresh`: fetched whatever is kept).
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        let mut cache = self.cache.lock().await;
        if let Some(d) = cache.as_ref().filter(|d| !fresh && Instant::now() < d.until) {
            return Ok(d.metadata.clone());
        }
        let ages = Arc::new(Mutex::new(None));
        let http = self.http.clone();
        let client = {
            let ages = ages.clone();
            move |request| Self::exchange(http.clone(), ages.clone(), request)
        };
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &client).await.map_err(|e| {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = format!("{detail}: {s}");
                source = s.source();
            }
            self.unavailable(detail)
        })?;
        let said = *ages.lock().unwrap_or_else(|e| e.into_inner());
        *cache = Some(Discovered { metadata: metadata.clone(), until: Instant::now() + keep_for(said) });
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<OidcClient, OidcError> {
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone()).map_err(|e| self.unavailable(e))?;
        Ok(OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: where to send the browser, and what to keep until it comes back.
    pub async fn begin(&self, now_ms: i64) -> Result<(String, Pending), OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.settings.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            started_ms: now_ms,
        };
        Ok((url.to_string(), pending))
    }

    /// Finishes a sign-in with the code the provider sent back: exchanges it (with the
    /// PKCE verifier), checks the ID token (signature, issuer, audience, expiry, nonce)
    /// and maps the person's groups to a role.
    pub async fn finish(&self, pending: &Pending, code: String) -> Result<Identity, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let http = self.http.clone();
        let ages = Arc::new(Mutex::new(None));
        let call = move |request| Self::exchange(http.clone(), ages.clone(), request);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| self.unavailable(e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&call)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    OidcError::Rejected(format!("the identity provider refused the sign-in code: {r}"))
                }
                other => self.unavailable(format!("the token exchange failed: {other}")),
            })?;
        let id_token =
            tokens.id_token().ok_or_else(|| OidcError::Rejected("the identity provider sent no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            // A key we do not have: the provider may have rotated its keys since we fetched them.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let client = self.client(self.metadata(true).await?)?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|e| OidcError::Rejected(format!("the ID token does not check out: {e}")))?
                    .clone()
            }
            Err(e) => return Err(OidcError::Rejected(format!("the ID token does not check out: {e}"))),
        };
        let subject = claims.subject().as_str().to_string();
        let username = claims.preferred_username().map(|u| u.as_str().to_string()).unwrap_or_else(|| subject.clone());
        let groups = groups_of(claims.additional_claims().claims.get(&self.settings.role_claim));
        let role = self.role_for(&groups);
        Ok(Identity { subject, username, groups, role })
    }

    /// The role `groups` give: the highest mapped one, else the default.
    pub fn role_for(&self, groups: &[String]) -> Option<Role> {
        self.settings
            .role_map
            .iter()
            .filter(|(group, _)| groups.contains(group))
            .map(|(_, role)| *role)
            .max()
            .or(self.settings.default_role)
    }
}

/// A groups claim: a list of strings, or one string (at most 256 of them kept).
fn groups_of(claim: Option<&serde_json::Value>) -> Vec<String> {
    match claim {
        Some(serde_json::Value::Array(items)) => {
            items.iter().filter_map(|v| v.as_str()).take(256).map(|s| s.chars().take(256).collect()).collect()
        }
        Some(serde_json::Value::String(s)) => vec![s.chars().take(256).collect()],
        _ => Vec::new(),
    }
}

/// `GROUP=ROLE` of `--oidc-role-map`.
pub fn parse_role_map(entry: &str) -> Result<(String, Role), String> {
    let (group, role) =
        entry.rsplit_once('=').ok_or_else(|| format!("--oidc-role-map {entry}: expected GROUP=ROLE"))?;
    let role: Role = role.parse().map_err(|e| format!("--oidc-role-map {entry}: {e}"))?;
    if group.is_empty() {
        return Err(format!("--oidc-role-map {entry}: the group is empty"));
    }
    Ok((group.to_string(), role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(map: &[(&str, Role)], default_role: Option<Role>) -> OidcSettings {
        OidcSettings {
            issuer: "http://127.0.0.1:1".into(),
            client_id: "c".into(),
            client_secret: None,
            redirect_url: "http://127.0.0.1:2/auth/oidc/callback".into(),
            scopes: vec!["openid".into()],
            role_claim: "groups".into(),
            role_map: map.iter().map(|(g, r)| (g.to_string(), *r)).collect(),
            default_role,
            provider_name: "Test".into(),
        }
    }

    #[test]
    fn the_highest_mapped_group_wins_and_unmapped_people_get_the_default_or_nothing() {
        let oidc = Oidc::new(settings(&[("sre", Role::Responder), ("sre-leads", Role::Admin)], None)).unwrap();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(oidc.role_for(&groups(&["sre", "sre-leads"])), Some(Role::Admin));
        assert_eq!(oidc.role_for(&groups(&["sre", "marketing"])), Some(Role::Responder));
        assert_eq!(oidc.role_for(&groups(&["marketing"])), None);
        let open = Oidc::new(settings(&[("sre", Role::Responder)], Some(Role::Viewer))).unwrap();
        assert_eq!(open.role_for(&groups(&["marketing"])), Some(Role::Viewer));
        assert_eq!(groups_of(Some(&serde_json::json!("sre"))), ["sre"]);
        assert_eq!(groups_of(Some(&serde_json::json!(["a", 1, "b"]))), ["a", "b"]);
        assert!(groups_of(Some(&serde_json::json!({"a": 1}))).is_empty());
    }

    #[test]
    fn sign_ins_started_are_bounded_per_address_and_in_all_each_minute() {
        let oidc = Oidc::new(settings(&[], None)).unwrap();
        let one: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let t = 120_000 + 15_000;
        for _ in 0..STARTS_PER_ADDRESS {
            oidc.admit(one, t).unwrap();
        }
        let (why, retry) = oidc.admit(one, t).unwrap_err();
        assert!(why.contains("from your address"), "{why}");
        assert_eq!(retry, 45, "until the next minute");
        assert!(oidc.admit("10.0.0.2".parse().unwrap(), t).is_ok(), "another address is not held up");
        assert!(oidc.admit(one, t + 60_000).is_ok(), "the next minute counts afresh");
        for i in 0..STARTS_IN_ALL {
            let addr = std::net::IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            let _ = oidc.admit(addr, t + 60_000);
        }
        let (why, _) = oidc.admit("10.9.9.9".parse().unwrap(), t + 60_000).unwrap_err();
        assert!(why.contains("at most 600"), "{why}");
    }

    #[test]
    fn role_map_entries_parse_and_bad_ones_say_why() {
        assert_eq!(parse_role_map("cn=sre,ou=groups=responder"), Ok(("cn=sre,ou=groups".into(), Role::Responder)));
        assert!(parse_role_map("sre").unwrap_err().contains("GROUP=ROLE"));
        assert!(parse_role_map("sre=root").is_err());
        assert!(parse_role_map("=admin").unwrap_err().contains("empty"));
    }

    #[test]
    fn metadata_is_kept_as_the_provider_says_within_bounds() {
        let headers = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(axum::http::header::CACHE_CONTROL, v.parse().unwrap());
            h
        };
        assert_eq!(max_age(&headers("public, max-age=600")), Some(Duration::from_secs(600)));
        assert_eq!(max_age(&headers("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(&axum::http::HeaderMap::new()), None);
        assert_eq!(keep_for(Some(Duration::from_secs(600))), Duration::from_secs(600));
        assert_eq!(keep_for(Some(Duration::ZERO)), Duration::from_secs(60));
        assert_eq!(keep_for(Some(Duration::from_secs(10_000_000))), Duration::from_secs(86_400));
        assert_eq!(keep_for(None), Duration::from_secs(300));
    }
}
