//! Protocol upgrades (WebSocket) through a member: which protocols a member takes
//! ([`Upgrades`], Apache's `upgrade=` and the `ws://`/`wss://` schemes), and the tunnel that
//! joins the client's upgraded connection to the member's once the member answered
//! `101 Switching Protocols`.
//!
//! What Apache 2.4.71 (mod_proxy_http, `ProxyWebsocketFallbackToProxyHttp On`, the default)
//! was seen to do on loopback, and what is done here:
//!
//! | case | Apache 2.4.71 | here |
//! | --- | --- | --- |
//! | `upgrade=websocket`, `Upgrade: websocket` | the member gets `Connection: Upgrade` and `Upgrade: websocket`; its 101 reaches the client with `Connection: Upgrade`, `Upgrade: websocket` and its other headers; bytes are copied both ways | same |
//! | no `upgrade=` on an `http://` member | the member gets neither header (it answered 426; relayed without `Upgrade`) | same |
//! | a `ws://` member (no `upgrade=`) | as `upgrade=websocket`; a request without `Upgrade` is a plain request | same |
//! | `Upgrade: foo` against `upgrade=websocket` | a plain request (`Connection: Keep-Alive`, no `Upgrade`) | same |
//! | `upgrade=ANY`, `Upgrade: foo` | tunnelled as `foo` | same |
//! | `Upgrade: websocket` without `Connection: Upgrade` | tunnelled (the `Connection` token is not required) | same (hyper's server offers the upgrade on `Upgrade` alone) |
//! | `Upgrade: WebSocket` (case) | matched without case; the member and the client see `WebSocket` as sent | same |
//! | the member answers 101 to a request that asked for no upgrade | 502, AH00898 `Unexpected Upgrade: websocket (expecting n/a)` | 502 ([`ErrorKind::Upstream`](crate::ErrorKind::Upstream)), AH00898 |
//! | the member answers 101 with another protocol (`Upgrade: foo` for `websocket`) | 502, AH00898 `Unexpected Upgrade: foo (expecting websocket)` | same |
//! | the member answers non-101 to an upgrade (`200`, `426`) | relayed as any answer; an `Upgrade` the member takes is passed with `Connection: Upgrade` | same; the connection is not reused |
//! | a silent tunnel | closed after the larger of the worker's `timeout` and the server's `Timeout` (`timeout=2`, `Timeout 5`: 5.00 s; `timeout=8`: 8.01 s) | same ([`ClientOptions::with_client_timeout`]) |
//! | busy count | 1 during the tunnel, 0 after | same ([`TunnelHold`]) |
//! | bytes | the tunnel's bytes are not counted (`To`/`From` stay at the request head and status line) | counted both ways, so that `bytraffic` sees WebSocket traffic |
//! | buffer | each way reads 8 KiB at a time (the tunnel's `ReadBufferSize`, per Apache's source) | 8 KiB, or the member's `iobuffersize` (`ProxyIOBufferSize`) when set |

use super::*;

use std::io;

use http::header::{CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::balancer::TunnelHold;

/// Which protocol upgrades a member takes: the request's `Upgrade` goes to the member (with
/// `Connection: Upgrade`) only when it names one of them, and the connection is then
/// tunnelled if the member answers `101 Switching Protocols`. Any other request goes
/// without `Upgrade`, as Apache sends it.
///
/// [`Default`]: as the member's scheme says: WebSocket for `ws://` and `wss://` members,
/// none for the others.
///
/// ```
/// use proxy_balancer::client::{ClientOptions, Upgrades};
///
/// let websocket = Upgrades::from_param("websocket");
/// assert!(websocket.allows(b"WebSocket", false));
/// assert!(!websocket.allows(b"h2c", false));
/// assert!(Upgrades::from_param("ANY").allows(b"foo", false));
/// assert!(Upgrades::new().allows(b"websocket", true)); // a ws:// member
/// assert!(!Upgrades::new().allows(b"websocket", false)); // an http:// member
/// let options = ClientOptions::new().with_upgrades(websocket);
/// # drop(options);
/// ```
///
/// # Apache
///
/// The worker's `upgrade` parameter (2.4.47 and later): `ANY` (or `*`) takes any protocol;
/// a name, or a list of names separated by commas, takes those (without case). A `ws://`
/// or `wss://` member without the parameter takes `WebSocket`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Upgrades {
    kind: Kind,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
enum Kind {
    /// WebSocket for `ws://` and `wss://` members, nothing for the others.
    #[default]
    Scheme,
    /// `upgrade=ANY`.
    Any,
    /// `upgrade=name[,name…]`, as written.
    Named(Box<str>),
}

impl Upgrades {
    /// As the member's scheme says (the default).
    #[must_use]
    pub const fn new() -> Self {
        Self { kind: Kind::Scheme }
    }

    /// Any protocol the client asks for (`upgrade=ANY`).
    #[must_use]
    pub const fn any() -> Self {
        Self { kind: Kind::Any }
    }

    /// The value of an `upgrade=` parameter: `ANY` or `*` for any protocol, else a name or
    /// a comma-separated list of names.
    #[must_use]
    pub fn from_param(value: &str) -> Self {
        let value = value.trim();
        if value.eq_ignore_ascii_case("ANY") || value == "*" {
            Self::any()
        } else {
            Self {
                kind: Kind::Named(value.into()),
            }
        }
    }

    /// Whether a request asking for `requested` (its `Upgrade` value) is tunnelled;
    /// `websocket_scheme`: the member is `ws://` or `wss://`.
    ///
    /// As Apache's `ap_proxy_worker_can_upgrade`: the whole value, without case, against
    /// the parameter or one of its names; without the parameter, `WebSocket` for a
    /// WebSocket scheme.
    #[must_use]
    pub fn allows(&self, requested: &[u8], websocket_scheme: bool) -> bool {
        let requested = trim_ascii(requested);
        if requested.is_empty() {
            return false;
        }
        match &self.kind {
            Kind::Any => true,
            Kind::Named(names) => {
                names.as_bytes().eq_ignore_ascii_case(requested)
                    || names
                        .as_bytes()
                        .split(|b| *b == b',' || b.is_ascii_whitespace())
                        .any(|name| !name.is_empty() && name.eq_ignore_ascii_case(requested))
            }
            Kind::Scheme => websocket_scheme && requested.eq_ignore_ascii_case(b"WebSocket"),
        }
    }
}

impl Upgrades {
    /// These upgrades for a member with this scheme: the default becomes `WebSocket` for
    /// `ws://` and `wss://` members.
    pub(super) fn for_scheme(self, websocket_scheme: bool) -> Self {
        match self.kind {
            Kind::Scheme if websocket_scheme => Self {
                kind: Kind::Named("WebSocket".into()),
            },
            _ => self,
        }
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// What an upgrade request carries through the pool: the protocol, the client's side of the
/// upgrade (hyper's, from the front server), and the tunnel's idle limit.
pub(super) struct Plan {
    pub(super) protocol: HeaderValue,
    pub(super) client: OnUpgrade,
    pub(super) idle: Duration,
    /// The read buffer of each way: `iobuffersize`, else 8 KiB.
    pub(super) buffer: usize,
}

/// Decides a request's upgrade (see [`Upgrades`]): returns the plan when it goes to the
/// member as an upgrade (`Connection: Upgrade` and `Upgrade` set), `None` when it goes as a
/// plain request (`Upgrade` and an upgrade `Connection` removed).
pub(super) fn prepare<B>(
    request: &mut Request<B>,
    options: &ClientOptions,
    idle: Duration,
) -> Option<Plan> {
    let upgrades = &options.upgrades;
    // The forwarding layer's note, else the request's own header (a stack without it).
    let protocol = match request.extensions_mut().remove::<UpgradeProtocol>() {
        Some(UpgradeProtocol(value)) => Some(value),
        None => request.headers().get(UPGRADE).cloned(),
    };
    let client = request.extensions_mut().remove::<OnUpgrade>();
    let protocol = protocol?;
    let headers = request.headers_mut();
    match client {
        // Only an HTTP/1.1 connection served with upgrades can be tunnelled.
        // (`upgrades` was resolved for the member's scheme when its client was made.)
        Some(client) if upgrades.allows(protocol.as_bytes(), false) => {
            headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(UPGRADE, protocol.clone());
            Some(Plan {
                protocol,
                client,
                idle,
                buffer: options
                    .io_buffer_size
                    .filter(|&n| n > 0)
                    .unwrap_or(TUNNEL_BUFFER),
            })
        }
        _ => {
            headers.remove(UPGRADE);
            let upgrade_token = headers.get_all(CONNECTION).iter().any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',' || b.is_ascii_whitespace())
                    .any(|t| t.eq_ignore_ascii_case(b"upgrade"))
            });
            if upgrade_token {
                headers.remove(CONNECTION);
            }
            None
        }
    }
}

/// The member's `101` to an upgrade request: checks its `Upgrade` names the protocol asked
/// for (else Apache's AH00898 502), spawns the tunnel, and gives the client its 101 with
/// `Connection: Upgrade`, `Upgrade: <protocol>`, the member's other headers, and the
/// [`TunnelHold`] the balancer gives the member's busy count to.
pub(super) fn switch(
    member: &str,
    mut response: Response<Incoming>,
    plan: Plan,
    permit: super::limit::ConnPermit,
) -> Result<Response<MemberBody>, Error> {
    let answered = response.headers().get(UPGRADE);
    if !answered.is_some_and(|a| a.as_bytes().eq_ignore_ascii_case(plan.protocol.as_bytes())) {
        let answered = answered.map_or_else(
            || "n/a".to_owned(),
            |a| String::from_utf8_lossy(a.as_bytes()).into_owned(),
        );
        let expected = String::from_utf8_lossy(plan.protocol.as_bytes()).into_owned();
        tracing::error!(
            apache_id = "AH00898",
            member,
            "Unexpected Upgrade: {answered} (expecting {expected})"
        );
        return Err(Error::upstream(format!(
            "Unexpected Upgrade: {answered} (expecting {expected})"
        ))
        .with_member(member, Some("AH00898")));
    }
    let member_side = hyper::upgrade::on(&mut response);
    let hold = TunnelHold::new();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(CONNECTION);
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    parts.headers.insert(UPGRADE, plan.protocol.clone());
    parts
        .extensions
        .insert(UpgradeProtocol(plan.protocol.clone()));
    parts.extensions.insert(hold.clone());
    tracing::debug!(member, protocol = ?plan.protocol, "tunnelling the upgraded connection");
    // From here the member connection belongs to this task (hyper's `Upgraded` inside
    // `run`), never to the pool; it closes when the task ends, and so does its slot of
    // the member's `max` (`permit`).
    tokio::spawn(run(plan, member_side, hold, member.to_owned(), permit));
    Ok(Response::from_parts(
        parts,
        MemberBody::own(bytes::Bytes::new()),
    ))
}

/// The tunnel: waits for both upgraded connections (the client's once the 101 is written),
/// copies bytes both ways until either side closes or fails, or nothing moves for `idle`,
/// counting them for the member; then closes both and releases the member's busy count.
async fn run(
    plan: Plan,
    member: OnUpgrade,
    hold: TunnelHold,
    url: String,
    permit: super::limit::ConnPermit,
) {
    // The connection's slot of `max`, freed when the tunnel ends.
    let _permit = permit;
    let Plan {
        client,
        idle,
        buffer,
        ..
    } = plan;
    // Released on every way out, cancellation included (the hold's last clone drops).
    struct Finish(TunnelHold);
    impl Drop for Finish {
        fn drop(&mut self) {
            self.0.finish();
        }
    }
    let finish = Finish(hold);
    let upgraded = tokio::time::timeout(idle, async { (client.await, member.await) }).await;
    let (client, member) = match upgraded {
        Ok((Ok(client), Ok(member))) => (client, member),
        Ok((Err(error), _)) => {
            tracing::debug!(member = %url, %error, "the client's connection was not upgraded");
            return;
        }
        Ok((_, Err(error))) => {
            tracing::warn!(member = %url, %error, "the member's connection was not upgraded");
            return;
        }
        Err(_) => {
            tracing::debug!(member = %url, "the upgrade did not complete within the idle timeout");
            return;
        }
    };
    let stats = finish.0.member();
    let activity = Arc::new(Activity::new());
    let client = Counted {
        io: TokioIo::new(client),
        side: Side::Client,
        member: stats.clone(),
        activity: Arc::clone(&activity),
    };
    let member = Counted {
        io: TokioIo::new(member),
        side: Side::Member,
        member: stats,
        activity: Arc::clone(&activity),
    };
    let (client_in, mut client_out) = tokio::io::split(client);
    let (member_in, mut member_out) = tokio::io::split(member);
    // Each way reads up to 8 KiB at a time, as Apache's tunnel, or `iobuffersize` when set
    // (an idle WebSocket costs little; a larger buffer moves big messages faster).
    let mut client_in = tokio::io::BufReader::with_capacity(buffer, client_in);
    let mut member_in = tokio::io::BufReader::with_capacity(buffer, member_in);
    // Each way ends at its reader's end of stream: what was read is written, and the other
    // side is told with a shutdown of its write side.
    let up = async {
        let copied = tokio::io::copy_buf(&mut client_in, &mut member_out).await;
        let _ = member_out.shutdown().await;
        copied
    };
    let down = async {
        let copied = tokio::io::copy_buf(&mut member_in, &mut client_out).await;
        let _ = client_out.shutdown().await;
        copied
    };
    tokio::pin!(up, down);
    // The tunnel ends when either side closes (a WebSocket's close handshake is over by
    // then), fails, or nothing moves either way for `idle`.
    let outcome = loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            result = &mut up => break result.map(|n| Some(("the client", n))),
            result = &mut down => break result.map(|n| Some(("the member", n))),
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= tokio::time::Instant::now() {
                    break Ok(None);
                }
            }
        }
    };
    match outcome {
        Ok(Some((side, bytes))) => {
            tracing::debug!(member = %url, bytes, "tunnel closed by {side}");
        }
        Ok(None) => tracing::debug!(member = %url, ?idle, "tunnel idle: closed"),
        Err(error) => tracing::debug!(member = %url, %error, "tunnel ended with an error"),
    }
    // Both connections close here (the member's is never pooled).
}

/// The read buffer of each way of a tunnel without an `iobuffersize`: Apache's default.
const TUNNEL_BUFFER: usize = 8192;

/// When a tunnel last moved a byte (either way).
struct Activity {
    start: tokio::time::Instant,
    /// Milliseconds from `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Copy)]
enum Side {
    /// Bytes read here go to the member (`transferred`).
    Client,
    /// Bytes read here come from the member (`read`).
    Member,
}

/// One side of the tunnel: counts what is read from it (for `bytraffic`) and notes the
/// activity (for the idle timeout).
struct Counted<T> {
    io: T,
    side: Side,
    member: Option<Member>,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            this.activity.touch();
            if let Some(member) = &this.member {
                match this.side {
                    Side::Client => member.state().add_transferred(n),
                    Side::Member => member.state().add_read(n),
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_match_as_apache_does() {
        let ws = Upgrades::from_param("websocket");
        assert!(ws.allows(b"websocket", false));
        assert!(ws.allows(b"WebSocket", false));
        assert!(!ws.allows(b"foo", false));
        assert!(!ws.allows(b"websocket, foo", false), "the whole value");
        let list = Upgrades::from_param("websocket,foo");
        assert!(list.allows(b"FOO", false));
        assert!(!list.allows(b"bar", false));
        assert!(Upgrades::from_param("any").allows(b"x", false));
        assert!(Upgrades::from_param("*").allows(b"x", false));
        // A ws:// member with upgrade=foo takes only foo (the parameter replaces the default).
        assert!(!Upgrades::from_param("foo").allows(b"websocket", true));
        assert!(Upgrades::new().allows(b"websocket", true));
        assert!(!Upgrades::new().allows(b"foo", true));
        assert!(!Upgrades::new().allows(b"websocket", false));
        assert!(!Upgrades::any().allows(b"  ", false), "nothing asked for");
    }
}
