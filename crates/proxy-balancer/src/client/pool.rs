use super::connect::{Alpn, Connector};
use super::limit::{ConnLimit, ConnPermit};
use super::*;

/// A member's idle connections (each with its last response read to the end), most
/// recently used last.
pub(super) struct Pool<B> {
    pub(super) idle: Mutex<Vec<Pooled<B>>>,
    /// `max`; 0 with `disablereuse=On`.
    pub(super) max_idle: usize,
    /// `max` as a hard cap on open connections, and `acquire`.
    pub(super) limit: Arc<ConnLimit>,
    pub(super) ttl: Option<Duration>,
    /// Where and how connections are opened.
    pub(super) connector: Connector,
    /// The member's URL, for logs and errors.
    pub(super) member: String,
    pub(super) options: ClientOptions,
}

/// What a request goes out on: a pooled connection, or a slot for a new one.
enum Connection<B> {
    Pooled(SendRequest<B>, ConnPermit),
    New(ConnPermit),
}

pub(super) struct Pooled<B> {
    pub(super) sender: SendRequest<B>,
    /// The connection's slot of `max`.
    pub(super) permit: ConnPermit,
    pub(super) since: tokio::time::Instant,
    /// Made to skip malformed header lines (`ProxyBadHeader Ignore`).
    pub(super) lenient: bool,
}

impl<B> Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// The most recently used idle connection: one that can take a request now if there is
    /// one (closed and expired ones are dropped on the way), else one whose last response
    /// was read to the end and whose connection is about to say it is ready again.
    pub(super) fn checkout(&self, lenient: bool) -> Option<(Pooled<B>, bool)> {
        let mut idle = self.idle.lock();
        let now = self.ttl.map(|_| tokio::time::Instant::now());
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            let expired = match (self.ttl, now) {
                (Some(ttl), Some(now)) => now.saturating_duration_since(entry.since) > ttl,
                _ => false,
            };
            if entry.sender.is_closed() || expired {
                drop(idle.swap_remove(i));
            } else if entry.lenient == lenient && entry.sender.is_ready() {
                return Some((idle.swap_remove(i), true));
            }
        }
        let last = idle.iter().rposition(|entry| entry.lenient == lenient)?;
        Some((idle.remove(last), false))
    }

    /// Closes the oldest idle connection made for the other `ProxyBadHeader` mode, to free
    /// its slot of `max`; whether there was one.
    fn evict_other(&self, lenient: bool) -> bool {
        let mut idle = self.idle.lock();
        match idle.iter().position(|entry| entry.lenient != lenient) {
            Some(i) => {
                drop(idle.remove(i));
                true
            }
            None => false,
        }
    }

    /// Keeps `sender` for the next requests (its response read to the end), unless the pool
    /// is full or the connection closed.
    pub(super) fn checkin(&self, sender: SendRequest<B>, permit: ConnPermit, lenient: bool) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(Pooled {
                sender,
                permit,
                since: tokio::time::Instant::now(),
                lenient,
            });
            drop(idle);
            self.limit.note_returned();
        }
    }

    /// A pooled connection ready for a request, if the pool has one. One whose connection
    /// has not said it is ready yet gets [`READY_WAIT`] to do so (it has finished its last
    /// response, so it takes microseconds unless the connection is going away).
    pub(super) async fn pooled(&self, lenient: bool) -> Option<(SendRequest<B>, ConnPermit)> {
        while let Some((mut pooled, ready)) = self.checkout(lenient) {
            if ready {
                return Some((pooled.sender, pooled.permit));
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, pooled.sender.ready()).await {
                return Some((pooled.sender, pooled.permit));
            }
        }
        None
    }

    /// A pooled connection ready for a request, or a slot of `max` for a new one: when all
    /// are taken, waits for a connection to come back or close, at most `acquire`.
    async fn connection(
        &self,
        lenient: bool,
        clock: Option<&BodyClock>,
    ) -> Result<Connection<B>, Error> {
        let deadline = self
            .limit
            .acquire_timeout()
            .map(|limit| tokio::time::Instant::now() + limit);
        loop {
            if let Some((sender, permit)) = self.pooled(lenient).await {
                return Ok(Connection::Pooled(sender, permit));
            }
            if let Some(permit) = self.limit.try_acquire() {
                return Ok(Connection::New(permit));
            }
            if self.evict_other(lenient) {
                continue;
            }
            // Waiting for a connection is not the member's time (its `timeout`).
            if let Some(clock) = clock {
                clock.waiting.store(true, Ordering::Release);
            }
            let waited = match deadline {
                Some(deadline) => {
                    tokio::time::timeout_at(deadline, self.limit.slot_or_returned()).await
                }
                None => Ok(self.limit.slot_or_returned().await),
            };
            if let Some(clock) = clock {
                clock.got(tokio::time::Instant::now());
            }
            let waited = waited.map_err(|_| self.limit.timed_out())?;
            if let Some(permit) = waited {
                return Ok(Connection::New(permit));
            }
        }
    }

    /// A new connection to the member (bounded by `connectiontimeout`), its protocol task
    /// spawned.
    pub(super) async fn connect(&self, lenient: bool) -> Result<SendRequest<B>, Error> {
        let stream = self.connector.connect(Alpn::Http1).await?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            // ProxyBadHeader Ignore: a header line that is no `name: value` is skipped.
            .ignore_invalid_headers_in_responses(lenient)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(Error::upstream)?;
        // With upgrades: a `101 Switching Protocols` hands the connection to the tunnel
        // (`upgrade::switch`); any other answer leaves the connection as it was.
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "member connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `request` on a pooled connection, or on a new one when none is idle or the
    /// pooled one was closed before the request went out. The connection comes back with
    /// the response, to be returned when its body has been read.
    pub(super) async fn send(
        self: Arc<Self>,
        mut request: Request<B>,
        mut hop: Hop,
    ) -> Result<Response<MemberBody>, Error> {
        let lenient = hop.rules.as_ref().is_some_and(|r| r.ignore_bad_headers);
        let permit = match self.connection(lenient, hop.clock.as_deref()).await? {
            Connection::Pooled(mut sender, permit) => {
                match sender.try_send_request(request).await {
                    Ok(response) => return self.wrap(response, sender, permit, &mut hop),
                    Err(mut failed) => match failed.take_message() {
                        // Not written: the connection was gone; a new one below, in its
                        // slot.
                        Some(unsent) => {
                            request = unsent;
                            permit
                        }
                        None => return Err(Error::from_member(Box::new(failed.into_error()))),
                    },
                }
            }
            Connection::New(permit) => permit,
        };
        // Boxed: the connect and handshake futures are large and rarely needed; keeping
        // them out of this future keeps every request's state small.
        let mut sender = Box::pin(self.connect(lenient)).await?;
        match sender.try_send_request(request).await {
            Ok(response) => self.wrap(response, sender, permit, &mut hop),
            Err(failed) => Err(Error::from_member(Box::new(failed.into_error()))),
        }
    }

    /// The response with a body that returns the connection to the pool at its end; the
    /// tunnel's 101 for an upgrade the member accepted, an error for any other
    /// `101 Switching Protocols` or a header line over `responsefieldsize`; a
    /// response framed by both `Transfer-Encoding` and `Content-Length` loses the latter
    /// and its connection is closed at its end. `ProxyVia` and `ProxyErrorOverride` are
    /// applied here.
    pub(super) fn wrap(
        self: &Arc<Self>,
        mut response: Response<Incoming>,
        sender: SendRequest<B>,
        permit: ConnPermit,
        hop: &mut Hop,
    ) -> Result<Response<MemberBody>, Error> {
        // An `Expect: 100-continue` answered without `100 Continue`: the body was never
        // sent, so the connection cannot take another request (Apache closes it too).
        let gate = hop.gate.as_ref().filter(|gate| !gate.opened());
        if let Some(gate) = gate {
            gate.refuse();
        }
        // An upgrade the member was asked for: a 101 starts the tunnel (never pooled: the
        // connection is the tunnel's); any other answer is relayed, the connection closed
        // after it (the member was told `Connection: Upgrade`).
        let tunnel = hop.tunnel.take();
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(plan) = tunnel {
                drop(sender);
                if let Some(via) = hop.rules.as_ref().and_then(|r| r.response_via.as_ref()) {
                    response.headers_mut().append(header::VIA, via.clone());
                }
                // The tunnel keeps the connection's slot of `max` until it ends.
                return super::upgrade::switch(&self.member, response, plan, permit);
            }
            // The request asked for no upgrade the member takes (the forwarding layer
            // strips `Upgrade`): the connection now speaks something else. Dropping
            // `sender` closes it.
            tracing::error!(
                apache_id = "AH00898",
                member = %self.member,
                upgrade = ?response.headers().get(header::UPGRADE),
                "unexpected 101 Switching Protocols from the member"
            );
            return Err(Error::upstream(
                "unexpected 101 Switching Protocols: no upgrade was asked for",
            )
            .with_member(&self.member, Some("AH00898")));
        }
        if let Some(own) = screen_head(&self.member, &self.options, &mut response, hop)? {
            // ProxyErrorOverride: its body is not read (the connection closes).
            return Ok(own);
        }
        // An `Upgrade` the member takes goes back to the client with `Connection: Upgrade`
        // (a `426 Upgrade Required` naming it), as Apache forwards it.
        if let Some(offered) = response.headers().get(header::UPGRADE) {
            if self.options.upgrades.allows(offered.as_bytes(), false) {
                let offered = UpgradeProtocol(offered.clone());
                response.extensions_mut().insert(offered);
            }
        }
        let headers = response.headers_mut();
        // RFC 9112 §6.3: Transfer-Encoding frames the body (hyper decodes it so) and a
        // Content-Length beside it must go; the connection is not reused, as the member's
        // idea of where the message ends is in doubt (Apache's AH01107).
        let framing_ok = !(headers.contains_key(header::TRANSFER_ENCODING)
            && headers.remove(header::CONTENT_LENGTH).is_some());
        if !framing_ok {
            tracing::warn!(
                apache_id = "AH01107",
                member = %self.member,
                "the member answered with Transfer-Encoding and Content-Length: \
                 Content-Length dropped, connection closed after the response"
            );
        }
        let reuse = framing_ok && gate.is_none() && tunnel.is_none();
        let lenient = hop.rules.as_ref().is_some_and(|r| r.ignore_bad_headers);
        let piece = self.options.io_buffer_size.filter(|&n| n > 0);
        if response.body().is_end_stream() {
            if reuse {
                self.checkin(sender, permit, lenient);
            }
            return Ok(response.map(|inner| MemberBody::member(inner, None, piece)));
        }
        let release: Release = if reuse {
            let pool = Arc::clone(self);
            Box::new(move || pool.checkin(sender, permit, lenient))
        } else {
            // Kept to the body's end, then dropped: hyper closes the connection once its
            // last sender is gone and its response is read (and its slot of `max` is
            // free).
            Box::new(move || drop((sender, permit)))
        };
        Ok(response.map(|inner| MemberBody::member(inner, Some(release), piece)))
    }
}

/// What every member answer goes through, whatever the protocol it came in: a header line
/// of `responsefieldsize` bytes or more is an error (Apache's AH10124: it reads each line
/// into a buffer of that size, with its terminating NUL); `ProxyErrorOverride` replaces
/// the answer by the proxy's own (returned: the member's body is not read); `ProxyVia`
/// adds its `Via`.
pub(super) fn screen_head(
    member: &str,
    options: &ClientOptions,
    response: &mut Response<Incoming>,
    hop: &Hop,
) -> Result<Option<Response<MemberBody>>, Error> {
    if let Some(limit) = options.response_field_size.filter(|&n| n > 0) {
        if let Some((name, _)) = response
            .headers()
            .iter()
            .find(|(name, value)| name.as_str().len() + 2 + value.len() >= limit)
        {
            tracing::warn!(
                apache_id = "AH10124",
                member,
                header = %name,
                "header size is over the limit allowed by ResponseFieldSize ({limit} bytes)"
            );
            return Err(Error::upstream(format!(
                "the member's {name} header line is over responsefieldsize ({limit} bytes)"
            ))
            .with_member(member, Some("AH10124")));
        }
    }
    if let Some(rules) = &hop.rules {
        if let Some(error_override) = &rules.error_override {
            if error_override.overrides(response.status()) {
                return Ok(Some(own_error(response.status())));
            }
        }
        if let Some(via) = &rules.response_via {
            response.headers_mut().append(header::VIA, via.clone());
        }
    }
    Ok(None)
}

/// The proxy's own answer for a status (`ProxyErrorOverride`): the one the proxy writes for
/// its own errors, `404 Not Found` in plain text.
pub(super) fn own_error(status: StatusCode) -> Response<MemberBody> {
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    let mut response = Response::new(MemberBody::own(bytes::Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
