//! Fuzz target `front_door`: arbitrary bytes from a client, over an in-memory stream,
//! through the server and the site to a real member on loopback that checks every request
//! it receives is unambiguous.
//!
//! The property: no panic anywhere, every input ends (the connection closes within a bound),
//! and no member ever sees a request whose framing or target two parsers could read two
//! ways: one `Host`, at most one `Content-Length` made of digits, `Transfer-Encoding` only
//! as a lone `chunked` and never with `Content-Length`, no folded or malformed header line,
//! a request line of three parts ending in `HTTP/1.1`, a well-formed chunked body.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use proxy_balancer::server::{ClientLimits, ReadTimeout, Server};
use proxy_balancer::site::Site;
use proxy_balancer_apache_config::parse;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the member found wrong since the last input.
static VIOLATIONS: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());

/// How long one input may take, end to end.
const INPUT_BOUND: Duration = Duration::from_secs(10);

/// The largest request head the member reads before it calls the request ambiguous.
const MEMBER_HEAD_LIMIT: usize = 256 * 1024;

struct Env {
    runtime: tokio::runtime::Runtime,
    site: Site,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
        let site = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind the member: {e}"));
            let member = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("the member's address: {e}"));
            tokio::spawn(run_member(listener));
            let text = format!(
                "<Proxy \"balancer://app\">\n\
                 \x20   BalancerMember \"http://{member}\" route=m1\n\
                 </Proxy>\n\
                 ProxyPass \"/private\" \"!\"\n\
                 ProxyPass \"/\" \"balancer://app/\"\n\
                 ProxyPassReverse \"/\" \"balancer://app/\"\n"
            );
            let config = parse(&text).unwrap_or_else(|e| panic!("the target's config: {e}"));
            Site::from_config(&config).unwrap_or_else(|e| panic!("the target's site: {e}"))
        });
        Env { runtime, site }
    })
}

/// Arbitrary client bytes through the server and the site; see the module docs.
///
/// # Panics
///
/// When the property breaks.
pub fn front_door(data: &[u8]) {
    let env = env();
    // Whatever a previous input left behind is that input's (its connection may outlive it).
    take_violations();
    let finished = env.runtime.block_on(async {
        tokio::time::timeout(INPUT_BOUND, one_connection(env.site.clone(), data)).await
    });
    let violations = take_violations();
    assert!(
        violations.is_empty(),
        "a member saw an ambiguous request: {violations:?}"
    );
    assert!(
        finished.is_ok(),
        "the connection was still open after {INPUT_BOUND:?}"
    );
}

fn take_violations() -> Vec<String> {
    std::mem::take(&mut *VIOLATIONS.lock())
}

fn violation(what: String) {
    VIOLATIONS.lock().push(what);
}

/// Short limits: the client never closes its side (a client that does is gone, and its
/// request dropped), so every input ends by a timeout once the server has answered.
fn limits() -> ClientLimits {
    ClientLimits::new()
        .header_timeout(ReadTimeout::new(Duration::from_millis(100)))
        .body_timeout(ReadTimeout::new(Duration::from_millis(100)))
        .keep_alive_timeout(Duration::from_millis(50))
        .timeout(Duration::from_millis(500))
        .limit_request_body(1 << 20)
}

async fn one_connection(site: Site, data: &[u8]) {
    let (client, server_side) = tokio::io::duplex(64 * 1024);
    let peer: SocketAddr = ([127, 0, 0, 1], 40_000).into();
    let local: SocketAddr = ([127, 0, 0, 1], 80).into();
    let server = Server::new().limits(limits());
    let connection = tokio::spawn(async move {
        server
            .serve_connection(server_side, peer, local, site)
            .await
    });
    let (mut reader, mut writer) = tokio::io::split(client);
    let data = data.to_vec();
    let write = async move {
        // The server may close before it read everything: that is its right.
        let _ = writer.write_all(&data).await;
        writer
    };
    let read = async move {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink).await;
    };
    let (writer, ()) = tokio::join!(write, read);
    drop(writer);
    let _ = connection.await;
}

/// A member that reads requests strictly, records what is ambiguous, and answers `ok`.
async fn run_member(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(member_connection(stream));
    }
}

async fn member_connection(stream: TcpStream) {
    let mut stream = BufReader::new(stream);
    loop {
        let head = match read_head(&mut stream).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(what) => {
                violation(what);
                return;
            }
        };
        let framing = match check_head(&head) {
            Ok(framing) => framing,
            Err(what) => {
                violation(format!("{what} in {:?}", String::from_utf8_lossy(&head)));
                return;
            }
        };
        if let Err(what) = read_body(&mut stream, framing).await {
            violation(what);
            return;
        }
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if stream.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}

/// The request head up to its empty line; `None` when the connection ends between requests.
async fn read_head(stream: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>, String> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        match stream.read_until(b'\n', &mut line).await {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Err("the proxy closed mid-head".to_owned()),
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
        if !line.ends_with(b"\r\n") {
            return Err(format!("a head line not ended by CRLF: {line:?}"));
        }
        let empty = line.len() == 2;
        head.extend_from_slice(&line);
        if head.len() > MEMBER_HEAD_LIMIT {
            return Err("a head over 256 KiB reached the member".to_owned());
        }
        if empty {
            return Ok(Some(head));
        }
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_head(head: &[u8]) -> Result<Framing, String> {
    // Field values may carry obs-text (bytes 0x80-0xFF, RFC 9110 §5.5): legal, not
    // ambiguous. Names and the request line are checked as tokens below, so reading the
    // rest lossily hides nothing.
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    if parts.len() != 3 || parts[2] != "HTTP/1.1" || !is_token(parts[0]) || parts[1].is_empty() {
        return Err(format!("a malformed request line {request_line:?}"));
    }
    if parts[1].bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("a control or space in the target {:?}", parts[1]));
    }
    let (mut hosts, mut lengths, mut encodings) = (0, Vec::new(), Vec::new());
    for line in lines.filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            return Err(format!("a folded header line {line:?}"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a header line without a colon {line:?}"));
        };
        if !is_token(name) {
            return Err(format!("a header name that is not a token {name:?}"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!("a control character in {name}"));
        }
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "host" => hosts += 1,
            "content-length" => lengths.push(value.to_owned()),
            "transfer-encoding" => encodings.push(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    if hosts != 1 {
        return Err(format!("{hosts} Host fields"));
    }
    match (lengths.as_slice(), encodings.as_slice()) {
        ([], []) => Ok(Framing::None),
        ([length], []) => {
            if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("a Content-Length of {length:?}"));
            }
            length
                .parse()
                .map(Framing::Length)
                .map_err(|_| format!("a Content-Length of {length:?}"))
        }
        ([], [coding]) if coding == "chunked" => Ok(Framing::Chunked),
        _ => Err(format!(
            "framing by Content-Length {lengths:?} and Transfer-Encoding {encodings:?}"
        )),
    }
}

async fn read_body(stream: &mut BufReader<TcpStream>, framing: Framing) -> Result<(), String> {
    match framing {
        Framing::None => Ok(()),
        Framing::Length(n) => {
            let mut rest = n;
            let mut buf = [0_u8; 8192];
            while rest > 0 {
                let want = usize::try_from(rest.min(8192)).unwrap_or(8192);
                match stream.read(&mut buf[..want]).await {
                    Ok(0) | Err(_) => return Ok(()), // the proxy gave up mid-body: its right
                    Ok(read) => rest -= read as u64,
                }
            }
            Ok(())
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            match stream.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let size = text.trim_end_matches("\r\n");
            let size = size.split(';').next().unwrap_or_default();
            let Ok(size) = u64::from_str_radix(size, 16) else {
                return Err(format!("a malformed chunk size line {text:?}"));
            };
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut trailer = Vec::new();
                    match stream.read_until(b'\n', &mut trailer).await {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(_) if trailer == b"\r\n" => return Ok(()),
                        Ok(_) => {}
                    }
                }
            }
            let mut chunk = vec![0_u8; usize::try_from(size).unwrap_or(usize::MAX).min(1 << 20)];
            if stream.read_exact(&mut chunk).await.is_err() {
                return Ok(());
            }
            let mut crlf = [0_u8; 2];
            if stream.read_exact(&mut crlf).await.is_err() {
                return Ok(());
            }
            if &crlf != b"\r\n" {
                return Err("a chunk not followed by CRLF".to_owned());
            }
        },
    }
}
