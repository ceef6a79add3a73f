//! The exit codes of every `handoff` command, distinct so a script or a
//! unit can tell why it stopped (the README lists them).

/// Caught up (`--once`) or stopped on request.
pub const OK: u8 = 0;
/// The config, a secret or the state directory cannot be used.
pub const INVALID: u8 = 1;
/// `--once`: actions were given up on (`handoff state` lists them).
pub const ACTIONS_FAILED: u8 = 3;
/// `--once`: records are quarantined (`handoff state` lists them).
pub const QUARANTINED: u8 = 4;
/// The shutdown grace ran out and the process left work in flight.
pub const GRACE_EXPIRED: u8 = 5;
/// `--once`: ticks kept failing (the CRM or its token endpoint is down)
/// and the run could not catch up.
pub const NOT_CAUGHT_UP: u8 = 6;
/// `--once`: the API budget ran out before the run caught up.
pub const BUDGET_SPENT: u8 = 7;
/// `doctor`: the org lacks something the config needs (each miss is
/// listed with its fix).
pub const DOCTOR_MISSING: u8 = 8;
