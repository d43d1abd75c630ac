//! Health probes (mod_proxy_hcheck): work in progress.

pub mod expr;
