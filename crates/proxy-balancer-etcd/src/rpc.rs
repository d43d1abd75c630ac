//! The few calls of etcd's v3 gRPC API this crate makes (`KV`, `Watch`, `Lease`), with the
//! messages written by hand from etcd's `rpc.proto` and `kv.proto` (field numbers as
//! there) through prost's derive, over tonic's generic client: no `protoc` at build time.

// The messages mirror etcd's proto (every field of each message this crate uses, so that
// what etcd sends is decoded whole); only the messages of the calls made are declared.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::codec::{ProstCodec, Streaming};
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

// ===== messages =====

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub(crate) cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) member_id: u64,
    #[prost(int64, tag = "3")]
    pub(crate) revision: i64,
    #[prost(uint64, tag = "4")]
    pub(crate) raft_term: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub(crate) create_revision: i64,
    #[prost(int64, tag = "3")]
    pub(crate) mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub(crate) version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub(crate) value: Vec<u8>,
    #[prost(int64, tag = "6")]
    pub(crate) lease: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) range_end: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub(crate) limit: i64,
    #[prost(int64, tag = "4")]
    pub(crate) revision: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) kvs: Vec<KeyValue>,
    #[prost(bool, tag = "3")]
    pub(crate) more: bool,
    #[prost(int64, tag = "4")]
    pub(crate) count: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub(crate) lease: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DeleteRangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) range_end: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DeleteRangeResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(int64, tag = "2")]
    pub(crate) deleted: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RequestOp {
    #[prost(oneof = "request_op::Request", tags = "1, 2, 3")]
    pub(crate) request: Option<request_op::Request>,
}

pub(crate) mod request_op {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Request {
        #[prost(message, tag = "1")]
        Range(super::RangeRequest),
        #[prost(message, tag = "2")]
        Put(super::PutRequest),
        #[prost(message, tag = "3")]
        DeleteRange(super::DeleteRangeRequest),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseOp {
    #[prost(oneof = "response_op::Response", tags = "1, 2, 3")]
    pub(crate) response: Option<response_op::Response>,
}

pub(crate) mod response_op {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Response {
        #[prost(message, tag = "1")]
        Range(super::RangeResponse),
        #[prost(message, tag = "2")]
        Put(super::PutResponse),
        #[prost(message, tag = "3")]
        DeleteRange(super::DeleteRangeResponse),
    }
}

/// `Compare.CompareResult.EQUAL`.
pub(crate) const COMPARE_EQUAL: i32 = 0;
/// `Compare.CompareTarget.MOD`.
pub(crate) const TARGET_MOD: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Compare {
    #[prost(int32, tag = "1")]
    pub(crate) result: i32,
    #[prost(int32, tag = "2")]
    pub(crate) target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) key: Vec<u8>,
    #[prost(oneof = "compare::TargetUnion", tags = "6")]
    pub(crate) target_union: Option<compare::TargetUnion>,
}

pub(crate) mod compare {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum TargetUnion {
        #[prost(int64, tag = "6")]
        ModRevision(i64),
    }
}

impl Compare {
    /// The key's mod revision is `revision` (0: the key does not exist).
    pub(crate) fn mod_revision(key: &str, revision: i64) -> Self {
        Self {
            result: COMPARE_EQUAL,
            target: TARGET_MOD,
            key: key.as_bytes().to_vec(),
            target_union: Some(compare::TargetUnion::ModRevision(revision)),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub(crate) compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub(crate) failure: Vec<RequestOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TxnResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(bool, tag = "2")]
    pub(crate) succeeded: bool,
    #[prost(message, repeated, tag = "3")]
    pub(crate) responses: Vec<ResponseOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchRequest {
    #[prost(oneof = "watch_request::RequestUnion", tags = "1")]
    pub(crate) request_union: Option<watch_request::RequestUnion>,
}

pub(crate) mod watch_request {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum RequestUnion {
        #[prost(message, tag = "1")]
        CreateRequest(super::WatchCreateRequest),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchCreateRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) range_end: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub(crate) start_revision: i64,
    #[prost(bool, tag = "4")]
    pub(crate) progress_notify: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(int64, tag = "2")]
    pub(crate) watch_id: i64,
    #[prost(bool, tag = "3")]
    pub(crate) created: bool,
    #[prost(bool, tag = "4")]
    pub(crate) canceled: bool,
    #[prost(int64, tag = "5")]
    pub(crate) compact_revision: i64,
    #[prost(string, tag = "6")]
    pub(crate) cancel_reason: String,
    #[prost(bool, tag = "7")]
    pub(crate) fragment: bool,
    #[prost(message, repeated, tag = "11")]
    pub(crate) events: Vec<Event>,
}

/// `Event.EventType.DELETE` (`PUT` is 0).
pub(crate) const EVENT_DELETE: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Event {
    #[prost(int32, tag = "1")]
    pub(crate) kind: i32,
    #[prost(message, optional, tag = "2")]
    pub(crate) kv: Option<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseGrantRequest {
    #[prost(int64, tag = "1")]
    pub(crate) ttl: i64,
    #[prost(int64, tag = "2")]
    pub(crate) id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseGrantResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(int64, tag = "2")]
    pub(crate) id: i64,
    #[prost(int64, tag = "3")]
    pub(crate) ttl: i64,
    #[prost(string, tag = "4")]
    pub(crate) error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseRevokeRequest {
    #[prost(int64, tag = "1")]
    pub(crate) id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseRevokeResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseTimeToLiveRequest {
    #[prost(int64, tag = "1")]
    pub(crate) id: i64,
    #[prost(bool, tag = "2")]
    pub(crate) keys: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseTimeToLiveResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(int64, tag = "2")]
    pub(crate) id: i64,
    #[prost(int64, tag = "3")]
    pub(crate) ttl: i64,
    #[prost(int64, tag = "4")]
    pub(crate) granted_ttl: i64,
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub(crate) keys: Vec<Vec<u8>>,
}

// ===== client =====

/// How often an idle connection to etcd is pinged, so that a silently dead etcd is
/// noticed (a killed one is noticed at once: its connections close). Not less than etcd's
/// `--grpc-keepalive-min-time` (5 s by default): etcd closes a connection pinged more
/// often.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// The end of the range of every key that starts with `prefix` (etcd's `WithPrefix`).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): to the end of the key space.
    vec![0]
}

/// Channels to etcd's endpoints and the calls made on them, each bounded by `timeout`. A
/// call goes to the endpoint that answered last; when that one cannot be reached, to the
/// next (tonic's balancer would keep sending some calls to a dead endpoint).
#[derive(Debug)]
pub(crate) struct Client {
    channels: Vec<Channel>,
    current: AtomicUsize,
    timeout: Duration,
}

impl Client {
    /// Lazily connected channels to `endpoints`, with HTTP/2 keep-alives so that a dead
    /// etcd is noticed while idle (within 15 s).
    pub(crate) fn new(
        endpoints: &[String],
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let mut channels = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            channels.push(
                Endpoint::from_shared(e.clone())?
                    .connect_timeout(connect_timeout)
                    .tcp_nodelay(true)
                    // etcd answers pings closer than 5 s apart (its
                    // --grpc-keepalive-min-time) with GOAWAY `too_many_pings`.
                    .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
                    .keep_alive_timeout(Duration::from_secs(5))
                    .keep_alive_while_idle(true)
                    .connect_lazy(),
            );
        }
        Ok(Self {
            channels,
            current: AtomicUsize::new(0),
            timeout,
        })
    }

    /// Runs `call` on the current endpoint, then on each next one while the endpoint
    /// cannot be reached; all of it bounded by the timeout.
    async fn failover<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(tonic::client::Grpc<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let n = self.channels.len();
        let first = self.current.load(Ordering::Relaxed);
        let all = async {
            let mut last = Status::unavailable("no etcd endpoint");
            for step in 0..n {
                let i = (first + step) % n;
                let Some(channel) = self.channels.get(i) else {
                    continue;
                };
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                let result = match grpc.ready().await {
                    Ok(()) => call(grpc).await,
                    Err(e) => Err(Status::unavailable(format!("not connected: {e}"))),
                };
                match result {
                    Err(status) if status.code() == tonic::Code::Unavailable => last = status,
                    other => {
                        self.current.store(i, Ordering::Relaxed);
                        return other;
                    }
                }
            }
            Err(last)
        };
        tokio::time::timeout(self.timeout, all).await.map_err(|_| {
            Status::deadline_exceeded(format!("no answer within {:?}", self.timeout))
        })?
    }

    async fn unary<Q, R>(&self, path: &'static str, request: Q) -> Result<R, Status>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.failover(|mut grpc| {
            let request = request.clone();
            async move {
                grpc.unary(
                    tonic::Request::new(request),
                    PathAndQuery::from_static(path),
                    ProstCodec::<Q, R>::default(),
                )
                .await
                .map(tonic::Response::into_inner)
            }
        })
        .await
    }

    /// Every key under `prefix`, and the store's revision.
    pub(crate) async fn range_prefix(&self, prefix: &str) -> Result<RangeResponse, Status> {
        self.unary(
            "/etcdserverpb.KV/Range",
            RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix),
                ..RangeRequest::default()
            },
        )
        .await
    }

    pub(crate) async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Status> {
        self.unary("/etcdserverpb.KV/Txn", request).await
    }

    pub(crate) async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseGrantResponse, Status> {
        self.unary(
            "/etcdserverpb.Lease/LeaseGrant",
            LeaseGrantRequest {
                ttl: ttl_secs,
                id: 0,
            },
        )
        .await
    }

    /// Ends lease `id` (etcd deletes the keys bound to it).
    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Status> {
        self.unary("/etcdserverpb.Lease/LeaseRevoke", LeaseRevokeRequest { id })
            .await
    }

    /// Lease `id`'s time left and the keys bound to it (`ttl` -1: no such lease).
    pub(crate) async fn lease_keys(&self, id: i64) -> Result<LeaseTimeToLiveResponse, Status> {
        self.unary(
            "/etcdserverpb.Lease/LeaseTimeToLive",
            LeaseTimeToLiveRequest { id, keys: true },
        )
        .await
    }

    /// A watch of every key under `prefix` from `start_revision`.
    pub(crate) async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<Streaming<WatchResponse>, Status> {
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: prefix.as_bytes().to_vec(),
                    range_end: prefix_end(prefix),
                    start_revision,
                    progress_notify: true,
                },
            )),
        };
        self.failover(|mut grpc| {
            // The request stream stays open: etcd ends the watch when it closes.
            let requests = tokio_stream::iter([create.clone()]).chain(tokio_stream::pending());
            async move {
                grpc.streaming(
                    tonic::Request::new(requests),
                    PathAndQuery::from_static("/etcdserverpb.Watch/Watch"),
                    ProstCodec::<WatchRequest, WatchResponse>::default(),
                )
                .await
                .map(tonic::Response::into_inner)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end("/pb/"), b"/pb0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }
}
