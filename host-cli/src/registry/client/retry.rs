//! The client's one retry policy.
//!
//! Every operation of [`super::Registry`] is retried at exactly one level, with this budget:
//!
//! - a single request (`GET`, `HEAD`, a manifest `PUT`, a mount `POST`…): [`super::Registry`]'s
//!   `send` retries it whole;
//! - a monolithic blob upload: the `POST` that opens the session and the `PUT` with the body
//!   are each sent once, and the pair is retried whole, in a new session (a `PUT` whose body
//!   broke off may have left bytes in the old one);
//! - a chunked upload: each `PATCH` and each offset query is sent once; after a failure the
//!   upload asks the registry for its offset and resumes there, and the budget starts over
//!   once a chunk goes through.
//!
//! So a request is never retried inside a loop that retries it again.

use std::time::Duration;

/// Delays before the first, second and third retry; after that the failure is final.
pub(crate) const RETRY_DELAYS_MS: [u64; 3] = [200, 1000, 3000];

/// Whether a registry answered with a status worth trying again: 429 or any 5xx.
pub(crate) fn transient_status(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Whether a transport error is worth trying again: the connection failed, timed out, or
/// broke while the request was sent.
pub(crate) fn transient_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

/// The retries left to one operation.
#[derive(Debug, Default)]
pub(crate) struct Retry {
    failures: usize,
}

impl Retry {
    /// After a failure worth retrying: waits the next delay and returns `true`, or returns
    /// `false` at once when the budget is spent (the caller then reports the failure).
    pub(crate) async fn wait(&mut self, why: &(dyn std::fmt::Display + Sync)) -> bool {
        let Some(ms) = RETRY_DELAYS_MS.get(self.failures) else {
            self.failures += 1;
            return false;
        };
        self.failures += 1;
        tracing::debug!("transient failure ({why}), retrying in {ms} ms");
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        true
    }

    /// Progress was made: the next failure gets the whole budget again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// How many failures this operation has seen.
    pub(crate) fn failures(&self) -> usize {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_is_three_retries_and_resets_on_progress() {
        let mut r = Retry::default();
        let start = tokio::time::Instant::now();
        assert!(r.wait(&"a").await);
        assert!(r.wait(&"b").await);
        assert!(r.wait(&"c").await);
        assert!(!r.wait(&"d").await);
        assert_eq!(r.failures(), 4);
        assert_eq!(start.elapsed(), Duration::from_millis(200 + 1000 + 3000));
        r.reset();
        assert!(r.wait(&"e").await);
        assert_eq!(r.failures(), 1);
    }
}
