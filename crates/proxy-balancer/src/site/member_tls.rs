//! The site's part of mod_ssl's `SSLProxy*` directives: one [`TlsClient`] per distinct
//! settings (main server, each `<VirtualHost>`, merged as [`Config::host_settings`] merges
//! them, and a `<Proxy "balancer://…">` section's over its server's:
//! [`Config::balancer_ssl_proxy`]), given to the members that server's requests go to, for
//! their requests and their health probes.
//!
//! * An `https://`, `wss://` or `h2://` member that a server's requests go to, in a server
//!   without `SSLProxyEngine On`, refuses the site ([`SiteError::Tls`] with the member's
//!   line and column, Apache's AH00961). Apache 2.4.71 starts with it and answers each such
//!   request with a 500 (seen on loopback); refusing at start says it once, before
//!   traffic.
//! * A member whose requests come from several servers with different `SSLProxy*` settings
//!   is refused too: Apache would pick the settings per request, a member here has one
//!   client (define the balancer in each `<VirtualHost>`, or give them the same settings).
//! * A file that cannot be read or holds no usable PEM refuses the site, with the line and
//!   column of its directive.

use std::collections::HashMap;
use std::path::Path;

use crate::apache_config::{Config, Span, SslProtocols, SslProxySettings, SslRevocationCheck};
use crate::client::{RevocationCheck, TlsClient, TlsError, TlsVersion};
use crate::MemberParams;

use super::SiteError;

/// The TLS client of each TLS member, by its URL as [`Member::url`](crate::Member::url)
/// gives it.
pub(super) type TlsClients = HashMap<String, TlsClient>;

/// A [`SiteError::Tls`] at `span`.
fn refuse(span: Span, reason: String) -> SiteError {
    SiteError::Tls {
        line: span.line,
        column: span.column,
        reason,
    }
}

/// The TLS clients of the configuration's TLS members; see the [module docs](self).
///
/// # Errors
///
/// [`SiteError::Tls`]: AH00961, a member reached with two different settings, a file that
/// cannot be used.
pub(super) fn tls_clients(config: &Config) -> Result<TlsClients, SiteError> {
    // One client per distinct settings (spans aside).
    let mut built: Vec<(SslProxySettings, TlsClient)> = Vec::new();
    let mut client_for = |ssl: &SslProxySettings| -> Result<TlsClient, SiteError> {
        let key = ssl.without_spans();
        if let Some((_, client)) = built.iter().find(|(k, _)| *k == key) {
            return Ok(client.clone());
        }
        let client = tls_client(ssl)?;
        built.push((key, client.clone()));
        Ok(client)
    };
    let mut out: TlsClients = HashMap::new();
    // (settings without spans, where first used) per member.
    let mut first: HashMap<String, (SslProxySettings, Span)> = HashMap::new();
    for u in config.tls_member_uses() {
        let ssl = &u.ssl_proxy;
        if !ssl.engine_on() {
            let server = match u.server {
                None => "the main server".to_owned(),
                Some(v) => format!(
                    "the <VirtualHost> at line {}",
                    config.virtual_hosts.get(v).map_or(0, |h| h.span.line)
                ),
            };
            return Err(refuse(
                u.member_span,
                format!(
                    "AH00961: {} is reached over TLS (ProxyPass at line {}) and {server} has no SSLProxyEngine On; add it there (Apache answers these requests with 500)",
                    u.url, u.pass_span.line
                ),
            ));
        }
        let Ok(member) = MemberParams::new(&u.url) else {
            continue; // refused with its line by the balancer's conversion
        };
        let url = member.url.as_str().to_owned();
        let key = ssl.without_spans();
        match first.get(&url) {
            Some((other, at)) if *other != key => {
                return Err(refuse(
                    u.pass_span,
                    format!(
                        "{} is reached from servers with different SSLProxy* settings (also through the line {}): a member has one TLS client here; define the balancer in each <VirtualHost>, or give them the same SSLProxy* settings",
                        u.url, at.line
                    ),
                ))
            }
            Some(_) => continue,
            None => {}
        }
        first.insert(url.clone(), (key, u.pass_span));
        out.insert(url, client_for(ssl)?);
    }
    // TLS members no ProxyPass routes to (a balancer the manager or the probes only see):
    // the settings of the server that defines them, when it has SSLProxyEngine On.
    for (index, balancer) in config.balancers.iter().enumerate() {
        let ssl = config.balancer_ssl_proxy(balancer.context.vhost, Some(index));
        if !ssl.engine_on() {
            continue;
        }
        for m in &balancer.members {
            if !crate::apache_config::ssl::is_tls_url(&m.url) {
                continue;
            }
            let Ok(member) = MemberParams::new(&m.url) else {
                continue;
            };
            let url = member.url.as_str().to_owned();
            if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(url) {
                slot.insert(client_for(&ssl)?);
            }
        }
    }
    Ok(out)
}

/// The one TLS client every TLS member uses, if they all use the same (the common case: one
/// set of `SSLProxy*` lines); `None` with none or several.
pub(super) fn shared_client(clients: &TlsClients) -> Option<TlsClient> {
    let mut all = clients.values();
    let first = all.next()?;
    all.all(|c| c == first).then(|| first.clone())
}

/// The client one server's settings describe.
fn tls_client(ssl: &SslProxySettings) -> Result<TlsClient, SiteError> {
    let mut b = TlsClient::builder()
        .verify(ssl.verifies())
        .check_name(ssl.checks_name())
        .check_expiry(ssl.checks_expiry());
    if let Some(f) = &ssl.ca_certificate_file {
        b = b.ca_file(&f.value);
    }
    if let Some(f) = &ssl.ca_certificate_path {
        b = b.ca_dir(&f.value);
    }
    if let Some(f) = &ssl.machine_certificate_file {
        b = b.client_cert_file(&f.value);
    }
    if let Some(f) = &ssl.machine_certificate_path {
        b = b.client_cert_dir(&f.value);
    }
    if let Some(f) = &ssl.machine_certificate_chain_file {
        b = b.client_chain_file(&f.value);
    }
    if let Some(p) = &ssl.protocol {
        let SslProtocols { tls12, tls13, .. } = p.value;
        let mut versions = Vec::new();
        if tls12 {
            versions.push(TlsVersion::Tls12);
        }
        if tls13 {
            versions.push(TlsVersion::Tls13);
        }
        b = b.versions(&versions);
    }
    if let Some(f) = &ssl.ca_revocation_file {
        b = b.crl_file(&f.value);
    }
    if let Some(f) = &ssl.ca_revocation_path {
        b = b.crl_dir(&f.value);
    }
    if let Some(c) = &ssl.ca_revocation_check {
        let check = match c.value {
            SslRevocationCheck::Chain => Some(RevocationCheck::Chain),
            SslRevocationCheck::Leaf => Some(RevocationCheck::Leaf),
            _ => None,
        };
        if check.is_some() && !ssl.verifies() {
            return Err(refuse(
                c.span,
                "SSLProxyCARevocationCheck needs the chain verified: it has no effect with SSLProxyVerify none (remove one of the two)".to_owned(),
            ));
        }
        b = b.crl_check(check);
    }
    b.build().map_err(|e| {
        let span = error_span(ssl, &e);
        refuse(span, format!("SSLProxy*: {e}"))
    })
}

/// The directive a [`TlsError`] is about: the one naming its file (or the directory it is
/// in), else the first `SSLProxy*` line of the server.
fn error_span(ssl: &SslProxySettings, error: &TlsError) -> Span {
    let path = match error {
        TlsError::Read { path, .. } => Some(path.as_path()),
        TlsError::Pem { path, .. } | TlsError::ClientCert { path, .. } => path.as_deref(),
        _ => None,
    };
    let files = [
        &ssl.ca_certificate_file,
        &ssl.ca_certificate_path,
        &ssl.machine_certificate_file,
        &ssl.machine_certificate_path,
        &ssl.machine_certificate_chain_file,
        &ssl.ca_revocation_file,
        &ssl.ca_revocation_path,
    ];
    let names = |p: &Path| {
        files
            .iter()
            .filter_map(|f| f.as_ref())
            .find(|f| f.value == p || p.parent() == Some(f.value.as_path()))
            .map(|f| f.span)
    };
    let fallback = || {
        let mut spans = files
            .iter()
            .filter_map(|f| f.as_ref().map(|f| f.span))
            .chain(ssl.protocol.as_ref().map(|p| p.span))
            .chain(ssl.engine.as_ref().map(|e| e.span))
            .collect::<Vec<_>>();
        spans.sort();
        spans.first().copied().unwrap_or_default()
    };
    path.and_then(names).unwrap_or_else(fallback)
}
