//! What this replica knows of each pull request: the newest head whose plan started (a
//! sequence number, so an older plan that finishes last is recognised) and whether it was
//! closed. Pure; the [`super::PlanQueue`] holds it under its lock.
use std::collections::HashMap;

/// Pull requests remembered; the one touched longest ago is forgotten first.
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Pull {
    /// Sequence number of the newest plan started (0: none yet).
    started: u64,
    closed: bool,
    /// When it was last changed, for forgetting the oldest.
    touched: u64,
}

#[derive(Debug, Default)]
pub(super) struct Pulls {
    sequence: u64,
    by_number: HashMap<u64, Pull>,
}

impl Pulls {
    fn next(&mut self) -> u64 {
        // Sequence numbers only identify plans of this process: 2^64 of them do not happen.
        self.sequence = self.sequence.saturating_add(1);
        self.sequence
    }

    fn entry(&mut self, number: u64) -> &mut Pull {
        if self.by_number.len() >= REMEMBERED
            && !self.by_number.contains_key(&number)
            && let Some(oldest) = self
                .by_number
                .iter()
                .min_by_key(|(_, p)| p.touched)
                .map(|(n, _)| *n)
        {
            self.by_number.remove(&oldest);
        }
        self.by_number.entry(number).or_default()
    }

    pub(super) fn is_closed(&self, number: u64) -> bool {
        self.by_number.get(&number).is_some_and(|p| p.closed)
    }

    /// The pull request was reopened: its plans run again.
    pub(super) fn reopen(&mut self, number: u64) {
        let touched = self.next();
        let pull = self.entry(number);
        pull.closed = false;
        pull.touched = touched;
    }

    /// Closed: no plan of it starts, and none under way is written.
    pub(super) fn close(&mut self, number: u64) {
        let seq = self.next();
        let pull = self.entry(number);
        pull.closed = true;
        pull.started = seq;
        pull.touched = seq;
    }

    /// A plan of `number` starts: its sequence number, or `None` when the pull request is closed.
    pub(super) fn start(&mut self, number: u64) -> Option<u64> {
        if self.is_closed(number) {
            return None;
        }
        let seq = self.next();
        let pull = self.entry(number);
        pull.started = seq;
        pull.touched = seq;
        Some(seq)
    }

    /// Whether the plan `seq` of `number` is still the newest started, and the pull request open.
    pub(super) fn is_current(&self, number: u64, seq: u64) -> bool {
        match self.by_number.get(&number) {
            Some(pull) => !pull.closed && pull.started == seq,
            // Forgotten (thousands of newer pull requests since): nothing newer is known.
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_start_wins_and_a_close_ends_every_plan() {
        let mut pulls = Pulls::default();
        let a = pulls.start(7).unwrap();
        let b = pulls.start(7).unwrap();
        assert!(!pulls.is_current(7, a), "an older head is outdated");
        assert!(pulls.is_current(7, b));
        let other = pulls.start(8).unwrap();
        assert!(
            pulls.is_current(7, b) && pulls.is_current(8, other),
            "per pull request"
        );
        pulls.close(7);
        assert!(!pulls.is_current(7, b));
        assert_eq!(pulls.start(7), None, "closed: nothing starts");
        pulls.reopen(7);
        let c = pulls.start(7).unwrap();
        assert!(pulls.is_current(7, c) && !pulls.is_closed(7));
    }

    #[test]
    fn it_is_bounded_and_forgets_the_oldest() {
        let mut pulls = Pulls::default();
        pulls.close(1);
        for n in 2..=(REMEMBERED as u64 + 1) {
            pulls.start(n);
        }
        assert!(pulls.by_number.len() <= REMEMBERED);
        assert!(!pulls.is_closed(1), "the oldest was forgotten");
        assert!(pulls.by_number.contains_key(&(REMEMBERED as u64 + 1)));
    }
}
