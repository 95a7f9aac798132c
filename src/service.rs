//! Running as a service: logs to journald when systemd connected our
//! stderr to the journal (stderr otherwise), `sd_notify` readiness and
//! watchdog pings, and the signals that stop the daemon cleanly.

use crate::live::Progress;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Plain sentences on stderr, one per line, for terminals and CI.
struct StderrLog {
    level: log::LevelFilter,
}

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("tutti")
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            let _ = writeln!(std::io::stderr(), "tutti: {level}{}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Where logs went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Journal,
    Stderr,
}

/// Installs the logger: the journal when connected to it, stderr
/// otherwise. `TUTTI_LOG` (error, warn, info, debug) sets the level.
pub fn init_logging() -> LogTarget {
    let level = std::env::var("TUTTI_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    log::set_max_level(level);
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(journal) = systemd_journal_logger::JournalLog::new() {
            if journal.install().is_ok() {
                return LogTarget::Journal;
            }
        }
    }
    let _ = log::set_boxed_logger(Box::new(StderrLog { level }));
    LogTarget::Stderr
}

/// Tells systemd the daemon is ready (a no-op outside systemd).
pub fn notify_ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog every half interval, but only while audio keeps
/// arriving and windows keep being analysed: a stalled capture or worker
/// stops the pings and systemd restarts the service.
pub async fn watchdog(interval: Duration, progress: Arc<Progress>) {
    let period = interval / 2;
    let (mut frames, mut windows) = (0, 0);
    // No pings before the first window (READY).
    let mut last_window: Option<tokio::time::Instant> = None;
    let mut complained = false;
    loop {
        tokio::time::sleep(period).await;
        let now_frames = progress.frames.load(Ordering::Relaxed);
        let now_windows = progress.windows.load(Ordering::Relaxed);
        if now_windows > windows {
            last_window = Some(tokio::time::Instant::now());
        }
        // Audio since the last check, and a window within the interval
        // (a hop may be longer than half the interval).
        let audio = now_frames > frames;
        if audio && last_window.is_some_and(|t| t.elapsed() < interval) {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            complained = false;
        } else if !complained && last_window.is_some() {
            log::warn!(
                "No {} lately: not telling the watchdog all is well.",
                if audio { "analysed window" } else { "audio" }
            );
            complained = true;
        }
        (frames, windows) = (now_frames, now_windows);
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (exit) still applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received."),
        _ = int.recv() => log::info!("SIGINT received."),
    }
}
