//! Member status flags (`status=` on a `BalancerMember`, `w_status_X` in the manager).

use std::fmt;
use std::str::FromStr;

use crate::error::ParamError;
use crate::sync::{AtomicU32, Ordering};

/// A set of Apache member status flags.
///
/// Each flag is one letter of Apache's `status=` parameter:
///
/// | letter | const | manager text | usable? |
/// | --- | --- | --- | --- |
/// | `I` | [`IGNORE_ERRORS`](Self::IGNORE_ERRORS) | `Ign` | yes |
/// | `N` | [`DRAIN`](Self::DRAIN) | `Drn` | yes, but only sticky requests reach it |
/// | `D` | [`DISABLED`](Self::DISABLED) | `Dis` | no |
/// | `S` | [`STOPPED`](Self::STOPPED) | `Stop` | no |
/// | `E` | [`IN_ERROR`](Self::IN_ERROR) | `Err` | no |
/// | `H` | [`HOT_STANDBY`](Self::HOT_STANDBY) | `Stby` | yes |
/// | `R` | [`HOT_SPARE`](Self::HOT_SPARE) | `Spar` | yes |
/// | `C` | [`HC_FAILED`](Self::HC_FAILED) | `HcFl` | no |
/// | `J` | [`EJECTED`](Self::EJECTED) (beyond Apache) | `Ejct` | no |
///
/// `J` is set only by outlier ejection (see [`OutlierParams`](crate::OutlierParams)):
/// `status=+J` in a configuration is refused, `-J` clears it (the manager's
/// `w_status_J=0` lifts an ejection early).
///
/// # Apache
///
/// Parsing follows Apache's: the string is read left to right, `+` switches to setting
/// and `-` to clearing (setting is the initial mode), letters are case-insensitive and an
/// unknown letter is an error.
///
/// ```
/// use proxy_balancer_core::StatusFlags;
///
/// let flags: StatusFlags = "-H+D+S".parse()?;
/// assert_eq!(flags, StatusFlags::DISABLED | StatusFlags::STOPPED);
/// assert_eq!(flags.label().to_string(), "Init Dis Stop ");
/// assert_eq!("+h".parse::<StatusFlags>()?.label().to_string(), "Init Stby Ok ");
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusFlags(u32);

/// Letter, flag bit and manager text, in Apache's display order.
const TABLE: [(char, u32, &str); 9] = [
    ('I', 1 << 0, "Ign "),
    ('N', 1 << 1, "Drn "),
    ('D', 1 << 2, "Dis "),
    ('S', 1 << 3, "Stop "),
    ('E', 1 << 4, "Err "),
    ('H', 1 << 5, "Stby "),
    ('R', 1 << 6, "Spar "),
    ('C', 1 << 7, "HcFl "),
    // Beyond Apache: none of Apache's letters (its internal ones O, G, U and F included).
    ('J', 1 << 8, "Ejct "),
];

const ALL_BITS: u32 = 0x1ff;

impl StatusFlags {
    /// No flag set: a plain, usable member.
    pub const EMPTY: Self = Self(0);
    /// `I`: ignore errors; the member is never put in error state.
    pub const IGNORE_ERRORS: Self = Self(1 << 0);
    /// `N`: draining; only sticky requests for this member reach it.
    pub const DRAIN: Self = Self(1 << 1);
    /// `D`: disabled; accepts no request.
    pub const DISABLED: Self = Self(1 << 2);
    /// `S`: administratively stopped; never retried.
    pub const STOPPED: Self = Self(1 << 3);
    /// `E`: in error; usable again once its `retry` window has passed.
    pub const IN_ERROR: Self = Self(1 << 4);
    /// `H`: hot standby; used only when nothing else in its lbset is usable.
    pub const HOT_STANDBY: Self = Self(1 << 5);
    /// `R`: hot spare; replaces an unusable member of its lbset one-for-one.
    pub const HOT_SPARE: Self = Self(1 << 6);
    /// `C`: failed its health check.
    pub const HC_FAILED: Self = Self(1 << 7);
    /// `J` (beyond Apache): ejected by outlier detection until its ejection time has
    /// passed. Set only by the ejection itself, never by `status=`.
    pub const EJECTED: Self = Self(1 << 8);

    /// The flags that make a member unusable: `D`, `S`, `E`, `C` and `J` (a literal: the
    /// bits are disjoint, see [`Self::bits`]).
    pub const UNUSABLE: Self = Self(0x19c);
    /// The unusable flags a panic threshold overrides (`E`, `C`, `J`): a member with only
    /// these is balanced over when its lbset is in panic. `D` and `S` are the operator's.
    pub(crate) const PANIC_USABLE: Self = Self(0x190);

    /// The raw bits (stable within one version of this crate only).
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    #[must_use]
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Self(bits & ALL_BITS)
    }

    /// Whether every flag of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self` with the flags of `other` added.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` without the flags of `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The flags in both `self` and `other`.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether a member with these flags may receive requests: none of `D`, `S`, `E`, `C`,
    /// `J`.
    ///
    /// # Apache
    ///
    /// `PROXY_WORKER_IS_USABLE`: initialised and none of the disabling flags.
    #[must_use]
    pub const fn is_usable(self) -> bool {
        !self.intersects(Self::UNUSABLE)
    }

    /// The flag for one of Apache's status letters (case-insensitive).
    #[must_use]
    pub fn from_letter(letter: char) -> Option<Self> {
        let upper = letter.to_ascii_uppercase();
        TABLE
            .iter()
            .find(|(l, _, _)| *l == upper)
            .map(|(_, bit, _)| Self(*bit))
    }

    /// Applies an Apache `status=` string to these flags: `+` sets, `-` clears, letters
    /// without a sign set (or clear, after a `-`).
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] naming `status` for a letter that is not a status flag,
    /// or for setting `J` ([`Self::EJECTED`]), which only outlier ejection sets.
    pub fn apply(&mut self, spec: &str) -> Result<(), ParamError> {
        let mut next = *self;
        let mut setting = true;
        for c in spec.chars() {
            match c {
                '+' => setting = true,
                '-' => setting = false,
                c => {
                    let Some(flag) = Self::from_letter(c) else {
                        return Err(ParamError::invalid(
                            "status",
                            spec,
                            format!(
                                "unknown status flag {c:?}; expected one of I N D S E H R C (or -J)"
                            ),
                        ));
                    };
                    if setting && flag == Self::EJECTED {
                        return Err(ParamError::invalid(
                            "status",
                            spec,
                            "J (ejected) is set only by outlier ejection; -J clears it".to_owned(),
                        ));
                    }
                    next = if setting {
                        next.union(flag)
                    } else {
                        next.difference(flag)
                    };
                }
            }
        }
        *self = next;
        Ok(())
    }

    /// The status text the balancer-manager shows, e.g. `Init Ok ` or `Init Dis Stop `.
    #[must_use]
    pub const fn label(self) -> StatusLabel {
        StatusLabel(self)
    }

    /// Iterates over the set flags in Apache's display order.
    pub fn iter(self) -> impl Iterator<Item = Self> {
        TABLE
            .iter()
            .filter(move |(_, bit, _)| self.0 & bit != 0)
            .map(|(_, bit, _)| Self(*bit))
    }
}

impl std::ops::BitOr for StatusFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for StatusFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

impl FromStr for StatusFlags {
    type Err = ParamError;

    /// Parses an Apache `status=` value starting from no flag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut flags = Self::EMPTY;
        flags.apply(s)?;
        Ok(flags)
    }
}

impl fmt::Display for StatusFlags {
    /// Writes the flags as Apache `status=` letters (`DH`); parsing that gives them back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (letter, bit, _) in TABLE {
            if self.0 & bit != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusFlags({self})")
    }
}

/// The manager's status text for a set of flags, as Apache prints it (see
/// [`StatusFlags::label`]). Every label starts with `Init ` and ends with a space.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusLabel(StatusFlags);

impl fmt::Display for StatusLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Init ")?;
        for (_, bit, text) in TABLE {
            if self.0 .0 & bit != 0 {
                f.write_str(text)?;
            }
        }
        if self.0.is_usable() {
            f.write_str("Ok ")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StatusLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// The flags of one member in one atomic word, shared by every snapshot.
#[derive(Debug, Default)]
pub(crate) struct AtomicFlags(AtomicU32);

impl AtomicFlags {
    pub(crate) fn new(flags: StatusFlags) -> Self {
        Self(AtomicU32::new(flags.0))
    }

    pub(crate) fn load(&self) -> StatusFlags {
        StatusFlags(self.0.load(Ordering::Acquire))
    }

    /// Sets `flags`; returns the flags before.
    pub(crate) fn insert(&self, flags: StatusFlags) -> StatusFlags {
        StatusFlags(self.0.fetch_or(flags.0, Ordering::AcqRel))
    }

    /// Clears `flags`; returns the flags before.
    pub(crate) fn remove(&self, flags: StatusFlags) -> StatusFlags {
        StatusFlags(self.0.fetch_and(!flags.0, Ordering::AcqRel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apache_examples() {
        let d: StatusFlags = "D".parse().unwrap();
        assert_eq!(d, StatusFlags::DISABLED);
        let mut f = StatusFlags::DISABLED;
        f.apply("+H-D").unwrap();
        assert_eq!(f.label().to_string(), "Init Stby Ok ");
        let f: StatusFlags = "-H+D+S".parse().unwrap();
        assert_eq!(f.label().to_string(), "Init Dis Stop ");
        let f: StatusFlags = "S-E".parse().unwrap();
        assert_eq!(f, StatusFlags::STOPPED);
        assert_eq!("s".parse::<StatusFlags>().unwrap(), StatusFlags::STOPPED);
    }

    #[test]
    fn labels() {
        let cases = [
            ("", "Init Ok "),
            ("E", "Init Err "),
            ("D", "Init Dis "),
            ("H", "Init Stby Ok "),
            ("R", "Init Spar Ok "),
            ("N", "Init Drn Ok "),
            ("I", "Init Ign Ok "),
            ("C", "Init HcFl "),
            ("DS", "Init Dis Stop "),
            ("CHI", "Init Ign Stby HcFl "),
        ];
        for (spec, label) in cases {
            let f: StatusFlags = spec.parse().unwrap();
            assert_eq!(f.label().to_string(), label, "status={spec}");
        }
    }

    #[test]
    fn unknown_letter_is_an_error() {
        let err = "+X".parse::<StatusFlags>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("status"), "{text}");
        assert!(text.contains("+X"), "{text}");
        assert!("Ä".parse::<StatusFlags>().is_err());
        assert!("D ".parse::<StatusFlags>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for bits in 0..=ALL_BITS {
            let f = StatusFlags::from_bits_truncate(bits);
            if f.contains(StatusFlags::EJECTED) {
                // Written, but a configuration cannot set it.
                assert!(f.to_string().parse::<StatusFlags>().is_err(), "{f:?}");
                continue;
            }
            assert_eq!(f.to_string().parse::<StatusFlags>().unwrap(), f);
        }
    }

    #[test]
    fn ejected_is_beyond_apache() {
        let j = StatusFlags::EJECTED;
        assert_eq!(j.bits(), 1 << 8);
        assert_eq!(StatusFlags::from_letter('j'), Some(j));
        assert!(!j.is_usable());
        assert_eq!(j.label().to_string(), "Init Ejct ");
        assert_eq!(j.to_string(), "J");
        assert_eq!(
            (StatusFlags::HC_FAILED | j).label().to_string(),
            "Init HcFl Ejct "
        );
        // A configuration may clear it but not set it.
        let err = "+J".parse::<StatusFlags>().unwrap_err().to_string();
        assert!(err.contains("outlier ejection"), "{err}");
        assert!("DJ".parse::<StatusFlags>().is_err());
        let mut f = j | StatusFlags::DISABLED;
        f.apply("-J").unwrap();
        assert_eq!(f, StatusFlags::DISABLED);
        assert_eq!("D-J".parse::<StatusFlags>().unwrap(), StatusFlags::DISABLED);
    }

    #[test]
    fn unusable_and_panic_sets() {
        use StatusFlags as F;
        let unusable = F::DISABLED | F::STOPPED | F::IN_ERROR | F::HC_FAILED | F::EJECTED;
        assert_eq!(F::UNUSABLE, unusable);
        assert_eq!(F::PANIC_USABLE, F::IN_ERROR | F::HC_FAILED | F::EJECTED);
        assert_eq!(ALL_BITS, (1 << TABLE.len()) - 1);
        for (_, bit, _) in TABLE {
            let f = F::from_bits_truncate(bit);
            assert_eq!(f.is_usable(), !unusable.contains(f), "{f:?}");
        }
    }

    #[test]
    fn bits_sets_and_formatting() {
        let f = StatusFlags::DISABLED | StatusFlags::HOT_STANDBY;
        assert_eq!(f.bits(), (1 << 2) | (1 << 5));
        assert_eq!(StatusFlags::from_bits_truncate(f.bits()), f);
        // Unknown bits are dropped, known ones kept.
        assert_eq!(
            StatusFlags::from_bits_truncate(0xffff_fe00 | (1 << 4)),
            StatusFlags::IN_ERROR
        );
        assert!(StatusFlags::EMPTY.is_empty());
        assert!(!StatusFlags::IGNORE_ERRORS.is_empty());
        // Only the flags both have.
        let g = StatusFlags::HOT_STANDBY | StatusFlags::STOPPED;
        assert_eq!(f.intersection(g), StatusFlags::HOT_STANDBY);
        assert_eq!(f.intersection(StatusFlags::STOPPED), StatusFlags::EMPTY);
        let mut g = StatusFlags::STOPPED;
        g |= StatusFlags::IGNORE_ERRORS;
        assert_eq!(g, StatusFlags::STOPPED | StatusFlags::IGNORE_ERRORS);
        // In Apache's display order, one flag at a time.
        let all = StatusFlags::from_bits_truncate(ALL_BITS);
        let letters: String = all.iter().map(|f| f.to_string()).collect();
        assert_eq!(letters, "INDSEHRCJ");
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [StatusFlags::DISABLED, StatusFlags::HOT_STANDBY]
        );
        assert_eq!(StatusFlags::EMPTY.iter().count(), 0);
        assert_eq!(format!("{f:?}"), "StatusFlags(DH)");
        assert_eq!(format!("{:?}", f.label()), "\"Init Dis Stby \"");
    }

    #[test]
    fn atomic_transitions() {
        let a = AtomicFlags::new(StatusFlags::HOT_STANDBY);
        assert!(!a
            .insert(StatusFlags::IN_ERROR)
            .contains(StatusFlags::IN_ERROR));
        assert!(!a.load().is_usable());
        assert!(a
            .remove(StatusFlags::IN_ERROR)
            .contains(StatusFlags::IN_ERROR));
        assert_eq!(a.load(), StatusFlags::HOT_STANDBY);
    }
}
