//! What proxy-balancer does with each directive and parameter of Apache's proxy modules:
//! applied, refused, or read and reported as not applied.
//!
//! Every directive of mod_proxy, mod_proxy_balancer (which has none of its own: its
//! `BalancerMember`, `BalancerGrowth` … are mod_proxy's), mod_proxy_hcheck, mod_proxy_wstunnel,
//! mod_lbmethod_heartbeat, mod_heartmonitor and mod_headers, every worker and balancer
//! parameter of `ProxyPass`/`BalancerMember`/`ProxySet`, the `ProxyPass` flags, and the
//! directives of other modules that change where a request goes or who may make it
//! (`RewriteRule`, `Require`, `SSLEngine` …) has an [`Entry`] here with its [`State`]:
//!
//! * [`State::Applied`]: the proxy does what Apache does (the text says how, where it differs
//!   in form);
//! * [`State::Refused`]: the parser refuses the line with a line:column error saying why;
//! * [`State::NotApplied`]: the line is read, listed in [`Config::skipped`](crate::Config::skipped)
//!   (or kept on its member), and the [doctor](crate::doctor)'s `not-applied` rule says
//!   "not applied by proxy-balancer" and what that means for the operator, with a severity:
//!   a note when nothing an operator relies on changes, a warning when behaviour differs,
//!   an error when an access rule fails open.
//!
//! The table of `docs/apache-directives.md` is [`markdown`]'s output (a test keeps them
//! equal).
//!
//! ```
//! use proxy_balancer_apache_config::registry::{self, State};
//! use proxy_balancer_apache_config::doctor::Severity;
//!
//! assert!(matches!(registry::directive("proxypass").map(|e| e.state), Some(State::Applied(_))));
//! assert!(matches!(registry::directive("ProxyRemote").map(|e| e.state), Some(State::Refused(_))));
//! assert!(matches!(
//!     registry::directive("Require").map(|e| e.state),
//!     Some(State::NotApplied { severity: Severity::Error, .. })
//! ));
//! assert!(matches!(
//!     registry::worker_param("SMAX").map(|e| e.state),
//!     Some(State::NotApplied { severity: Severity::Note, .. })
//! ));
//! assert!(registry::directive("LoadModule").is_none());
//! ```

use crate::ast::Span;
use crate::doctor::Severity;
use crate::error::{ParseError, ParseErrorKind};

/// What an [`Entry`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A directive (`ProxyPass`), or a block (`<Proxy>`, written with its brackets).
    Directive,
    /// A worker parameter: `BalancerMember url key=value`, `ProxyPass path url key=value`,
    /// `ProxySet url key=value`.
    WorkerParam,
    /// A balancer parameter: `ProxySet balancer://name key=value`,
    /// `ProxyPass path balancer://name key=value`.
    BalancerParam,
    /// A word or key of `ProxyPass` itself, not a worker's (`nocanon`, `mapping=`).
    ProxyPassFlag,
}

impl Kind {
    /// How the docs' table names the kind.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Directive => "directive",
            Self::WorkerParam => "worker parameter",
            Self::BalancerParam => "balancer parameter",
            Self::ProxyPassFlag => "ProxyPass flag",
        }
    }
}

/// What proxy-balancer does with a directive or parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Applied as Apache applies it; the text says what it does here.
    Applied(&'static str),
    /// Refused by the parser with a line:column error; the text says why.
    Refused(&'static str),
    /// Read, not applied, and reported by the doctor's `not-applied` rule with this
    /// severity; the text says what that means for the operator.
    NotApplied {
        /// How much it matters: [`Severity::Note`] when nothing an operator relies on
        /// changes, [`Severity::Warning`] when behaviour differs from Apache's,
        /// [`Severity::Error`] when an access rule fails open.
        severity: Severity,
        /// What not applying it means for the operator.
        means: &'static str,
    },
}

impl State {
    /// `applied`, `refused` or `not applied`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied(_) => "applied",
            Self::Refused(_) => "refused",
            Self::NotApplied { .. } => "not applied",
        }
    }

    /// The text: how it is applied, why it is refused, or what not applying it means.
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            Self::Applied(t) | Self::Refused(t) | Self::NotApplied { means: t, .. } => t,
        }
    }
}

/// One directive or parameter and its [`State`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The name as Apache's manual writes it (`ProxyPass`, `<Proxy>`, `loadfactor`).
    pub name: &'static str,
    /// What it is.
    pub kind: Kind,
    /// The Apache module that defines it (`mod_proxy`).
    pub module: &'static str,
    /// What proxy-balancer does with it.
    pub state: State,
}

const fn e(name: &'static str, kind: Kind, module: &'static str, state: State) -> Entry {
    Entry {
        name,
        kind,
        module,
        state,
    }
}

use Kind::{BalancerParam as B, Directive as D, ProxyPassFlag as F, WorkerParam as W};
use State::{Applied as A, Refused as R};

const fn note(means: &'static str) -> State {
    State::NotApplied {
        severity: Severity::Note,
        means,
    }
}

const fn warn(means: &'static str) -> State {
    State::NotApplied {
        severity: Severity::Warning,
        means,
    }
}

const fn open(means: &'static str) -> State {
    State::NotApplied {
        severity: Severity::Error,
        means,
    }
}

const PROXY: &str = "mod_proxy";
const HCHECK: &str = "mod_proxy_hcheck";
const HEADERS: &str = "mod_headers";
const HEARTMONITOR: &str = "mod_heartmonitor";
const SSL: &str = "mod_ssl";
const REWRITE: &str = "mod_rewrite";
const AUTHZ: &str = "mod_authz_core";
const ACCESS_COMPAT: &str = "mod_access_compat";

const ALIAS: &str = "mod_alias";
/// Directives of proxy-balancer's own, which no Apache module has.
const OURS: &str = "proxy-balancer";
const WSTUNNEL: &str = "mod_proxy_wstunnel";

/// A mod_proxy_wstunnel directive of httpd's development branch, not of 2.4.71.
const NOT_IN_2_4: &str = "not a directive of Apache 2.4.71, which refuses it as an invalid command (it is mod_proxy_wstunnel's in httpd's development branch): a WebSocket tunnel closes when nothing moves for the larger of the member's timeout and Timeout, as in 2.4.71";

/// What a redirect that is not applied means.
const REDIRECT: &str = "the redirect is not answered: the request goes to the ProxyPass routes as it is (or gets 404 where none matches)";

/// What an access rule that is not applied means.
const FAILS_OPEN: &str = "the access rule is not enforced: the requests it guards are proxied to anyone who reaches the proxy (it fails open); enforce it in front of the proxy or in the backend, and remove it here";

/// Every directive and parameter, in the order of the docs' table.
pub static ENTRIES: &[Entry] = &[
    // ----- mod_proxy directives -----
    e("BalancerGrowth", D, PROXY, A("the manager can add this many members to each balancer (capped at 100)")),
    e("BalancerInherit", D, PROXY, A("whether a <VirtualHost> gets the main server's balancers")),
    e("BalancerMember", D, PROXY, A("a member of the balancer, with its worker parameters")),
    e("BalancerPersist", D, PROXY, A("balancer-manager changes are kept across restarts; a member the configuration removes stays removed")),
    e("NoProxy", D, PROXY, note("it only exempts hosts from ProxyRemote, which proxy-balancer refuses: nothing changes")),
    e("<Proxy>", D, PROXY, A("a balancer's block (BalancerMember, ProxySet); other <Proxy> blocks are read for ProxySet and access rules")),
    e("Proxy100Continue", D, PROXY, A("whether Expect: 100-continue is forwarded to members")),
    e("ProxyAddHeaders", D, PROXY, A("X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Server on proxied requests")),
    e("ProxyBadHeader", D, PROXY, A("what a malformed header line from a member does")),
    e("ProxyBlock", D, PROXY, open("requests to the hosts, domains or words it lists are not blocked (Apache answers 403 for a member or URL whose host matches): they are proxied")),
    e("ProxyDomain", D, PROXY, note("it only serves forward proxies on an intranet; proxy-balancer is a reverse proxy: nothing changes")),
    e("ProxyErrorOverride", D, PROXY, A("members' error pages are replaced by the proxy's")),
    e("ProxyIOBufferSize", D, PROXY, A("the size of the buffer member bodies are read with")),
    e("<ProxyMatch>", D, PROXY, A("as <Proxy>, for the URLs the regular expression matches")),
    e("ProxyMaxForwards", D, PROXY, warn("no Max-Forwards header is added to requests that have none (Apache adds Max-Forwards: N, as with its default -1 it does not): a loop between proxies is not cut by it")),
    e("ProxyPass", D, PROXY, A("routes a path to a balancer or a URL; `!` excludes a path")),
    e("ProxyPassInherit", D, PROXY, A("whether a <VirtualHost> gets the main server's ProxyPass lines, as the manual says (Apache 2.4.71 was seen to keep them with Off: here Off does drop them)")),
    e("ProxyPassInterpolateEnv", D, PROXY, warn("${VAR} in lines marked interpolate is not replaced: there is no per-request environment (SetEnv, RewriteRule [E=]) to fill it from, so the text is used as written")),
    e("ProxyPassMatch", D, PROXY, A("routes the paths a regular expression matches, with $1 … $9 in the target")),
    e("ProxyPassReverse", D, PROXY, A("rewrites Location, Content-Location and URI headers of member answers")),
    e("ProxyPassReverseCookieDomain", D, PROXY, A("rewrites the domain= of members' Set-Cookie headers")),
    e("ProxyPassReverseCookiePath", D, PROXY, A("rewrites the path= of members' Set-Cookie headers")),
    e("ProxyPreserveHost", D, PROXY, A("the client's Host is sent to members")),
    e("ProxyReceiveBufferSize", D, PROXY, note("member connections use the system's TCP receive buffer size (a member's receivebuffersize= is applied)")),
    e("ProxyRemote", D, PROXY, R("forwarding requests to another proxy is not done: requests would go straight to the members")),
    e("ProxyRemoteMatch", D, PROXY, R("forwarding requests to another proxy is not done: requests would go straight to the members")),
    e("ProxyRequests", D, PROXY, R("ProxyRequests On makes a forward proxy, which proxy-balancer is not; ProxyRequests Off (the default) is accepted")),
    e("ProxySet", D, PROXY, A("parameters of a balancer or of a member")),
    e("ProxySourceAddress", D, PROXY, warn("member connections leave from the address the system picks, not this one: a firewall or member that admits only this source address refuses them")),
    e("ProxyStatus", D, PROXY, note("there is no mod_status page; the balancer-manager (HTML and JSON) shows the balancers")),
    e("ProxyTimeout", D, PROXY, A("the default timeout of members")),
    e("ProxyVia", D, PROXY, A("the Via header of requests and answers")),
    // ----- proxy-balancer's own -----
    e("BalancerShare", D, OURS, A("proxy-balancer's own (Apache has none): the balancer-manager's edits shared with every instance of a fleet through etcd (BalancerShare etcd http://host:2379 [prefix=/proxy-balancer/] [instance=NAME]); main server only; needs the proxy-balancer `etcd` feature; see docs/fleet.md")),
    e("ProxyDiscoverNameserver", D, OURS, A("not Apache's: the nameservers (IP[:port], over UDP and TCP) that discover= members are asked from, instead of /etc/resolv.conf; main server only")),
    // ----- mod_proxy_hcheck -----
    e("ProxyHCExpr", D, HCHECK, A("a condition on a health check's answer, for hcexpr=")),
    e("ProxyHCTemplate", D, HCHECK, A("health-check parameters for hctemplate=")),
    e("ProxyHCTPsize", D, HCHECK, A("how many health checks run at once")),
    // ----- mod_heartmonitor and mod_lbmethod_heartbeat -----
    e("HeartbeatListen", D, HEARTMONITOR, A("receives mod_heartbeat's datagrams, for lbmethod=heartbeat")),
    e("HeartbeatMaxServers", D, HEARTMONITOR, A("how many heartbeat senders are tracked (10 by default; 0: no limit)")),
    e("HeartbeatStorage", D, "mod_heartmonitor, mod_lbmethod_heartbeat", note("not needed: the load reports live in each member's state; this file is neither written nor read")),
    // ----- mod_headers -----
    e("Header", D, HEADERS, A("response headers: add, set, append, merge, setifempty, unset, edit, echo, with always, env= and simple expr=")),
    e("RequestHeader", D, HEADERS, A("request headers sent to members")),
    // ----- mod_proxy_wstunnel -----
    e("ProxyWebsocketFallbackToProxyHttp", D, WSTUNNEL, warn("Off: ws:// and wss:// members are still served as mod_proxy_http serves them (On, the default, is accepted without a word); Apache 2.4.71 with Off hands them to mod_proxy_wstunnel, which sends Upgrade: WebSocket whatever case the client used, answers a ws:// request without Upgrade from its own document root (404 was seen), and does not close an idle tunnel at the member's timeout")),
    e("ProxyWebsocketIdleTimeout", D, WSTUNNEL, R(NOT_IN_2_4)),
    e("ProxyWebsocketAsync", D, WSTUNNEL, R(NOT_IN_2_4)),
    e("ProxyWebsocketAsyncDelay", D, WSTUNNEL, R(NOT_IN_2_4)),
    // ----- other modules: routing and access -----
    e("RewriteEngine", D, REWRITE, warn("RewriteEngine On: rewrite rules are not run (RewriteEngine Off is accepted without a word)")),
    e("RewriteRule", D, REWRITE, warn("the rule is not run: a [P] rule proxies in Apache, and rules rewrite, redirect or forbid ([F]) requests; here requests go to the ProxyPass routes unchanged")),
    e("RewriteCond", D, REWRITE, warn("a condition of a RewriteRule, which is not run")),
    e("Redirect", D, ALIAS, warn(REDIRECT)),
    e("RedirectMatch", D, ALIAS, warn(REDIRECT)),
    e("RedirectPermanent", D, ALIAS, warn(REDIRECT)),
    e("RedirectTemp", D, ALIAS, warn(REDIRECT)),
    e("Protocols", D, "core", A("over TLS, the ALPN protocols offered, of h2 and http/1.1 (without the line both are offered; Apache's default is http/1.1 alone); h2c is read but a plain port takes h2c by prior knowledge whatever the line says; other protocols are refused")),
    e("SSLCACertificateFile", D, SSL, A("the CAs client certificates must chain to (SSLVerifyClient optional or require)")),
    e("SSLCACertificatePath", D, SSL, warn("the directory is not read: client certificates are checked against SSLCACertificateFile only, so SSLVerifyClient without it refuses the configuration")),
    e("SSLCertificateChainFile", D, SSL, A("certificates sent after the server's (read when the site is built)")),
    e("SSLCertificateFile", D, SSL, A("the server's certificate, PEM (one per server; a second, RSA beside ECDSA, is refused); a file that cannot be read is a start error")),
    e("SSLCertificateKeyFile", D, SSL, A("the certificate's private key, PEM; a key that does not match the certificate is a start error")),
    e("SSLCipherSuite", D, SSL, warn("the cipher list is not read: rustls's own suites are offered (TLS 1.3's AES-GCM and ChaCha20-Poly1305, TLS 1.2's ECDHE with AES-GCM or ChaCha20-Poly1305: forward secrecy and AEAD only), which may include one the list leaves out")),
    e("SSLEngine", D, SSL, A("the server (main or <VirtualHost>) serves HTTPS with ALPN h2 and http/1.1 (rustls); a <VirtualHost> without its own takes the main server's, as mod_ssl; optional and address forms are refused")),
    e("SSLHonorCipherOrder", D, SSL, A("the server's cipher suite order wins over the client's")),
    e("SSLProtocol", D, SSL, A("the TLS versions offered, of TLSv1.2 and TLSv1.3 (rustls has no older ones: TLSv1 and TLSv1.1 are never offered; a line leaving neither is refused)")),
    e("SSLSessionCache", D, SSL, note("rustls keeps its own session cache in memory per process (and session tickets): resumption works without it")),
    e("SSLSessionTickets", D, SSL, note("rustls's session resumption is used as it is")),
    e("SSLStrictSNIVHostCheck", D, SSL, warn("a client without SNI is served the default virtual host's certificate, not refused")),
    e("SSLUseStapling", D, SSL, note("no OCSP response is stapled to the handshake: clients that check revocation ask the CA themselves")),
    e("SSLVerifyDepth", D, SSL, warn("client certificate chains are not limited in depth: a client certificate signed by an intermediate the client sends is accepted where Apache's default depth 1 refuses it")),
    e("SSLRequire", D, SSL, open(FAILS_OPEN)),
    e("SSLRequireSSL", D, SSL, open(FAILS_OPEN)),
    e("SSLVerifyClient", D, SSL, open("in the server or a <VirtualHost> it is applied (none, optional, require: the client's certificate checked against SSLCACertificateFile in the handshake); in a <Location> or <Directory> it is not: client certificates are not asked for there, and the requests it guards are proxied to anyone who reaches the proxy (it fails open)")),
    e("SSLProxyCACertificateFile", D, SSL, A("the CA certificates (a PEM bundle) members' certificates are verified against, instead of the system's store; a file that cannot be read or holds no certificate refuses the site")),
    e("SSLProxyCACertificatePath", D, SSL, A("every PEM file of the directory is read for CA certificates (OpenSSL's hash links are not needed)")),
    e("SSLProxyCARevocationCheck", D, SSL, A("chain or leaf: members' certificates are checked against the revocation lists (a certificate no list covers fails, as Apache); needs SSLProxyVerify to verify")),
    e("SSLProxyCARevocationFile", D, SSL, A("the revocation lists (PEM) for SSLProxyCARevocationCheck")),
    e("SSLProxyCARevocationPath", D, SSL, A("every PEM revocation list of the directory, for SSLProxyCARevocationCheck")),
    e("SSLProxyCheckPeerCN", D, SSL, A("Off turns the name check off (Apache 2.4.21+); the legacy CN-only comparison (CN on, Name off) checks the subjectAltName as SSLProxyCheckPeerName does")),
    e("SSLProxyCheckPeerExpire", D, SSL, A("an expired or not yet valid member certificate fails the handshake; Off takes it when SSLProxyVerify does not verify the chain (a verified chain checks the dates anyway, as Apache 2.4.71 does)")),
    e("SSLProxyCheckPeerName", D, SSL, A("the member's certificate must be for the member URL's host (Off: any name), with or without SSLProxyVerify, as Apache")),
    e("SSLProxyCipherSuite", D, SSL, warn("the cipher list is not applied: rustls offers its own fixed list of modern suites (TLS 1.3 AES-GCM and ChaCha20-Poly1305, TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305), which already keeps the weak ones out; an OpenSSL cipher string cannot be read")),
    e("SSLProxyEngine", D, SSL, A("On: this server's requests may go to https://, wss:// and h2:// members; a TLS member used by a server without it refuses the site at start (Apache answers 500 per request, AH00961)")),
    e("SSLProxyMachineCertificateChainFile", D, SSL, A("CA certificates sent after the client certificate")),
    e("SSLProxyMachineCertificateFile", D, SSL, A("the client certificate and its unencrypted key, one PEM file, sent to members that ask for one (mTLS); one certificate and key in all")),
    e("SSLProxyMachineCertificatePath", D, SSL, A("as SSLProxyMachineCertificateFile for the files of a directory; one certificate and key in all")),
    e("SSLProxyProtocol", D, SSL, A("the TLS versions offered to members: TLSv1.2 and TLSv1.3 (all means those two; naming SSLv3, TLSv1 or TLSv1.1 is refused: rustls has no older version)")),
    e("SSLProxyVerify", D, SSL, A("require or optional: the member's certificate chain is verified; none or optional_no_ca: not (its name and dates still are, as Apache). Unset verifies, where Apache does not: write SSLProxyVerify none for Apache's behaviour")),
    e("SSLProxyVerifyDepth", D, SSL, note("rustls does not limit a chain's length: a valid chain longer than the depth is accepted where Apache refuses it")),
    e("<Location>", D, "core", A("ProxyPass, Header and the balancer-manager for the paths under it; other lines in it are reported one by one")),
    e("<LocationMatch>", D, "core", A("as <Location>, for the paths the regular expression matches")),
    e("<If>", D, "core", warn("the lines inside are not applied, whether the condition holds or not (a Header, RequestHeader or access rule in it is dropped: an access rule there fails open)")),
    e("<ElseIf>", D, "core", warn("the lines inside are not applied, whether the condition holds or not (a Header, RequestHeader or access rule in it is dropped: an access rule there fails open)")),
    e("<Else>", D, "core", warn("the lines inside are not applied, whether the condition holds or not (a Header, RequestHeader or access rule in it is dropped: an access rule there fails open)")),
    e("Require", D, AUTHZ, open("outside the balancer-manager's <Location> (and other than Require all granted): the access rule is not enforced, so the requests it guards are proxied to anyone who reaches the proxy (it fails open); enforce it in front of the proxy or in the backend")),
    e("<RequireAll>", D, AUTHZ, open(FAILS_OPEN)),
    e("<RequireAny>", D, AUTHZ, open(FAILS_OPEN)),
    e("<RequireNone>", D, AUTHZ, open(FAILS_OPEN)),
    e("<Limit>", D, "core", open(FAILS_OPEN)),
    e("<LimitExcept>", D, "core", open(FAILS_OPEN)),
    e("AuthType", D, "mod_authn_core", open("authentication is not asked for: the requests it guards are proxied to anyone who reaches the proxy (it fails open)")),
    e("Order", D, ACCESS_COMPAT, warn("Order allow,deny denies everyone no Allow line admits (Apache answers 403), and here everyone is admitted: with Allow from all, as is usual, nothing changes; the Allow and Deny lines are reported one by one (Order deny,allow, which admits everyone no Deny line refuses, is accepted without a word)")),
    e("Allow", D, ACCESS_COMPAT, open("other than Allow from all: the access rule is not enforced: the requests it guards are proxied to anyone who reaches the proxy (it fails open); enforce it in front of the proxy or in the backend, and remove it here")),
    e("Deny", D, ACCESS_COMPAT, open(FAILS_OPEN)),
    e("Satisfy", D, ACCESS_COMPAT, open(FAILS_OPEN)),
    // ----- worker parameters -----
    e("loadfactor", W, PROXY, A("the member's weight")),
    e("lbset", W, PROXY, A("the member's set: lower sets are tried first")),
    e("route", W, PROXY, A("the member's route for sticky sessions")),
    e("redirect", W, PROXY, A("sticky requests for this member go to the member with this route")),
    e("retry", W, PROXY, A("how long a member in error is left alone")),
    e("status", W, PROXY, A("the member's initial status flags")),
    e("connectiontimeout", W, PROXY, A("the connect timeout: a connect that takes longer is a connect failure (the member is put in error, the request goes to another member)")),
    e("timeout", W, PROXY, A("bounds each wait on the member, as Apache's per-read timeout: for the answer's head (504 past it), for each piece of its body (the answer is cut short past it), and for the member to take the request body; time spent waiting for the client is not counted")),
    e("ttl", W, PROXY, A("how long an idle connection is kept")),
    e("disablereuse", W, PROXY, A("a new connection per request")),
    e("enablereuse", W, PROXY, A("the inverse of disablereuse")),
    e("keepalive", W, PROXY, A("TCP keep-alive probes on member connections")),
    e("iobuffersize", W, PROXY, A("the size of the buffer the member's body is read with (and each way of a WebSocket tunnel, 8 KiB without it)")),
    e("receivebuffersize", W, PROXY, A("the TCP receive buffer of member connections")),
    e("responsefieldsize", W, PROXY, A("the longest header line accepted from the member")),
    e("max", W, PROXY, A("a hard cap on the member's connections, idle and in use: a request that needs one more waits for one to be free (see acquire; without it, as long as it takes, as Apache); max=0: no cap")),
    e("min", W, PROXY, note("no connections are opened ahead of requests; idle ones are kept up to max")),
    e("smax", W, PROXY, note("idle connections are kept up to max, each until ttl: there is no second limit")),
    e("acquire", W, PROXY, A("how long a request waits for a free connection when max are open; past it the member is put in error and the request goes to another member, or gets 503 (AH00941), as Apache")),
    e("ping", W, PROXY, A("requests with a body are sent with Expect: 100-continue and their body held; a member that does not answer 100 Continue within ping is put in error and the request goes to another member (503 when none), as Apache's mod_proxy_http")),
    e("upgrade", W, PROXY, A("the protocol upgrades (WebSocket) sent to the member with Connection: Upgrade and tunnelled when it answers 101 (ANY: any; a name or a comma-separated list; a ws:// member takes WebSocket without it); the member stays busy until the tunnel ends, which is when either side closes or nothing moves for the larger of timeout and Timeout")),
    e("addressttl", W, PROXY, A("how long a member's resolved addresses are kept (-1, the default: until the proxy stops; 0: resolved for every connection); when they all fail to connect the name is resolved again")),
    e("flushpackets", W, PROXY, note("every chunk a member sends is passed to the client as it arrives (as flushpackets=on): no buffering to tune, and small chunks cost a write each")),
    e("flushwait", W, PROXY, note("every chunk a member sends is passed to the client as it arrives: there is no wait before a flush")),
    e("secret", W, PROXY, note("an AJP secret; ajp:// members are not served, so it has no use")),
    e("flusher", W, PROXY, note("mod_proxy_fdpass's provider; fd:// members are not served, so it has no use")),
    e("mapping", W, PROXY, R("Apache refuses mapping= on a BalancerMember: it belongs on ProxyPass")),
    e("hcmethod", W, HCHECK, A("the health check's method (TCP, OPTIONS, HEAD, GET …)")),
    e("hcuri", W, HCHECK, A("the health check's path")),
    e("hcinterval", W, HCHECK, A("how often members are checked")),
    e("hcpasses", W, HCHECK, A("passes before a member is back in service")),
    e("hcfails", W, HCHECK, A("failures before a member is out of service")),
    e("hctemplate", W, HCHECK, A("the parameters of a ProxyHCTemplate")),
    e("hcexpr", W, HCHECK, A("a ProxyHCExpr the answer must meet")),
    e("slowstart", W, OURS, A("not Apache's (HAProxy's slowstart): after the member becomes usable again (back from an error, a failed health check, an ejection, a drain or a manager edit) or is added to a running balancer, its weight ramps from a small share to full over this many seconds, for the weighted lbmethods (docs/selection.md says which); Off or 0: none")),
    e("discover", W, OURS, A("not Apache's: dns or srv[:NAME] on a BalancerMember makes the line a template whose members are discovered from the host's A/AAAA records or from SRV records, asked again as their TTL says (1 s to 60 s); a failed lookup keeps the last members; a name without records keeps them 30 s, then removes them; http, ws and h2c members only (a TLS member's certificate would be checked against the address)")),
    // ----- balancer parameters -----
    e("lbmethod", B, "mod_proxy_balancer", A("byrequests, bytraffic, bybusyness or heartbeat, as Apache; and, not Apache's: hash (consistent hashing of hashkey over hashring), p2c (the less busy of two random members) and p2c-ewma (the lower of two random members' peak-EWMA latency × requests in flight); see docs/selection.md")),
    e("maxattempts", B, "mod_proxy_balancer", A("failover attempts before giving up")),
    e("nofailover", B, "mod_proxy_balancer", A("sticky sessions are not moved to another member")),
    e("stickysession", B, "mod_proxy_balancer", A("the cookie or parameter that carries the route")),
    e("stickysessionsep", B, "mod_proxy_balancer", A("the separator before the route")),
    e("scolonpathdelim", B, "mod_proxy_balancer", A("; also ends the route in a URL")),
    e("timeout", B, "mod_proxy_balancer", A("how long to wait for a free member")),
    e("failonstatus", B, "mod_proxy_balancer", A("member statuses that put it in error")),
    e("failontimeout", B, "mod_proxy_balancer", A("a read timeout puts the member in error")),
    e("nonce", B, "mod_proxy_balancer", A("the balancer-manager's nonce (None turns the check off)")),
    e("growth", B, "mod_proxy_balancer", A("members the manager can add")),
    e("forcerecovery", B, "mod_proxy_balancer", A("all members in error are retried at once")),
    e("hashkey", B, OURS, A("not Apache's: what lbmethod=hash hashes: client (the client's IP address, the default), header:NAME, cookie:NAME, path or uri; a request without the key is balanced as byrequests; read only with lbmethod=hash")),
    e("hashring", B, OURS, A("not Apache's: how lbmethod=hash maps keys to members: maglev (the default: even shares, one lookup) or ketama (nginx's hash … consistent points, so keys land where an nginx in front of the same members sends them); read only with lbmethod=hash")),
    e("ejectconsecutive", B, OURS, A("not Apache's (Envoy's outlier detection): a member that answers this many 5xx in a row is ejected (taken out of balancing for ejecttime), whatever failonstatus says; Off: not on consecutive 5xx")),
    e("ejectsuccessrate", B, OURS, A("not Apache's: a member whose share of non-5xx answers over ejectwindow falls below this percentage (over at least ejectminrequests answers) is ejected; Off: not on the success rate")),
    e("ejectwindow", B, OURS, A("not Apache's: the window of ejectsuccessrate (default 10 s)")),
    e("ejectminrequests", B, OURS, A("not Apache's: the answers a window needs before ejectsuccessrate judges it (default 20)")),
    e("ejecttime", B, OURS, A("not Apache's: how long a first ejection lasts (default 30 s); the k-th lasts k times as long, up to ejectmaxtime")),
    e("ejectmaxtime", B, OURS, A("not Apache's: the longest ejection (default 300 s)")),
    e("ejectmax", B, OURS, A("not Apache's: at most this percentage of the balancer's members (rounded down) is ejected at once (default 50)")),
    e("panic", B, OURS, A("not Apache's (Envoy's panic threshold): when fewer than this percentage of a set's members are usable, members in error, failing their health check or ejected are balanced over as if usable (forcerecovery is the case of none usable); Off: none")),
    e("retrybudget", B, OURS, A("not Apache's: the retries of idempotent requests after a failure once sent (the balancer's retry_idempotent option) may add at most this percentage of the requests (default 20, tower's), plus retrybudgetmin a second; a retry past the budget is not made and the client gets the failure; Off: bounded by maxattempts only; Apache's failover after a failed connection is never budgeted")),
    e("retrybudgetmin", B, OURS, A("not Apache's: retries a second the budget always allows (default 10)")),
    e("retrybudgetwindow", B, OURS, A("not Apache's: how long a request's share of the budget counts, 1 to 60 s (default 10 s)")),
    e("ewmadecay", B, OURS, A("not Apache's: how fast lbmethod=p2c-ewma forgets a slow answer (default 10 s, as tower's and linkerd's); read only with lbmethod=p2c-ewma")),
    // ----- ProxyPass flags -----
    e("nocanon", F, PROXY, A("the path is forwarded as the client sent it")),
    e("noquery", F, PROXY, A("as in Apache, the query string is still forwarded to HTTP members (Apache's noquery only concerns FastCGI's SCRIPT_FILENAME)")),
    e("interpolate", F, PROXY, R("refused when the site is built: ${VAR} interpolation from a per-request environment is not done")),
    e("mapping", F, PROXY, R("refused when the site is built: mapping=encoded and mapping=servlet change how every <Location> matches, which is not done")),
];

/// The block name without `<`, `>` and a leading `/`, for comparing `<Proxy>` with `<Proxy`.
fn bare(name: &str) -> &str {
    name.trim_start_matches('<')
        .trim_start_matches('/')
        .trim_end_matches('>')
}

fn find(kind: Kind, name: &str) -> Option<&'static Entry> {
    ENTRIES
        .iter()
        .find(|e| e.kind == kind && bare(e.name).eq_ignore_ascii_case(bare(name)))
}

/// The entry of a directive or block (any case; a block with or without its brackets).
#[must_use]
pub fn directive(name: &str) -> Option<&'static Entry> {
    find(Kind::Directive, name)
}

/// The entry of a worker parameter (any case).
#[must_use]
pub fn worker_param(key: &str) -> Option<&'static Entry> {
    find(Kind::WorkerParam, key)
}

/// The entry of a balancer parameter (any case).
#[must_use]
pub fn balancer_param(key: &str) -> Option<&'static Entry> {
    find(Kind::BalancerParam, key)
}

/// The entry of a `ProxyPass` flag or key that is not a worker's or a balancer's (any case).
#[must_use]
pub fn proxy_pass_flag(key: &str) -> Option<&'static Entry> {
    find(Kind::ProxyPassFlag, key)
}

/// The state of this directive line: the registry's, except where the arguments decide
/// (`ProxyRequests Off`, `RewriteEngine Off`, `SSLEngine Off`,
/// `ProxyWebsocketFallbackToProxyHttp On`: Apache's defaults;
/// `Require all granted`, `Allow from all`: admitting everyone is what the proxy does;
/// accepted as applied).
#[must_use]
pub fn directive_state(name: &str, args: &[&str]) -> Option<State> {
    let entry = directive(name)?;
    let off = matches!(args, [one] if one.eq_ignore_ascii_case("off"));
    let default_off = ["ProxyRequests", "RewriteEngine", "SSLEngine"]
        .iter()
        .any(|d| d.eq_ignore_ascii_case(name));
    if default_off && off {
        return Some(State::Applied(DEFAULT_OFF));
    }
    // No client certificate asked for: what the proxy does.
    if name.eq_ignore_ascii_case("SSLVerifyClient")
        && matches!(args, [one] if one.eq_ignore_ascii_case("none"))
    {
        return Some(State::Applied(DEFAULT_OFF));
    }
    // `ProxyWebsocketFallbackToProxyHttp On`: ws:// members served by mod_proxy_http, as
    // here.
    let on = matches!(args, [one] if one.eq_ignore_ascii_case("on"));
    if on && name.eq_ignore_ascii_case("ProxyWebsocketFallbackToProxyHttp") {
        return Some(State::Applied(DEFAULT_OFF));
    }
    // Access rules that admit everyone: not enforcing them changes nothing.
    let words: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let admits_all = match name.to_ascii_lowercase().as_str() {
        "require" => words == ["all", "granted"],
        "allow" => words == ["from", "all"],
        "order" => words.concat() == "deny,allow",
        _ => false,
    };
    if admits_all {
        return Some(State::Applied(DEFAULT_OFF));
    }
    Some(entry.state)
}

/// For the parser: a directive that no arm of it reads. A [`State::Refused`] one is an error
/// with its place and why; `Ok(false)` for a line that is Apache's default and changes
/// nothing (`ProxyRequests Off`: accepted, not listed); `Ok(true)` for anything else (the
/// parser lists it as skipped and the doctor reports what the registry says).
pub(crate) fn unread(name: &str, args: &[&str], span: Span) -> Result<bool, ParseError> {
    match directive_state(name, args) {
        Some(State::Refused(why)) => Err(ParseError::new(
            span,
            ParseErrorKind::Unsupported,
            format!("{name} is refused by proxy-balancer: {why}"),
        )),
        Some(State::Applied(DEFAULT_OFF)) => Ok(false),
        _ => Ok(true),
    }
}

/// The state of `ProxyRequests Off`, `RewriteEngine Off`, `SSLEngine Off`,
/// `ProxyWebsocketFallbackToProxyHttp On`, and of the access rules that admit everyone
/// (`Require all granted`, `Allow from all`, `Order deny,allow`): Apache's default, or what
/// the proxy does anyway.
const DEFAULT_OFF: &str = "Off, the default";

/// The table of `docs/apache-directives.md`: one row per entry, grouped by kind.
#[must_use]
pub fn markdown() -> String {
    let mut out = String::from(
        "| directive or parameter | kind | module | state | what it means |\n| --- | --- | --- | --- | --- |\n",
    );
    for e in ENTRIES {
        let state = match e.state {
            State::NotApplied { severity, .. } => format!("not applied ({severity})"),
            s => s.label().to_owned(),
        };
        // Names are code; in the text, `<Proxy>` must not read as an HTML tag.
        let text = e
            .state
            .text()
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} | {state} | {text} |\n",
            e.name,
            e.kind.as_str(),
            e.module,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache 2.4.71's mod_proxy_wstunnel has `ProxyWebsocketFallbackToProxyHttp` only
    /// (`apache2 -t` refused `ProxyWebsocketIdleTimeout 3` as "Invalid command").
    #[test]
    fn websocket_directives_as_apache_2_4_71_reads_them() {
        let on = crate::parse("ProxyWebsocketFallbackToProxyHttp On\n").expect("accepted");
        assert!(on.skipped.is_empty(), "On is what the proxy does");
        let off = crate::parse("ProxyWebsocketFallbackToProxyHttp Off\n").expect("read");
        assert_eq!(off.skipped.len(), 1, "Off is reported");
        for line in [
            "ProxyWebsocketIdleTimeout 3",
            "ProxyWebsocketAsync On",
            "ProxyWebsocketAsyncDelay 100",
        ] {
            let errors = crate::parse(&format!("\n{line}\n")).expect_err(line);
            let text = errors.to_string();
            assert!(
                text.contains("line 2, column 1") && text.contains("2.4.71"),
                "{line}: {text}"
            );
        }
    }

    #[test]
    fn names_are_unique_per_kind() {
        for (i, a) in ENTRIES.iter().enumerate() {
            for b in &ENTRIES[i + 1..] {
                assert!(
                    !(a.kind == b.kind && a.name.eq_ignore_ascii_case(b.name)),
                    "{} twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn every_worker_and_balancer_key_of_the_parser_is_listed() {
        for key in crate::keys::CORE_MEMBER_KEYS
            .iter()
            .chain(crate::keys::HC_KEYS)
            .chain(crate::keys::OTHER_WORKER_KEYS)
        {
            assert!(worker_param(key).is_some(), "{key}");
        }
        for key in crate::keys::BALANCER_KEYS {
            assert!(balancer_param(key).is_some(), "{key}");
        }
    }

    #[test]
    fn lookups() {
        assert!(directive("<proxy").is_some());
        assert!(directive("Proxy").is_some());
        assert!(directive("proxymatch>").is_some());
        assert_eq!(
            directive_state("ProxyRequests", &["off"]).map(State::label),
            Some("applied")
        );
        assert_eq!(
            directive_state("ProxyRequests", &["On"]).map(State::label),
            Some("refused")
        );
        assert!(unread("ProxyRemote", &["*", "http://p"], Span::default()).is_err());
        assert_eq!(unread("ProxyStatus", &["On"], Span::default()), Ok(true));
        assert_eq!(
            unread("ProxyRequests", &["Off"], Span::default()),
            Ok(false)
        );
    }
}
