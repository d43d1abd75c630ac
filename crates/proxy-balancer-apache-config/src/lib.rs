//! Apache httpd balancer configuration for proxy-balancer (work in progress).

pub mod ast;

pub use ast::*;
