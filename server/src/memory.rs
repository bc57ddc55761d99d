//! Memory freed after a burst goes back to the system.
//!
//! glibc's malloc keeps freed memory in its arenas (one per thread that allocated) and
//! returns only the top of each heap by itself. After a burst (2,000 requests/s, 1,000
//! event streams and a flood of sign-ins, all ended) the process stayed 22 % above where
//! it started although nothing was live any more: one `malloc_trim(0)` took it to 7 %
//! *below* the start (BENCHMARKS.md, issue 13). So a background task trims every few
//! seconds; it walks the arenas and gives whole free pages back, and costs little when
//! there is nothing to give.

use std::time::Duration;

/// Default time between two trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Trims every `every`; `None` where the allocator is not glibc's (others return memory
/// by themselves, or have no such call).
pub fn spawn_trimmer(every: Duration) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = every;
        None
    }
}

/// Gives free memory back to the kernel; returns whether any was.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim(3) only releases free memory; glibc documents it as safe to
    // call from any thread at any time (MT-Safe), and it takes no pointers.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    fn rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn memory_freed_on_other_threads_goes_back_after_a_trim() {
        // Small blocks (below the mmap threshold) allocated and freed on several threads
        // stay in their arenas: the case the hostile-load benchmark left behind.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1024]).collect();
                    // Keep every 64th block so the heap cannot simply shrink from its top.
                    blocks.retain(|b| b[0] % 64 == 0);
                    std::hint::black_box(&blocks);
                    std::mem::forget(blocks);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let before = rss_kb();
        super::trim();
        let after = rss_kb();
        assert!(before > after + 20_000, "a trim gives back most of ~80 MB freed: {before} kB -> {after} kB");
    }
}
