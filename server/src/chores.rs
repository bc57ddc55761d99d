//! Leader-only background work, declared in one table (see `startup::chores`) and run by
//! one loop: each chore has a name, a period, and whether a fleet change should also wake
//! it. Only the replica that leads runs them (with SQLite, the one process always leads);
//! a failure is logged under the chore's name and the chore runs again at its next turn.
//! Work that every replica does for itself (its event streams, its log feed, its memory)
//! is not a chore.

use crate::error::Result;
use futures::future::BoxFuture;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The work of one chore.
type Work = Box<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// One piece of periodic, leader-only work.
pub struct Chore {
    /// What it is called in the log.
    pub name: &'static str,
    /// The longest time between two runs while this replica leads.
    pub every: Duration,
    /// Also run as soon as the fleet changes (a quiet cluster sends nothing, so `every`
    /// still bounds the wait).
    pub on_fleet_change: bool,
    work: Work,
}

impl Chore {
    /// A chore that runs `work` every `every`.
    pub fn new<F, Fut>(name: &'static str, every: Duration, work: F) -> Chore
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Chore { name, every, on_fleet_change: false, work: Box::new(move || Box::pin(work())) }
    }

    /// Also runs when the fleet changes.
    pub fn on_fleet_change(mut self) -> Chore {
        self.on_fleet_change = true;
        self
    }
}

/// Runs `chores` in one task while `leads()` says this replica leads: each when its period
/// is up, and those that ask for it after every change `fleet` announces. They run one
/// after another, so no chore ever overlaps itself.
pub fn spawn(
    chores: Vec<Chore>,
    leads: impl Fn() -> bool + Send + 'static,
    mut fleet: watch::Receiver<u64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut due: Vec<Instant> = chores.iter().map(|_| start).collect();
        let mut fleet_open = true;
        loop {
            let next = due.iter().min().copied().unwrap_or_else(|| start + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = fleet.changed(), if fleet_open => match changed {
                    Ok(()) => {
                        let now = Instant::now();
                        for (chore, at) in chores.iter().zip(due.iter_mut()) {
                            if chore.on_fleet_change {
                                *at = now;
                            }
                        }
                    }
                    Err(_) => fleet_open = false,
                },
            }
            let now = Instant::now();
            let leading = leads();
            for (chore, at) in chores.iter().zip(due.iter_mut()) {
                if *at > now {
                    continue;
                }
                *at = now + chore.every;
                if !leading {
                    continue;
                }
                if let Err(e) = (chore.work)().await {
                    tracing::warn!(chore = chore.name, error = ?e, "a background chore failed; it runs again at its next turn");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn counting(name: &'static str, every: Duration, count: &Arc<AtomicUsize>) -> Chore {
        let count = Arc::clone(count);
        Chore::new(name, every, move || {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn chores_run_at_their_period_only_while_this_replica_leads() {
        let (fast, slow) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let leading = Arc::new(AtomicBool::new(true));
        let (_tx, rx) = watch::channel(0u64);
        let lead = Arc::clone(&leading);
        let task = spawn(
            vec![counting("fast", Duration::from_secs(2), &fast), counting("slow", Duration::from_secs(60), &slow)],
            move || lead.load(Ordering::SeqCst),
            rx,
        );
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        // At 0, 2, 4, 6, 8 and 10 s; the slow one once, at 0.
        assert_eq!((fast.load(Ordering::SeqCst), slow.load(Ordering::SeqCst)), (6, 1));
        leading.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!((fast.load(Ordering::SeqCst), slow.load(Ordering::SeqCst)), (6, 1), "a follower runs nothing");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_change_wakes_the_chores_that_ask_for_it_and_no_others() {
        let (woken, periodic) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (tx, rx) = watch::channel(0u64);
        let task = spawn(
            vec![
                counting("reverts", Duration::from_secs(60), &woken).on_fleet_change(),
                counting("prune", Duration::from_secs(60), &periodic),
            ],
            || true,
            rx,
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        for n in 1..=3 {
            tx.send_replace(n);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!((woken.load(Ordering::SeqCst), periodic.load(Ordering::SeqCst)), (4, 1));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_chore_is_tried_again_and_holds_no_other_back() {
        let (tries, other) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let count = Arc::clone(&tries);
        let failing = Chore::new("failing", Duration::from_secs(1), move || {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                Err(crate::error::AppError::Internal("the database is away".into()))
            }
        });
        let (_tx, rx) = watch::channel(0u64);
        let task = spawn(vec![failing, counting("other", Duration::from_secs(1), &other)], || true, rx);
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!((tries.load(Ordering::SeqCst), other.load(Ordering::SeqCst)), (4, 4));
        task.abort();
    }
}
