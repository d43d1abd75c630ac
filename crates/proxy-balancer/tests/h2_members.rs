//! HTTP/2 members (`h2c://`, `h2://`) through a loopback front door: a tonic gRPC member
//! (unary and server streaming, status and trailers intact), failover on a member that
//! refuses streams or says GOAWAY, many requests multiplexed on one member connection, an
//! HTTP/1.1 client of an h2c member, and an `h2://` member over rustls.
//!
//! Real sockets on 127.0.0.1:0, certificates made by rcgen at test time; every wait is
//! bounded.

#![allow(clippy::result_large_err)] // tonic::Status is what gRPC handlers return.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use http::{header, HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use proxy_balancer::client::{ClientOptions, MakeHttpMember, TlsClient};
use proxy_balancer::proxy_pass::{ForwardLayer, ForwardedHeaders};
use proxy_balancer::server::{RequestBody, Server, ServerHandle};
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, ErrorResponseLayer, MemberParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tonic::codec::ProstCodec;
use tonic::codegen::tokio_stream;
use tonic::{Code, Status};
use tower::ServiceBuilder;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

const LOOPBACK: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

// ===== the gRPC member =====

/// `test.Greeter`'s request, written by hand (no protoc).
#[derive(Clone, PartialEq, prost::Message)]
struct Hello {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

/// `test.Greeter`'s answer.
#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(string, tag = "1")]
    message: String,
}

/// What a member saw: connections accepted, and the headers of each request.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<HeaderMap>>,
}

/// A member serving `test.Greeter` over HTTP/2 (prior knowledge), or over TLS with ALPN
/// `h2` when `tls` is given.
struct GrpcMember {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcMember {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self::start_with(tls, None).await
    }

    /// With `SETTINGS_MAX_CONCURRENT_STREAMS` of `max_streams`.
    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>, max_streams: Option<u32>) -> Self {
        let listener = TcpListener::bind(LOOPBACK).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound");
        let seen = Arc::new(Seen::default());
        let counted = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted.connections.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&counted);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        seen.requests.lock().push(request.headers().clone());
                        greeter(request)
                    });
                    let mut builder =
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    builder.max_concurrent_streams(max_streams);
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

/// `SayHello` answers `hello NAME` (name `fail`: `INVALID_ARGUMENT` with a message);
/// `Count` streams `COUNT` answers, then ends with `ABORTED` and an `x-last` trailer when
/// the name is `abort`, else with `OK`.
async fn greeter(request: Request<Incoming>) -> Result<Response<tonic::body::Body>, Infallible> {
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Reply, Hello>::default());
    let response = match request.uri().path() {
        "/plain" => {
            // Not gRPC: a plain answer saying what the member saw.
            let seen = format!(
                "{:?} {} te={:?} host={:?}",
                request.version(),
                request.uri(),
                request.headers().get(header::TE),
                request.headers().get(header::HOST)
            );
            let body = http_body_util::Full::new(Bytes::from(seen));
            let mut response = Response::new(tonic::body::Body::new(body));
            response
                .headers_mut()
                .insert("x-member", http::HeaderValue::from_static("h2"));
            response
        }
        "/echo-trailers" => {
            // The request's body and trailers, as the member got them.
            let collected = match request.into_body().collect().await {
                Ok(collected) => collected,
                Err(e) => return Ok(Status::internal(e.to_string()).into_http()),
            };
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let body = collected.to_bytes();
            let seen = format!(
                "{} x-checksum={:?}",
                String::from_utf8_lossy(&body),
                trailers.get("x-checksum")
            );
            let mut trailers = HeaderMap::new();
            trailers.insert("x-answer-trailer", http::HeaderValue::from_static("sent"));
            let frames = [
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(seen))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
            Response::new(tonic::body::Body::new(body))
        }
        "/test.Greeter/SayHello" => {
            let unary = tower::service_fn(|request: tonic::Request<Hello>| async move {
                let hello = request.into_inner();
                if hello.name == "slow" {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if hello.name == "slower" {
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                }
                if hello.name == "fail" {
                    return Err(Status::invalid_argument("no one is called fail"));
                }
                let mut response = tonic::Response::new(Reply {
                    message: format!("hello {}", hello.name),
                });
                response
                    .metadata_mut()
                    .insert("x-member", "grpc".parse().expect("ascii"));
                Ok(response)
            });
            grpc.unary(unary, request).await
        }
        "/test.Greeter/Count" => {
            let streaming = tower::service_fn(|request: tonic::Request<Hello>| async move {
                let hello = request.into_inner();
                let mut items: Vec<Result<Reply, Status>> = (0..hello.count)
                    .map(|i| {
                        Ok(Reply {
                            message: format!("{} {i}", hello.name),
                        })
                    })
                    .collect();
                if hello.name == "abort" {
                    let mut trailers = tonic::metadata::MetadataMap::new();
                    trailers.insert("x-last", "counted".parse().expect("ascii"));
                    items.push(Err(Status::with_metadata(
                        Code::Aborted,
                        "stopped on purpose",
                        trailers,
                    )));
                }
                Ok::<_, Status>(tonic::Response::new(tokio_stream::iter(items)))
            });
            grpc.server_streaming(streaming, request).await
        }
        _ => Status::unimplemented("no such method").into_http(),
    };
    Ok(response)
}

// ===== the front door =====

/// A front door (HTTP/1.1 and h2c) balancing over `members` with these client options.
async fn front(
    members: &[String],
    options: ClientOptions,
    params: &[(&str, &str)],
) -> ServerHandle {
    let members = members.iter().map(|url| {
        let mut member = MemberParams::new(url).expect("a loopback url");
        for (k, v) in params {
            member.set(k, v).expect("valid");
        }
        member
    });
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://h2"),
            members,
            tokio::time::Instant::now().into_std(),
        )
        .expect("members"),
    );
    let make = MakeHttpMember::<RequestBody>::new().with_default_options(options);
    let service = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(ForwardLayer::new(ForwardedHeaders::new()))
        .service(Balancer::new(store, make));
    Server::new()
        .listen(LOOPBACK, service)
        .await
        .expect("a loopback port")
}

/// A tonic client of `test.Greeter` through `front` over h2c (prior knowledge).
async fn grpc_client(front: &ServerHandle) -> tonic::client::Grpc<tonic::transport::Channel> {
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}", front.local_addr()))
            .expect("a valid endpoint")
            .connect_timeout(BOUND);
    let channel = timeout(BOUND, endpoint.connect())
        .await
        .expect("bounded")
        .expect("the front answers");
    tonic::client::Grpc::new(channel)
}

async fn say_hello(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    name: &str,
) -> Result<tonic::Response<Reply>, Status> {
    timeout(BOUND, async {
        client
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        client
            .unary(
                tonic::Request::new(Hello {
                    name: name.to_owned(),
                    count: 0,
                }),
                http::uri::PathAndQuery::from_static("/test.Greeter/SayHello"),
                ProstCodec::<Hello, Reply>::default(),
            )
            .await
    })
    .await
    .expect("bounded")
}

// ===== tests =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_through_the_proxy_keeps_status_and_metadata() {
    let member = GrpcMember::start(None).await;
    let front = front(&[member.url("h2c")], ClientOptions::new(), &[]).await;
    let mut client = grpc_client(&front).await;

    let ok = say_hello(&mut client, "ada").await.expect("an OK answer");
    assert_eq!(
        ok.metadata().get("x-member").map(|v| v.to_str().ok()),
        Some(Some("grpc"))
    );
    assert_eq!(ok.into_inner().message, "hello ada");

    let failed = say_hello(&mut client, "fail")
        .await
        .expect_err("an error status");
    assert_eq!(failed.code(), Code::InvalidArgument, "{failed:?}");
    assert_eq!(failed.message(), "no one is called fail");

    let requests = member.seen.requests.lock().clone();
    assert_eq!(requests.len(), 2);
    for headers in &requests {
        assert_eq!(
            headers.get(header::TE).map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert_eq!(
            headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/grpc"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_streaming_through_the_proxy_keeps_every_message_and_the_trailers() {
    let member = GrpcMember::start(None).await;
    let front = front(&[member.url("h2c")], ClientOptions::new(), &[]).await;
    let mut client = grpc_client(&front).await;

    let count = |name: &str, count: u32| {
        let mut client = client.clone();
        let name = name.to_owned();
        async move {
            timeout(BOUND, async move {
                client
                    .ready()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let response = client
                    .server_streaming(
                        tonic::Request::new(Hello { name, count }),
                        http::uri::PathAndQuery::from_static("/test.Greeter/Count"),
                        ProstCodec::<Hello, Reply>::default(),
                    )
                    .await?;
                let mut stream = response.into_inner();
                let mut got = Vec::new();
                let end = loop {
                    match stream.message().await {
                        Ok(Some(reply)) => got.push(reply.message),
                        Ok(None) => break Ok(stream.trailers().await?),
                        Err(status) => break Err(status),
                    }
                };
                Ok::<_, Status>((got, end))
            })
            .await
            .expect("bounded")
        }
    };

    let (got, end) = count("n", 5).await.expect("a stream");
    assert_eq!(got, ["n 0", "n 1", "n 2", "n 3", "n 4"]);
    let trailers = end.expect("OK at the end").expect("trailers");
    // grpc-status 0 travels in the trailers; tonic reads it and keeps the rest.
    assert!(
        trailers.get("grpc-status").is_none_or(|v| v == "0"),
        "{trailers:?}"
    );

    let (got, end) = count("abort", 2).await.expect("a stream");
    assert_eq!(got, ["abort 0", "abort 1"]);
    let status = end.expect_err("ABORTED in the trailers");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(status.message(), "stopped on purpose");
    assert_eq!(
        status.metadata().get("x-last").map(|v| v.to_str().ok()),
        Some(Some("counted")),
        "the member's trailer passes: {status:?}"
    );
    drop(client.ready().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_share_one_member_connection() {
    let member = GrpcMember::start(None).await;
    let front = front(&[member.url("h2c")], ClientOptions::new(), &[]).await;
    let client = grpc_client(&front).await;
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { say_hello(&mut client, "slow").await })
        })
        .collect();
    for call in calls {
        let reply = call.await.expect("no panic").expect("an OK answer");
        assert_eq!(reply.into_inner().message, "hello slow");
    }
    assert_eq!(member.seen.requests.lock().len(), 40);
    assert_eq!(
        member.seen.connections.load(Ordering::SeqCst),
        1,
        "40 overlapping requests multiplexed on one member connection"
    );
}

/// Reads one HTTP/1.1 response to a request with `Connection: close`: all of it.
async fn h1_exchange(front: &ServerHandle, request: &str) -> String {
    let mut stream = TcpStream::connect(front.local_addr())
        .await
        .expect("the front");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut received = Vec::new();
    timeout(BOUND, stream.read_to_end(&mut received))
        .await
        .expect("bounded")
        .expect("read");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_of_an_h2c_member_gets_http1() {
    let member = GrpcMember::start(None).await;
    let front = front(&[member.url("h2c")], ClientOptions::new(), &[]).await;
    let answer = h1_exchange(
        &front,
        "GET /plain HTTP/1.1\r\nHost: front\r\nTE: trailers, deflate\r\nConnection: close, TE\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        !answer.contains("\r\n:"),
        "no pseudo-header leaks: {answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("\r\nx-member: h2\r\n"),
        "{answer}"
    );
    // The member spoke HTTP/2, got `:authority` (and no `Host`) and `TE: trailers`, as
    // from Apache's mod_proxy_http2.
    let expected = format!(
        "HTTP/2.0 http://{}/plain te=Some(\"trailers\") host=None",
        member.addr
    );
    assert!(answer.ends_with(&expected), "{answer}");
    // Whatever the client said about TE.
    let answer = h1_exchange(
        &front,
        "GET /plain HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with(&expected), "{answer}");
    // A chunked body's trailers go to the member.
    let answer = h1_exchange(
        &front,
        "POST /echo-trailers HTTP/1.1\r\nHost: front\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("hello x-checksum=Some(\"abc\")"),
        "{answer}"
    );

    // An HTTP/1.1 member gets no TE at all.
    let h1 = proxy_balancer_test::TestBackend::start("h1")
        .await
        .expect("bind");
    let front = front_for(&h1.url()).await;
    let answer = h1_exchange(
        &front,
        "GET / HTTP/1.1\r\nHost: front\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = h1.last_request().expect("the member got it");
    assert_eq!(seen.header("te"), None, "no TE to an HTTP/1.1 member");
}

async fn front_for(url: &str) -> ServerHandle {
    front(&[url.to_owned()], ClientOptions::new(), &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_connection_opens_when_the_members_stream_limit_is_reached() {
    let member = GrpcMember::start_with(None, Some(4)).await;
    let front = front(&[member.url("h2c")], ClientOptions::new(), &[]).await;
    let mut client = grpc_client(&front).await;
    // The first answer brings the member's SETTINGS (4 streams at most); the proxy reads
    // them when it next sends on the connection.
    say_hello(&mut client, "warm").await.expect("an OK answer");
    say_hello(&mut client, "warm").await.expect("an OK answer");
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { say_hello(&mut client, "slow").await })
        })
        .collect();
    for call in calls {
        call.await.expect("no panic").expect("an OK answer");
    }
    assert_eq!(
        member.seen.connections.load(Ordering::SeqCst),
        3,
        "10 overlapping requests at 4 streams a connection"
    );
}

/// A raw HTTP/2 member (the `h2` crate's server) that refuses every stream
/// (`REFUSED_STREAM`), or says GOAWAY with last-stream-id 0 on every new connection; it
/// counts the streams it refused, or the connections it sent away.
struct RefusingMember {
    addr: SocketAddr,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RefusingMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RefusingMember {
    async fn start(go_away: bool) -> Self {
        let listener = TcpListener::bind(LOOPBACK).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound");
        let refused = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&refused);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    if go_away {
                        counted.fetch_add(1, Ordering::SeqCst);
                        go_away_at_once(stream).await;
                        return;
                    }
                    let Ok(mut connection) = h2::server::handshake(stream).await else {
                        return;
                    };
                    while let Some(Ok((_request, mut respond))) = connection.accept().await {
                        counted.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    }
                });
            }
        });
        Self {
            addr,
            refused,
            task,
        }
    }

    fn url(&self) -> String {
        format!("h2c://{}", self.addr)
    }
}

/// Speaks HTTP/2 frames by hand: reads the client's preface, sends empty SETTINGS and
/// GOAWAY (last-stream-id 0, NO_ERROR), then reads and drops whatever the client sends
/// until it closes (as a server that lingers after GOAWAY; the `h2` crate's server closes
/// at once, and a close with the client's request unread resets the connection, which may
/// lose the GOAWAY on the client's side).
async fn go_away_at_once(mut stream: TcpStream) {
    let mut preface = [0u8; 24];
    if stream.read_exact(&mut preface).await.is_err() {
        return;
    }
    const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    const GOAWAY: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    if stream.write_all(&SETTINGS).await.is_err() || stream.write_all(&GOAWAY).await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = timeout(BOUND, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// gRPC calls (POSTs, not idempotent) to a balancer whose first member refuses streams
/// (or goes away) fail over to the second: no client sees an error.
async fn refused_requests_fail_over(go_away: bool) {
    let refusing = RefusingMember::start(go_away).await;
    let member = GrpcMember::start(None).await;
    // retry=0: the refusing member is tried again at once, so it keeps being picked.
    let front = front(
        &[refusing.url(), member.url("h2c")],
        ClientOptions::new(),
        &[("retry", "0")],
    )
    .await;
    let mut client = grpc_client(&front).await;
    let mut errors = 0;
    for i in 0..10 {
        match say_hello(&mut client, &format!("n{i}")).await {
            Ok(reply) => assert_eq!(reply.into_inner().message, format!("hello n{i}")),
            Err(status) => {
                errors += 1;
                eprintln!("client error: {status:?}");
            }
        }
    }
    assert_eq!(errors, 0, "client errors");
    assert_eq!(member.seen.requests.lock().len(), 10);
    assert!(
        refusing.refused.load(Ordering::SeqCst) >= 2,
        "the refusing member was tried: {}",
        refusing.refused.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_fail_over_even_for_posts() {
    refused_requests_fail_over(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_before_the_stream_fails_over_even_for_posts() {
    refused_requests_fail_over(true).await;
}

// ===== h2:// over TLS =====

/// A test CA and a server configuration for 127.0.0.1 signed by it, offering `alpn`.
fn tls_pair(alpn: &[&[u8]]) -> (rustls::ClientConfig, Arc<rustls::ServerConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_key = rcgen::KeyPair::generate().expect("a key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("a CA");
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("a certificate");
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("a server config");
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("the CA");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (client, Arc::new(server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_member_over_tls_answers_grpc() {
    let (client_config, server_config) = tls_pair(&[b"h2"]);
    let member = GrpcMember::start(Some(server_config)).await;
    let options = ClientOptions::new().with_tls(Some(TlsClient::new(client_config)));
    let front = front(&[member.url("h2")], options, &[]).await;
    let mut client = grpc_client(&front).await;
    let reply = say_hello(&mut client, "tls").await.expect("an OK answer");
    assert_eq!(reply.into_inner().message, "hello tls");
    let failed = say_hello(&mut client, "fail")
        .await
        .expect_err("an error status");
    assert_eq!(failed.code(), Code::InvalidArgument);
    assert_eq!(member.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_member_whose_tls_does_not_select_h2_is_a_connect_error() {
    // The member's TLS offers no ALPN: the handshake succeeds without h2.
    let (client_config, server_config) = tls_pair(&[]);
    let member = GrpcMember::start(Some(server_config)).await;
    let member_url = member.url("h2");
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://h2"),
            [MemberParams::new(&member_url).expect("a loopback url")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("a member"),
    );
    let make = MakeHttpMember::<http_body_util::Empty<Bytes>>::new()
        .with_default_options(ClientOptions::new().with_tls(Some(TlsClient::new(client_config))));
    let balancer = Balancer::new(store, make);
    let request = Request::get("/plain")
        .body(http_body_util::Empty::new())
        .expect("a request");
    let error = timeout(BOUND, tower::ServiceExt::oneshot(balancer, request))
        .await
        .expect("bounded")
        .expect_err("no HTTP/2");
    assert_eq!(
        error.kind(),
        proxy_balancer::ErrorKind::Connect,
        "{error:?}"
    );
    assert_eq!(error.member(), Some(member_url.as_str()));
    assert!(
        format!("{error:?}").contains("ALPN"),
        "the error says why: {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_both_ways_between_an_h2_client_and_an_h2c_member() {
    let member = GrpcMember::start(None).await;
    let front = front(&[member.url("h2c")], ClientOptions::new(), &[]).await;
    let stream = TcpStream::connect(front.local_addr())
        .await
        .expect("the front");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c to the front");
    tokio::spawn(connection);
    let (frames, body) = proxy_balancer_test::ChannelBody::new(4);
    let request = Request::post(format!("http://{}/echo-trailers", front.local_addr()))
        .body(body)
        .expect("a request");
    let sending = tokio::spawn(async move {
        frames
            .send(http_body::Frame::data(Bytes::from_static(b"some data")))
            .await
            .expect("sent");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        frames
            .send(http_body::Frame::trailers(trailers))
            .await
            .expect("sent");
    });
    let response = timeout(BOUND, sender.send_request(request))
        .await
        .expect("bounded")
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let collected = timeout(BOUND, response.into_body().collect())
        .await
        .expect("bounded")
        .expect("a body");
    let trailers = collected.trailers().cloned();
    assert_eq!(
        collected.to_bytes(),
        "some data x-checksum=Some(\"abc\")",
        "the member got the client's trailers"
    );
    assert_eq!(
        trailers.as_ref().and_then(|t| t.get("x-answer-trailer")),
        Some(&http::HeaderValue::from_static("sent")),
        "the client got the member's trailers: {trailers:?}"
    );
    sending.await.expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_timeout_bounds_the_wait_for_the_answer_head() {
    let member = GrpcMember::start(None).await;
    let front = front(
        &[member.url("h2c")],
        ClientOptions::new(),
        &[("timeout", "1")],
    )
    .await;
    let mut client = grpc_client(&front).await;
    let start = tokio::time::Instant::now();
    let failed = say_hello(&mut client, "slower")
        .await
        .expect_err("a timeout");
    let waited = start.elapsed();
    // The proxy's 504 (plain text, as Apache's: tonic reports it as it finds it).
    assert!(
        failed.message().contains("504 Gateway Timeout"),
        "{failed:?}"
    );
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(2400),
        "answered after {waited:?}"
    );
    // The connection is still the member's one: the next request goes on it.
    say_hello(&mut client, "after").await.expect("an OK answer");
    assert_eq!(member.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disablereuse_opens_a_connection_per_request() {
    let member = GrpcMember::start(None).await;
    let front = front(
        &[member.url("h2c")],
        ClientOptions::new(),
        &[("disablereuse", "On")],
    )
    .await;
    let mut client = grpc_client(&front).await;
    for name in ["a", "b", "c"] {
        say_hello(&mut client, name).await.expect("an OK answer");
    }
    assert_eq!(member.seen.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apache_config_with_h2c_members_serves_grpc() {
    let members = [GrpcMember::start(None).await, GrpcMember::start(None).await];
    let config = format!(
        "<Proxy \"balancer://grpc\">\n\
         BalancerMember \"{}\"\n\
         BalancerMember \"{}\"\n\
         </Proxy>\n\
         ProxyPass \"/\" \"balancer://grpc/\"\n",
        members[0].url("h2c"),
        members[1].url("h2c"),
    );
    let config = proxy_balancer::apache_config::parse(&config).expect("a valid config");
    let site = proxy_balancer::site::Site::from_config(&config).expect("buildable");
    let front = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let mut client = grpc_client(&front).await;
    for name in ["a", "b", "c", "d"] {
        let reply = say_hello(&mut client, name).await.expect("an OK answer");
        assert_eq!(reply.into_inner().message, format!("hello {name}"));
    }
    let failed = say_hello(&mut client, "fail")
        .await
        .expect_err("an error status");
    assert_eq!(failed.code(), Code::InvalidArgument);
    // Balanced per request over the two members, one connection each.
    for member in &members {
        assert!(member.seen.requests.lock().len() >= 2);
        assert_eq!(member.seen.connections.load(Ordering::SeqCst), 1);
    }
}

/// A raw HTTP/2 member answering stream 1 of each connection with `200` and the request
/// body it got, and saying GOAWAY (last-stream-id 1, NO_ERROR) to any later stream: a
/// member closing its connection after one request, as a server with a request limit per
/// connection does. Counts its connections.
async fn one_request_per_connection_member(
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(LOOPBACK).await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer_stream_one(stream));
        }
    });
    (addr, connections, task)
}

async fn answer_stream_one(mut stream: TcpStream) {
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }
    let mut preface = [0u8; 24];
    if stream.read_exact(&mut preface).await.is_err() {
        return;
    }
    if stream.write_all(&frame(4, 0, 0, &[])).await.is_err() {
        return;
    }
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        let reply = match (kind, id) {
            // SETTINGS (not an ack): acknowledged.
            (4, _) if flags & 0x1 == 0 => frame(4, 0x1, 0, &[]),
            // A second stream: GOAWAY, stream 1 was the last one processed.
            (1, id) if id > 1 => frame(7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]),
            (0, 1) => {
                body.extend_from_slice(&payload);
                Vec::new()
            }
            _ => Vec::new(),
        };
        if !reply.is_empty() && stream.write_all(&reply).await.is_err() {
            return;
        }
        if id == 1 && (kind == 0 || kind == 1) && flags & END_STREAM != 0 {
            // `:status: 200` (HPACK static index 8), then the body back.
            let mut answer = frame(1, END_HEADERS, 1, &[0x88]);
            answer.extend(frame(0, END_STREAM, 1, &body));
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_going_away_sends_the_request_again_on_a_new_one() {
    let (addr, connections, task) = one_request_per_connection_member().await;
    let url = format!("h2c://{addr}");
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://h2"),
            [MemberParams::new(&url).expect("a loopback url")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("a member"),
    );
    let balancer = Balancer::new(
        Arc::clone(&store),
        MakeHttpMember::<http_body_util::Full<Bytes>>::new(),
    );
    // One member only: no failover could hide a failure. POSTs with a body: each goes
    // first on the kept connection, which says GOAWAY, then on a new one, body and all.
    for i in 0..4 {
        let body = format!("body {i}");
        let request = Request::post("/")
            .body(http_body_util::Full::new(Bytes::from(body.clone())))
            .expect("a request");
        let response = timeout(BOUND, tower::ServiceExt::oneshot(balancer.clone(), request))
            .await
            .expect("bounded")
            .expect("an answer");
        assert_eq!(response.status(), 200);
        let got = timeout(BOUND, response.into_body().collect())
            .await
            .expect("bounded")
            .expect("a body")
            .to_bytes();
        assert_eq!(got, body.as_bytes());
    }
    assert_eq!(connections.load(Ordering::SeqCst), 4);
    let snapshot = store.snapshot();
    let member = &snapshot.members()[0];
    assert!(
        member.state().error_time().is_none(),
        "a member closing a connection is not in error"
    );
    task.abort();
}

/// A member that says GOAWAY (last-stream-id 0) on its first connection, as one restarting
/// does, then serves: the request goes once more on a new connection and is answered, and
/// the member is not put in error (found by the review: a new connection's GOAWAY was a
/// connect failure at once, the member out for `retry`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_going_away_sends_the_request_again_on_another() {
    let listener = TcpListener::bind(LOOPBACK).await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::spawn(go_away_at_once(stream));
            } else {
                tokio::spawn(answer_stream_one(stream));
            }
        }
    });
    let url = format!("h2c://{addr}");
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://h2"),
            [MemberParams::new(&url).expect("a loopback url")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("a member"),
    );
    let balancer = Balancer::new(
        Arc::clone(&store),
        MakeHttpMember::<http_body_util::Full<Bytes>>::new(),
    );
    // A POST (not idempotent) to the one member: no failover could hide a failure.
    let request = Request::post("/")
        .body(http_body_util::Full::new(Bytes::from_static(b"again")))
        .expect("a request");
    let response = timeout(BOUND, tower::ServiceExt::oneshot(balancer, request))
        .await
        .expect("bounded")
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let got = timeout(BOUND, response.into_body().collect())
        .await
        .expect("bounded")
        .expect("a body")
        .to_bytes();
    assert_eq!(got, &b"again"[..]);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    let snapshot = store.snapshot();
    assert!(
        snapshot.members()[0].state().error_time().is_none(),
        "a member going away once is not in error"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_member_without_tls_settings_fails_clearly() {
    // No TLS client given: the system's trust store, which does not know the test CA.
    let (_, server_config) = tls_pair(&[b"h2"]);
    let member = GrpcMember::start(Some(server_config)).await;
    let member_url = member.url("h2");
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://h2"),
            [MemberParams::new(&member_url).expect("a loopback url")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("a member"),
    );
    let balancer = Balancer::new(store, MakeHttpMember::<http_body_util::Empty<Bytes>>::new());
    let request = Request::get("/plain")
        .body(http_body_util::Empty::new())
        .expect("a request");
    let error = timeout(BOUND, tower::ServiceExt::oneshot(balancer, request))
        .await
        .expect("bounded")
        .expect_err("an unknown issuer");
    assert_eq!(
        error.kind(),
        proxy_balancer::ErrorKind::Connect,
        "{error:?}"
    );
    assert_eq!(error.member(), Some(member_url.as_str()));
    let said = format!("{error:?}");
    assert!(
        said.contains("Certificate") || said.contains("trust store"),
        "the error says why: {said}"
    );
    assert_eq!(member.seen.requests.lock().len(), 0);
}
