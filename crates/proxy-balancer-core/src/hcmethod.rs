//! Apache's `hcmethod` vocabulary, shared by the health probes, the balancer-manager's
//! `w_hm` and the configuration reader.

use std::fmt;
use std::str::FromStr;

use crate::ParamError;

/// A health-check method: Apache's `hcmethod` (mod_proxy_hcheck), `NONE` included.
///
/// Parsing is case-insensitive and ignores surrounding whitespace; the names print in
/// Apache's upper case.
///
/// ```
/// use proxy_balancer_core::HcMethod;
///
/// assert_eq!("get11".parse::<HcMethod>()?, HcMethod::Get11);
/// assert_eq!(HcMethod::None.to_string(), "NONE");
/// assert!("CPING".parse::<HcMethod>().is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HcMethod {
    /// `NONE`: no health check (Apache's default).
    None,
    /// `TCP`: connect only.
    Tcp,
    /// `OPTIONS`, HTTP/1.0.
    Options,
    /// `HEAD`, HTTP/1.0.
    Head,
    /// `GET`, HTTP/1.0.
    Get,
    /// `OPTIONS11`, HTTP/1.1.
    Options11,
    /// `HEAD11`, HTTP/1.1.
    Head11,
    /// `GET11`, HTTP/1.1.
    Get11,
}

impl HcMethod {
    /// Every method, in Apache's order.
    pub const ALL: [Self; 8] = [
        Self::None,
        Self::Tcp,
        Self::Options,
        Self::Head,
        Self::Get,
        Self::Options11,
        Self::Head11,
        Self::Get11,
    ];

    /// The valid names, for messages: `NONE, TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11, GET11`.
    pub const NAMES: &'static str = "NONE, TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11, GET11";

    /// Apache's name (`NONE`, `TCP`, `GET11` …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Tcp => "TCP",
            Self::Options => "OPTIONS",
            Self::Head => "HEAD",
            Self::Get => "GET",
            Self::Options11 => "OPTIONS11",
            Self::Head11 => "HEAD11",
            Self::Get11 => "GET11",
        }
    }
}

impl FromStr for HcMethod {
    type Err = ParamError;

    /// Parses an `hcmethod` value (case-insensitive). `CPING` and `PROVIDER`, which Apache
    /// accepts only with other modules, are errors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = s.trim();
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| {
                ParamError::invalid(
                    "hcmethod",
                    s,
                    format!("unknown method; expected one of {}", Self::NAMES),
                )
            })
    }
}

impl fmt::Display for HcMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::HcMethod;

    #[test]
    fn every_name_round_trips_in_any_case_and_names_lists_them_all() {
        for m in HcMethod::ALL {
            assert_eq!(m.as_str().parse::<HcMethod>().ok(), Some(m));
            assert_eq!(
                m.as_str().to_ascii_lowercase().parse::<HcMethod>().ok(),
                Some(m)
            );
            assert_eq!(format!(" {m} ").parse::<HcMethod>().ok(), Some(m));
        }
        let listed: Vec<&str> = HcMethod::NAMES.split(", ").collect();
        let all: Vec<&str> = HcMethod::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(listed, all);
        for bad in ["CPING", "PROVIDER", "", "GET 11"] {
            assert!(bad.parse::<HcMethod>().is_err(), "{bad}");
        }
    }
}
