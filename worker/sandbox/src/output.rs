//! What a command printed: stdout and stderr through one pipe (so they interleave as a
//! reader of a terminal would see them), the last [`crate::Spec::output_cap`] bytes kept
//! (the end of a test run is where its failures are summed up), and the text made fit for
//! a prompt or a comment: ANSI codes removed, secrets replaced.

use std::io::Read;
use std::sync::Mutex;

/// The kept tail of the output and how much there was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The last bytes, at most the cap.
    pub kept: Vec<u8>,
    /// Everything the command printed, kept or not.
    pub total_bytes: u64,
}

#[derive(Debug)]
pub struct Capture {
    cap: usize,
    buffer: Vec<u8>,
    total: u64,
}

impl Capture {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buffer: Vec::new(),
            total: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.buffer.extend_from_slice(bytes);
        // Trimmed in batches, not per read: amortized linear.
        if self.buffer.len() > self.cap.saturating_mul(2).max(64 * 1024) {
            let cut = self.buffer.len() - self.cap;
            self.buffer.drain(..cut);
        }
    }

    pub fn snapshot(&self) -> Output {
        let start = self.buffer.len().saturating_sub(self.cap);
        Output {
            kept: self.buffer[start..].to_vec(),
            total_bytes: self.total,
        }
    }
}

/// Reads the pipe to its end (blocking: run on a blocking thread).
pub fn read_into(mut reader: std::io::PipeReader, capture: &Mutex<Capture>) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => capture
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(&chunk[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

impl Output {
    /// At most `max_bytes` of the end of the output as text: invalid UTF-8 replaced,
    /// terminal escape codes and carriage-return overdraws removed, every occurrence of a
    /// secret replaced by `[redacted]`, cut at a line start where one is near.
    pub fn tail_text(&self, max_bytes: usize, secrets: &[&str]) -> String {
        let text = redact(&strip_ansi(&String::from_utf8_lossy(&self.kept)), secrets);
        let shown = tail(&text, max_bytes);
        let cut = self.total_bytes > self.kept.len() as u64 || shown.len() < text.len();
        if cut {
            format!(
                "[... only the end of {} bytes of output is shown]\n{shown}",
                self.total_bytes
            )
        } else {
            shown.to_owned()
        }
    }
}

/// The last `max_bytes` of `text`, starting at a character boundary, and at a line start
/// when one is within the first quarter of the window.
fn tail(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let window = &text[start..];
    match window[..window.len() / 4].find('\n') {
        Some(newline) => &window[newline + 1..],
        None => window,
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, and
/// two-byte `ESC x`) and keeps, of a line overdrawn with `\r`, what a terminal shows last.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => {
                // A progress bar redrawn in place: keep only what follows the last `\r`.
                let line_start = out.rfind('\n').map_or(0, |i| i + 1);
                out.truncate(line_start);
            }
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Every occurrence of each secret (ignoring ones shorter than 8 characters, which would
/// blank ordinary words) replaced by `[redacted]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_kept_and_counted() {
        let mut capture = Capture::new(10);
        for _ in 0..100_000 {
            capture.push(b"0123456789abcdef");
        }
        let output = capture.snapshot();
        assert_eq!(output.kept, b"6789abcdef");
        assert_eq!(output.total_bytes, 1_600_000);
    }

    #[test]
    fn escape_codes_overdraws_and_secrets_are_removed() {
        let raw = "\u{1b}[31mFAILED\u{1b}[0m test_x\r\n10%\r50%\r100%\n\u{1b}]0;title\u{7}token ghp_secretsecret1 end";
        let output = Output {
            kept: raw.as_bytes().to_vec(),
            total_bytes: raw.len() as u64,
        };
        assert_eq!(
            output.tail_text(10_000, &["ghp_secretsecret1", "short"]),
            "FAILED test_x\n100%\ntoken [redacted] end"
        );
    }

    #[test]
    fn a_cut_tail_starts_at_a_line_and_says_so() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let output = Output {
            kept: text.clone().into_bytes(),
            total_bytes: text.len() as u64,
        };
        let shown = output.tail_text(100, &[]);
        assert!(shown.starts_with("[... "), "{shown}");
        assert!(shown.ends_with("line 999\n"));
        let body = shown.split_once('\n').expect("note line").1;
        assert!(body.starts_with("line "), "{body}");
        assert!(tail("日本語テキスト", 5).is_char_boundary(0));
    }
}
