//! The per-member state machine (consecutive `hcpasses` / `hcfails`) and its counters.

use std::time::Instant;

use crate::core::{MemberState, StatusFlags};

use super::probe::ProbeOutcome;

/// What one probe result did to the member's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed.
    None,
    /// `hcfails` failures in a row: `C` set (Apache's AH03303, "DISABLING").
    Disabled,
    /// `hcpasses` passes in a row while down: `C` and `E` cleared (AH03302, "ENABLING").
    Enabled,
}

/// The runs of results of one member. Only the probe task of that member writes it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Runs {
    /// Passes in a row while down (`C` or `E` set).
    passes: u32,
    /// Failures in a row while up.
    fails: u32,
}

impl Runs {
    /// Applies one result to `state` and returns what changed.
    ///
    /// Down (`C` or `E` set): a pass extends the run of passes and a failure ends it; at
    /// `passes_needed` in a row, `C` and `E` are cleared. Up: a failure extends the run of
    /// failures and a pass ends it; at `fails_needed` in a row, `C` is set. Unlike Apache
    /// 2.4.71, whose counters are cumulative, the runs are consecutive (see the README, "Where we differ from Apache").
    pub(crate) fn record(
        &mut self,
        passed: bool,
        passes_needed: u32,
        fails_needed: u32,
        state: &MemberState,
    ) -> Transition {
        let down = state
            .flags()
            .intersects(StatusFlags::HC_FAILED | StatusFlags::IN_ERROR);
        if down {
            self.fails = 0;
            if !passed {
                self.passes = 0;
                return Transition::None;
            }
            self.passes += 1;
            if self.passes < passes_needed.max(1) {
                return Transition::None;
            }
            self.passes = 0;
            // Clearing E this way counts a retry, as Apache's recovery does.
            state.clear_error();
            state.remove_flags(StatusFlags::HC_FAILED);
            state.note_success();
            Transition::Enabled
        } else {
            self.passes = 0;
            if passed {
                self.fails = 0;
                return Transition::None;
            }
            self.fails += 1;
            if self.fails < fails_needed.max(1) {
                return Transition::None;
            }
            self.fails = 0;
            state.insert_flags(StatusFlags::HC_FAILED);
            Transition::Disabled
        }
    }
}

/// The probe counters of one member, as [`HealthMonitor`](super::HealthMonitor) reports
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberHealth {
    /// Probes finished.
    pub probes: u64,
    /// Probes that passed.
    pub passes: u64,
    /// Probes that failed.
    pub failures: u64,
    /// The last probe's result.
    pub last: Option<ProbeOutcome>,
    /// When the last probe finished.
    pub last_probe: Option<Instant>,
    /// When the probe last set or cleared `C` (or cleared `E`).
    pub last_change: Option<Instant>,
    /// Times the probe set `C` (AH03303).
    pub disabled: u64,
    /// Times the probe brought the member back (AH03302).
    pub enabled: u64,
}

impl MemberHealth {
    /// The last probe's status, for an HTTP probe that got one.
    #[must_use]
    pub fn last_status(&self) -> Option<u16> {
        self.last.and_then(|o| o.status())
    }

    /// Whether the last probe passed (`None` before the first probe).
    #[must_use]
    pub fn last_passed(&self) -> Option<bool> {
        self.last.map(|o| o.passed())
    }

    pub(crate) fn note(&mut self, outcome: ProbeOutcome, transition: Transition, now: Instant) {
        self.probes += 1;
        if outcome.passed() {
            self.passes += 1;
        } else {
            self.failures += 1;
        }
        self.last = Some(outcome);
        self.last_probe = Some(now);
        match transition {
            Transition::None => {}
            Transition::Disabled => {
                self.disabled += 1;
                self.last_change = Some(now);
            }
            Transition::Enabled => {
                self.enabled += 1;
                self.last_change = Some(now);
            }
        }
    }
}
