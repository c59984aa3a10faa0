//! How long to wait before the next attempt: exponential backoff with jitter, or the
//! server's own `retry-after` when it sends one (capped, so a server cannot park a worker).

use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime};

/// First backoff step; doubles per retry.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest computed backoff step.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait taken from a `retry-after` header.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: DEFAULT_BASE_BACKOFF,
            max: DEFAULT_MAX_BACKOFF,
            retry_after_cap: DEFAULT_RETRY_AFTER_CAP,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            // The server knows when its rate window reopens; waiting less only earns another
            // 429, waiting more than the cap stalls the task (it is requeued instead).
            return wait.min(self.retry_after_cap);
        }
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        let step = self.base.saturating_mul(factor).min(self.max);
        // Jitter (up to a quarter of the step) keeps workers that failed together from
        // retrying together.
        let jitter_ms = u64::try_from(step.as_millis() / 4).unwrap_or(u64::MAX);
        step + Duration::from_millis(fastrand::u64(0..=jitter_ms))
    }
}

/// The server's requested wait: `retry-after-ms` (OpenAI), else `retry-after` as seconds or
/// an HTTP date. Unparseable values are ignored (backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::http::headers;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
            retry_after_cap: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let first = backoff.delay(1, None);
            assert!((100..=125).contains(&first.as_millis()), "{first:?}");
            let second = backoff.delay(2, None);
            assert!((200..=250).contains(&second.as_millis()), "{second:?}");
            let capped = backoff.delay(10, None);
            assert!((350..=437).contains(&capped.as_millis()), "{capped:?}");
        }
        // Large retry numbers do not overflow.
        assert!(backoff.delay(u32::MAX, None) <= Duration::from_millis(437));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let backoff = Backoff::default();
        assert_eq!(
            backoff.delay(3, Some(Duration::ZERO)),
            Duration::ZERO,
            "the server's word beats the backoff"
        );
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(3600))),
            DEFAULT_RETRY_AFTER_CAP
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "7")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &in_ten)]), now),
            Some(Duration::from_secs(10))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
