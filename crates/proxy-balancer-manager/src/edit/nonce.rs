//! The nonce check: whether a request may change a balancer.

use proxy_balancer_core::Nonce;

// ===== nonce =====

/// Whether the `nonce` parameter `given` lets a request change balancer `balancer_nonce`.
///
/// - [`Nonce::Disabled`] (`nonce=None`): no check, always true.
/// - [`Nonce::Fixed`]: `given` must equal the configured nonce.
/// - [`Nonce::Auto`]: `given` must equal `auto`, the nonce generated for this balancer at
///   start. An empty `auto` never matches.
///
/// The comparison takes the same time wherever the strings differ.
///
/// ```
/// use proxy_balancer_core::Nonce;
/// use proxy_balancer_manager::edit::nonce_matches;
///
/// assert!(nonce_matches(&Nonce::Fixed("s3cret".into()), Some("s3cret"), ""));
/// assert!(!nonce_matches(&Nonce::Fixed("s3cret".into()), Some("s3creT"), ""));
/// assert!(!nonce_matches(&Nonce::Auto, None, "7f0c…"));
/// assert!(nonce_matches(&Nonce::Disabled, None, ""));
/// ```
///
/// # Apache
///
/// With `nonce=None` Apache refuses every change; we turn the check off, as its docs say
/// (see the README, "Where we differ from Apache").
#[must_use]
pub fn nonce_matches(balancer_nonce: &Nonce, given: Option<&str>, auto: &str) -> bool {
    let expected = match balancer_nonce {
        Nonce::Disabled => return true,
        Nonce::Fixed(s) => s.as_str(),
        Nonce::Auto => auto,
        _ => return false,
    };
    match given {
        Some(given) if !expected.is_empty() => {
            constant_time_eq(expected.as_bytes(), given.as_bytes())
        }
        _ => false,
    }
}

/// Compares without an early exit on the first difference (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
