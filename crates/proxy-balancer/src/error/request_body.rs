//! The client's request body failed: not the member's fault.

use std::fmt;

use http::StatusCode;

/// Why a client's request body could not be read to the end.
///
/// The server's request body (`server::RequestBody`) yields this error,
/// and the member client reports a request that failed on it as the client's error
/// ([`ErrorKind::Client`](crate::ErrorKind::Client)): answered with [`status`](Self::status), not
/// retried, and the member is not blamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestBodyError {
    /// The body's framing is broken (a bad chunk size, a body shorter than its
    /// `Content-Length`): 400, as Apache.
    Framing,
    /// The client was slower than `RequestReadTimeout body=` allows: 408.
    TimedOut,
    /// The body is larger than `LimitRequestBody`: 413.
    TooLarge,
    /// The client went away before its body was read: 400 (nobody sees it).
    Aborted,
}

// ===== impl RequestBodyError =====

impl RequestBodyError {
    /// The status the client is answered with, as Apache answers it.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::Framing | Self::Aborted => StatusCode::BAD_REQUEST,
            Self::TimedOut => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Framing => "the request body's framing is broken",
            Self::TimedOut => "the client sent its request body too slowly",
            Self::TooLarge => "the request body is larger than LimitRequestBody",
            Self::Aborted => "the client went away before its request body was read",
        })
    }
}

impl std::error::Error for RequestBodyError {}
