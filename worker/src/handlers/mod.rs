//! Task handlers: the coding agent, and the test-only recorder.

pub mod test_recorder;
