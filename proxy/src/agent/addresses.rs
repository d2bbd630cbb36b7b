//! Knowing when the node's addresses may have changed: a netlink
//! subscription to address notifications wakes the agent at once (an
//! address added after start serves NodePorts within milliseconds), and a
//! slow poll covers lost notifications or a subscription that could not be
//! opened.
use std::time::Duration;

use strait_netlink::AddressWatch;
use tokio::io::unix::AsyncFd;

/// Re-read the addresses this often even without a notification.
const POLL_WITH_WATCH: Duration = Duration::from_secs(30);
/// ... and this often when the subscription could not be opened.
const POLL_WITHOUT_WATCH: Duration = Duration::from_secs(1);

/// Resolves [`changed`](Self::changed) whenever the addresses should be
/// read again.
pub struct AddressChanges {
    watch: Option<AsyncFd<AddressWatch>>,
    poll: tokio::time::Interval,
}

impl AddressChanges {
    /// Subscribes in the current network namespace; falls back to polling
    /// every second (with a warning) when that fails.
    pub fn new() -> Self {
        let registered = AddressWatch::open().and_then(|w| {
            // SAFETY: the watch owns its socket for its whole life and
            // always reports the same descriptor; the AsyncFd owns the watch.
            unsafe { AsyncFd::register_with_interest(w, tokio::io::Interest::READABLE) }
                .map_err(std::io::Error::from)
        });
        let watch = match registered {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to address changes; polling node addresses every second");
                None
            }
        };
        let period = if watch.is_some() {
            POLL_WITH_WATCH
        } else {
            POLL_WITHOUT_WATCH
        };
        let mut poll = tokio::time::interval(period);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { watch, poll }
    }

    /// Waits until the addresses may have changed: a notification arrived
    /// (all waiting ones are consumed) or the poll period passed.
    pub async fn changed(&mut self) {
        let Some(watch) = self.watch.as_mut() else {
            self.poll.tick().await;
            return;
        };
        tokio::select! {
            ready = watch.readable_mut() => {
                let Ok(mut guard) = ready else {
                    // The reactor refused the fd: poll from now on.
                    self.watch = None;
                    return;
                };
                if let Err(e) = guard.get_inner_mut().drain() {
                    tracing::warn!(error = %e, "reading address notifications failed");
                }
                guard.clear_ready();
            }
            _ = self.poll.tick() => {}
        }
    }
}
