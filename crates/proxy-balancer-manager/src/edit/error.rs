//! [`EditError`]: why a request was refused, and the HTTP status to answer with.

use std::borrow::Cow;

use http::StatusCode;
use proxy_balancer_core::ParamError;

// ===== errors =====

/// Why a balancer-manager request was refused. Nothing was changed.
///
/// [`EditError::status`] gives the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The form is longer than [`MAX_FORM_BYTES`](super::MAX_FORM_BYTES).
    #[error("form too large: {len} bytes, the limit is {limit}")]
    TooLarge {
        /// The length received.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The form is not valid `application/x-www-form-urlencoded` text.
    #[error("malformed form at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the problem in the body or query.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parameter appears more than once.
    #[error("parameter `{param}` is given more than once")]
    Duplicate {
        /// The parameter's name.
        param: String,
    },
    /// Parameters that the balancer-manager does not know.
    #[error("unknown parameters: {}", .params.join(", "))]
    UnknownParameters {
        /// Their names, in the order given.
        params: Vec<String>,
    },
    /// A parameter's value is malformed or out of range.
    #[error("invalid value {value:?} for `{param}`: {reason}")]
    InvalidValue {
        /// The manager's parameter name, e.g. `w_lf`.
        param: Cow<'static, str>,
        /// The value as given.
        value: String,
        /// What is wrong and what is expected.
        reason: Cow<'static, str>,
    },
    /// A parameter that these changes need is missing, e.g. `w` for a member change.
    #[error("missing parameter `{param}`, needed by `{needed_by}`")]
    Missing {
        /// The missing parameter.
        param: &'static str,
        /// A parameter that needs it.
        needed_by: String,
    },
    /// No balancer has this name.
    #[error("no balancer named {name:?}")]
    UnknownBalancer {
        /// The name as given in `b`.
        name: String,
    },
    /// The balancer has no member with this URL.
    #[error("no member {url:?} in this balancer")]
    UnknownMember {
        /// The URL as given in `w`.
        url: String,
    },
    /// `b_nwrkr` names a member the balancer already has.
    #[error("member {url:?} already exists")]
    DuplicateMember {
        /// The URL.
        url: String,
    },
    /// Adding a member needs a free `growth` slot and there is none.
    #[error("no free slot to add member {url:?}: growth is {growth}, {used} used")]
    NoFreeSlot {
        /// The URL that was to be added.
        url: String,
        /// The balancer's `growth`.
        growth: u8,
        /// Slots already used.
        used: usize,
    },
    /// The `nonce` parameter is missing or does not match the balancer's.
    #[error("missing or wrong nonce for balancer {balancer:?}")]
    BadNonce {
        /// The balancer's name.
        balancer: String,
    },
}

impl EditError {
    /// The HTTP status to answer with: 404 for an unknown balancer or member, 403 for a bad
    /// nonce, 400 for anything else (bad input).
    ///
    /// ```
    /// use proxy_balancer_manager::edit::EditError;
    ///
    /// let err = EditError::UnknownBalancer { name: "nope".into() };
    /// assert_eq!(err.status(), 404);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownBalancer { .. } | Self::UnknownMember { .. } => StatusCode::NOT_FOUND,
            Self::BadNonce { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable machine name for the error, as the JSON API gives it in `error.kind`:
    /// `too_large`, `malformed`, `duplicate`, `unknown_parameters`, `invalid_value`,
    /// `missing`, `unknown_balancer`, `unknown_member`, `duplicate_member`, `no_free_slot`,
    /// `bad_nonce`.
    ///
    /// ```
    /// use proxy_balancer_manager::edit::{parse_form, Edit};
    ///
    /// let err = Edit::from_form(&parse_form(b"b=c&w=x&w_ls=100")?).unwrap_err();
    /// assert_eq!(err.kind(), "invalid_value");
    /// assert_eq!(err.param(), Some("w_ls"));
    /// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
    /// ```
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed { .. } => "malformed",
            Self::Duplicate { .. } => "duplicate",
            Self::UnknownParameters { .. } => "unknown_parameters",
            Self::InvalidValue { .. } => "invalid_value",
            Self::Missing { .. } => "missing",
            Self::UnknownBalancer { .. } => "unknown_balancer",
            Self::UnknownMember { .. } => "unknown_member",
            Self::DuplicateMember { .. } => "duplicate_member",
            Self::NoFreeSlot { .. } => "no_free_slot",
            Self::BadNonce { .. } => "bad_nonce",
        }
    }

    /// The one parameter the error is about, when there is one (`duplicate`,
    /// `invalid_value`, `missing`; the first of `unknown_parameters`). See [`kind`](Self::kind).
    #[must_use]
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Duplicate { param } => Some(param),
            Self::InvalidValue { param, .. } => Some(param),
            Self::Missing { param, .. } => Some(param),
            Self::UnknownParameters { params } => params.first().map(String::as_str),
            _ => None,
        }
    }

    pub(super) fn invalid(
        param: impl Into<Cow<'static, str>>,
        value: &str,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::InvalidValue {
            param: param.into(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// A core [`ParamError`] restated for the manager parameter `param`.
    pub(super) fn from_param(param: &'static str, value: &str, err: ParamError) -> Self {
        let reason = match err {
            ParamError::InvalidValue { reason, .. } => reason,
            other => Cow::Owned(other.to_string()),
        };
        Self::invalid(param, value, reason)
    }
}
