//! Apache's balancer-manager for proxy-balancer (work in progress).

pub mod edit;
pub mod render;
