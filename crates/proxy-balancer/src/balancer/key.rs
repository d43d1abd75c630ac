//! The key of `lbmethod=hash`, taken out of the request's head without allocating.
//!
//! | `hashkey=` | key |
//! | --- | --- |
//! | `client` (default) | the client's IP address ([`client_addr`]: the request's [`PeerAddr`](crate::PeerAddr) extension, or axum's `ConnectInfo<SocketAddr>` with the `axum` feature): its 4 bytes (IPv4, also for an IPv4-mapped IPv6 address) or 16 bytes (IPv6); no port |
//! | `header:NAME` | the first value of the header, as sent |
//! | `cookie:NAME` | the first non-empty value of the cookie across the `Cookie` headers (quotes removed), found as the sticky route's cookie is |
//! | `path` | the path of the request target |
//! | `uri` | the path and query of the request target |
//!
//! An empty value counts as no key; a request without the key is balanced as byrequests
//! would among the same candidates.
//!
//! The server of this crate (`server` feature, and `Site`) puts the
//! [`PeerAddr`](crate::PeerAddr) extension on every request. An axum app served with
//! `into_make_service_with_connect_info::<SocketAddr>()` needs nothing more with the `axum`
//! feature (the address `X-Forwarded-For` is built from, the same). A library user who
//! serves the balancer from their own hyper server must insert `PeerAddr` into each
//! request's extensions for `hashkey=client`; without it every request has no key and the
//! balancer spreads them as byrequests.

use std::net::IpAddr;

use http::request::Parts;
use proxy_balancer_core::{BalancerParams, HashKey, LbMethodKind};

use crate::proxy_pass::client_addr;
use crate::sticky_route::cookie_value;

/// A request's key: borrowed from the request, or the client address's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKey<'a> {
    /// Bytes of the request's head.
    Borrowed(&'a [u8]),
    /// An IPv4 address.
    V4([u8; 4]),
    /// An IPv6 address.
    V6([u8; 16]),
}

impl<'a> RequestKey<'a> {
    /// The key of the request whose head is `parts` for a balancer with `params`: `None`
    /// unless the lbmethod is `hash` and the request has the key.
    pub(crate) fn of(params: &BalancerParams, parts: &'a Parts) -> Option<Self> {
        if !matches!(params.lb_method, LbMethodKind::Hash) {
            return None;
        }
        let key = match &params.hash_key {
            HashKey::Client => {
                // The address `X-Forwarded-For` is built from: `PeerAddr`, or axum's
                // `ConnectInfo` with the `axum` feature.
                return client_addr(&parts.extensions).map(|peer| match peer.ip().to_canonical() {
                    IpAddr::V4(v4) => Self::V4(v4.octets()),
                    IpAddr::V6(v6) => Self::V6(v6.octets()),
                });
            }
            HashKey::Header(name) => parts.headers.get(&**name)?.as_bytes(),
            HashKey::Cookie(name) => cookie_value(&parts.headers, name)?.as_bytes(),
            HashKey::Path => parts.uri.path().as_bytes(),
            HashKey::Uri => parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), |p| p.as_str())
                .as_bytes(),
            // `HashKey` is non-exhaustive to other crates only; a new kind needs a case here.
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        (!key.is_empty()).then_some(Self::Borrowed(key))
    }

    /// The key's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Borrowed(bytes) => bytes,
            Self::V4(octets) => octets,
            Self::V6(octets) => octets,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http::Request;
    use proxy_balancer_core::PeerAddr;

    use super::*;

    fn params(key: &str) -> BalancerParams {
        let mut p = BalancerParams::new("b");
        p.set("lbmethod", "hash").unwrap();
        p.set("hashkey", key).unwrap();
        p
    }

    fn parts(builder: http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    fn key_of(key: &str, parts: &Parts) -> Option<Vec<u8>> {
        RequestKey::of(&params(key), parts).map(|k| k.as_bytes().to_vec())
    }

    #[test]
    fn client_is_the_ip_without_port() {
        let mut p = parts(Request::get("/"));
        assert_eq!(key_of("client", &p), None);
        let addr: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        p.extensions.insert(PeerAddr(addr));
        assert_eq!(key_of("client", &p), Some(vec![192, 0, 2, 7]));
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:6000".parse().unwrap();
        p.extensions.insert(PeerAddr(mapped));
        assert_eq!(key_of("client", &p), Some(vec![192, 0, 2, 7]));
        let v6: SocketAddr = "[2001:db8::1]:7000".parse().unwrap();
        p.extensions.insert(PeerAddr(v6));
        let mut want = vec![0x20, 0x01, 0x0d, 0xb8];
        want.extend([0; 11]);
        want.push(1);
        assert_eq!(key_of("client", &p), Some(want));
    }

    /// An axum app served with `into_make_service_with_connect_info::<SocketAddr>()` (the
    /// README's recipe) carries `ConnectInfo`, not `PeerAddr`: `X-Forwarded-For` reads it
    /// (`client_addr`), and so must `hashkey=client`.
    #[cfg(feature = "axum")]
    #[test]
    fn client_reads_axum_connect_info() {
        let mut p = parts(Request::get("/"));
        let addr: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        p.extensions.insert(axum::extract::ConnectInfo(addr));
        assert_eq!(key_of("client", &p), Some(vec![192, 0, 2, 9]));
        // A PeerAddr wins, as for X-Forwarded-For.
        p.extensions
            .insert(PeerAddr("192.0.2.10:1".parse().unwrap()));
        assert_eq!(key_of("client", &p), Some(vec![192, 0, 2, 10]));
    }

    #[test]
    fn header_is_the_first_value() {
        let p = parts(
            Request::get("/")
                .header("x-user", "alice")
                .header("x-user", "bob"),
        );
        assert_eq!(key_of("header:X-User", &p), Some(b"alice".to_vec()));
        assert_eq!(key_of("header:X-Other", &p), None);
        let empty = parts(Request::get("/").header("x-user", ""));
        assert_eq!(key_of("header:X-User", &empty), None);
    }

    #[test]
    fn cookie_is_found_across_headers() {
        let p = parts(
            Request::get("/")
                .header("cookie", "a=1; theme=dark")
                .header("cookie", "SESSION=\"s42\"; b=2"),
        );
        assert_eq!(key_of("cookie:SESSION", &p), Some(b"s42".to_vec()));
        assert_eq!(key_of("cookie:theme", &p), Some(b"dark".to_vec()));
        assert_eq!(key_of("cookie:missing", &p), None);
    }

    #[test]
    fn path_and_uri() {
        let p = parts(Request::get("http://h/a/b?x=1"));
        assert_eq!(key_of("path", &p), Some(b"/a/b".to_vec()));
        assert_eq!(key_of("uri", &p), Some(b"/a/b?x=1".to_vec()));
        let p = parts(Request::get("/only"));
        assert_eq!(key_of("uri", &p), Some(b"/only".to_vec()));
    }

    #[test]
    fn only_for_the_hash_method() {
        let p = parts(Request::get("/a"));
        let mut other = params("path");
        other.lb_method = LbMethodKind::ByRequests;
        assert_eq!(RequestKey::of(&other, &p), None);
        assert_eq!(
            RequestKey::of(&params("path"), &p),
            Some(RequestKey::Borrowed(b"/a"))
        );
    }
}
