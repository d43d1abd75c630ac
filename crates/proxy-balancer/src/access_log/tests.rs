use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use tower::{service_fn, Layer, ServiceExt};

use super::format::push_escaped;
use super::*;
use crate::{LocalAddr, PeerAddr};

#[test]
fn nicknames_are_apaches_defaults() {
    assert_eq!(LogFormat::parse("common").unwrap().as_str(), COMMON);
    assert_eq!(
        LogFormat::parse("combined").unwrap().as_str(),
        r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#
    );
    assert_eq!(nickname("referer"), Some("%{Referer}i -> %U"));
    assert_eq!(nickname("nope"), None);
}

#[test]
fn unknown_and_unsupported_directives_are_refused_by_name() {
    let unknown = LogFormat::parse("%h %J").unwrap_err();
    assert!(matches!(&unknown, FormatError::Unknown { directive, at: 3 } if directive == "%J"));
    assert_eq!(
        unknown.to_string(),
        "unknown log format directive %J (at byte 3)"
    );
    for (format, directive) in [
        ("%I", "%I"),
        ("%S", "%S"),
        ("%k", "%k"),
        ("%{HOME}e", "%{HOME}e"),
        ("%{%c}t", "%{%c}t"),
        ("%{x}a", "%{x}a"),
    ] {
        let err = LogFormat::parse(format).unwrap_err();
        assert!(
            matches!(&err, FormatError::Unsupported { .. }),
            "{format}: {err:?}"
        );
        assert_eq!(err.directive(), directive);
    }
    for format in [
        "%",
        "%{Referer",
        "%{}i",
        "%{bad name}i",
        "%{x}r",
        "%{ks}T",
        "%12s",
    ] {
        assert!(
            matches!(LogFormat::parse(format), Err(FormatError::Invalid { .. })),
            "{format}"
        );
    }
}

#[test]
fn escaping_is_ap_escape_logitem() {
    let mut out = String::new();
    push_escaped(&mut out, b"a\"b\\c\nd\re\tf\x08g\x0bh\x01i\x7fj\xffk l");
    assert_eq!(out, r#"a\"b\\c\nd\re\tf\bg\vh\x01i\x7fj\xffk l"#);
}

/// A writer whose output the test reads.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn lines(sink: &Sink, n: usize) -> String {
    for _ in 0..500 {
        let text = String::from_utf8_lossy(&sink.0.lock()).into_owned();
        if text.lines().count() >= n {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "fewer than {n} lines: {:?}",
        String::from_utf8_lossy(&sink.0.lock())
    );
}

fn request(uri: &str) -> Request<Full<Bytes>> {
    let mut request = Request::get(uri)
        .header("host", "front.example:8080")
        .header("user-agent", "a\"b")
        .header("accept", "text/html")
        .header("accept", "*/*")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let peer: SocketAddr = "192.0.2.7:50123".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    request.extensions_mut().insert(PeerAddr(peer));
    request.extensions_mut().insert(LocalAddr(local));
    request
}

#[tokio::test]
async fn every_field_renders() {
    let sink = Sink::default();
    let writer = AccessLogWriter::new(sink.clone(), 16).unwrap();
    let format: LogFormat = concat!(
        "%h|%a|%{c}a|%A|%l|%u|%r|%>s|%s|%b|%B|%m|%U|%q|%H|%v|%V|%p|%{remote}p|",
        "%{Accept}i|%{User-Agent}i|%{Set-Cookie}o|%{X-Missing}o|%X|%%|%404{Accept}i|%!404{Accept}i|",
        "%{BALANCER_NAME}e|%{sec}t\\t%P"
    )
    .parse()
    .unwrap();
    let layer = AccessLogLayer::new(format, writer).server_name("www.example.com");
    let service = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2")
                .body(Full::new(Bytes::from("nope")))
                .unwrap(),
        )
    }));
    let response = service.oneshot(request("/p%20x?q=1")).await.unwrap();
    response.into_body().collect().await.unwrap();
    let text = lines(&sink, 1).await;
    let fields: Vec<&str> = text.trim_end().split('|').collect();
    let (time_pid, fields) = fields.split_last().unwrap();
    assert_eq!(
        fields,
        [
            "192.0.2.7",
            "192.0.2.7",
            "192.0.2.7",
            "127.0.0.1",
            "-",
            "-",
            "GET /p%20x?q=1 HTTP/1.1",
            "404",
            "404",
            "4",
            "4",
            "GET",
            "/p%20x",
            "?q=1",
            "HTTP/1.1",
            "www.example.com",
            "front.example",
            "8080",
            "50123",
            "text/html, */*",
            "a\\\"b",
            "a=1, b=2",
            "-",
            "+",
            "%",
            "text/html, */*",
            "-",
            "-",
        ]
    );
    let (secs, pid) = time_pid.split_once('\t').unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
    assert_eq!(pid, std::process::id().to_string());
}

#[tokio::test]
async fn a_dropped_body_is_an_abort_and_an_empty_one_is_a_dash() {
    let sink = Sink::default();
    let writer = AccessLogWriter::new(sink.clone(), 16).unwrap();
    let layer = AccessLogLayer::new("%r %b %B %X".parse().unwrap(), writer);
    let service = layer.layer(service_fn(|req: Request<Full<Bytes>>| async move {
        let body = if req.uri().path() == "/empty" {
            ""
        } else {
            "0123456789"
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    }));
    // Dropped unread: aborted, nothing sent.
    drop(service.clone().oneshot(request("/big")).await.unwrap());
    // Empty and dropped unread (as hyper does): complete.
    drop(service.clone().oneshot(request("/empty")).await.unwrap());
    // HTTP/1.0 without keep-alive: the connection closes.
    let mut old = request("/big");
    *old.version_mut() = Version::HTTP_10;
    let response = service.oneshot(old).await.unwrap();
    response.into_body().collect().await.unwrap();
    let text = lines(&sink, 3).await;
    assert_eq!(
        text,
        "GET /big HTTP/1.1 - 0 X\nGET /empty HTTP/1.1 - 0 +\nGET /big HTTP/1.0 10 10 -\n"
    );
}

#[tokio::test]
async fn a_failed_service_is_logged_as_500() {
    let sink = Sink::default();
    let writer = AccessLogWriter::new(sink.clone(), 16).unwrap();
    let layer = AccessLogLayer::new("%>s %b %X".parse().unwrap(), writer);
    let service = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("boom"))
    }));
    assert!(service.oneshot(request("/")).await.is_err());
    assert_eq!(lines(&sink, 1).await, "500 - X\n");
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_is_logged_as_499() {
    let sink = Sink::default();
    let writer = AccessLogWriter::new(sink.clone(), 16).unwrap();
    let layer = AccessLogLayer::new("%r %>s %b %X".parse().unwrap(), writer);
    let service = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let call = service.oneshot(request("/slow"));
    assert!(
        tokio::time::timeout(Duration::from_millis(10), call)
            .await
            .is_err(),
        "never answers"
    );
    assert_eq!(lines(&sink, 1).await, "GET /slow HTTP/1.1 499 - X\n");
}
