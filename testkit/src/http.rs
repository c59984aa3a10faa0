//! HTTP headers as a server sends them, for the unit tests of the code that reads them
//! (`retry-after`, `x-ratelimit-*`): one builder, so no test module keeps its own.

use reqwest::header::{HeaderMap, HeaderValue};

/// A header map holding `pairs` (name, value); a value that is not a valid header value
/// is a mistake in the test and panics.
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).expect("value"));
    }
    map
}
