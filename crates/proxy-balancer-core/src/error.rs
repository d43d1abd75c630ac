//! Errors of the core: bad parameters, bad edits of a balancer, and "no member to pick".

use std::borrow::Cow;

use crate::member::MemberId;

/// A balancer or member parameter that is unknown or has an invalid value.
///
/// The message names the parameter (with Apache's name) and the value, so that an operator
/// can find the line to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The parameter is known but the value is not valid for it.
    #[error("invalid value {value:?} for parameter `{param}`: {reason}")]
    InvalidValue {
        /// Apache's name of the parameter, e.g. `loadfactor`.
        param: Cow<'static, str>,
        /// The value as given.
        value: String,
        /// What is wrong with it and what is expected.
        reason: Cow<'static, str>,
    },
    /// No such parameter.
    #[error("unknown parameter `{param}`")]
    UnknownParameter {
        /// The name as given.
        param: String,
    },
}

impl ParamError {
    pub(crate) fn invalid(
        param: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::InvalidValue {
            param: param.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Apache's name of the parameter this error is about.
    #[must_use]
    pub fn param(&self) -> &str {
        match self {
            Self::InvalidValue { param, .. } => param,
            Self::UnknownParameter { param } => param,
        }
    }
}

/// A change to a balancer's member set or parameters that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A parameter is invalid.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// Two members have the same URL.
    #[error("duplicate member url {url:?}")]
    DuplicateMember {
        /// The URL given twice.
        url: String,
    },
    /// No member has this id (it was removed, or belongs to another balancer).
    #[error("no member with id {id}")]
    UnknownMember {
        /// The id asked for.
        id: MemberId,
    },
}

/// Why no member could be picked. The balancer answers these with 503, as Apache does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickError {
    /// The balancer has no member at all (Apache's AH01171).
    #[error("balancer has no members (AH01171)")]
    Empty,
    /// Every member is unusable (disabled, stopped, in error within its retry window,
    /// failed its health check, or already tried by this request): Apache's AH01170.
    #[error("all workers are in error state (AH01170)")]
    AllUnusable,
    /// The request's session route names a member that is unusable and the balancer has
    /// `nofailover=On`: Apache's AH01167, answered 503 with `Connection: close`.
    #[error("all workers are in error state for route ({route}) (AH01167)")]
    RouteUnusable {
        /// The session route of the request.
        route: String,
    },
}

impl PickError {
    /// Apache's log message id for this case (`AH01170`, `AH01171`, `AH01167`).
    #[must_use]
    pub const fn apache_id(&self) -> &'static str {
        match self {
            Self::Empty => "AH01171",
            Self::AllUnusable => "AH01170",
            Self::RouteUnusable { .. } => "AH01167",
        }
    }
}
