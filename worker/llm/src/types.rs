//! The provider-neutral request and answer: what the worker builds and what it gets back,
//! whichever API is behind the client.

use serde::Serialize;

/// Which step of a task a request serves; sent as `X-Agent-Phase` so gateways can attribute
/// cost and test stand-ins can script answers per phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Plan,
    Edit,
    /// The self-correction round after a failed apply or syntax gate.
    Repair,
}

impl Phase {
    /// The header value (and metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::Edit => "edit",
            Phase::Repair => "repair",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;

    /// Reads a header value back (stand-ins script their answers by phase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let names = [Phase::Plan, Phase::Edit, Phase::Repair].map(|p| (p.as_str(), p));
        shared::settings::one_of("phase", s, &names)
    }
}

shared::display_as_str!(Phase);

/// Who said a message. The system prompt is not a role here: it is [`LlmRequest::system`],
/// because Anthropic takes it outside the message list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One completion request. `messages` should start with a user message and alternate, as
/// both APIs expect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmRequest {
    /// Sent as `X-Agent-Task`; must be a valid header value (a UUID or similar).
    pub task_id: String,
    pub phase: Phase,
    /// May be empty, in which case no system prompt is sent.
    pub system: String,
    pub messages: Vec<Message>,
}

/// Tokens as the provider counted them; 0 when the server did not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmResponse {
    /// The answer's text (all text blocks, joined).
    pub text: String,
    /// Usage of the successful attempt only: failed attempts return no usage.
    pub usage: Usage,
    /// Requests sent, this one included (1 when the first attempt succeeded).
    pub attempts: u32,
    /// The model stopped at `max_tokens`, so the text is probably cut off.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_round_trips_through_its_header_value() {
        for phase in [Phase::Plan, Phase::Edit, Phase::Repair] {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        }
        assert!("review".parse::<Phase>().is_err());
    }
}
