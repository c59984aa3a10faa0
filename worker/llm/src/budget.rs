//! What a task may spend on the LLM, checked before every call: `TASK_MAX_LLM_CALLS`
//! (default 8), `TASK_MAX_TOKENS` (input + output, default 1,000,000) and
//! `TASK_MAX_COST_USD` (none by default), the cost from `LLM_PRICES`
//! (`model=input/output` in USD per million tokens, comma-separated).
//!
//! The check is before the call, against what was spent so far: a call is never sent when
//! the budget is already used up, and the stop names the budget and the figures.

use crate::Usage;
use std::collections::HashMap;
use std::fmt;

/// USD per million tokens, input and output, of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

/// `LLM_PRICES`: model id → price.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(HashMap<String, Price>);

impl Prices {
    /// Parses `claude-sonnet-4-5=3/15,gpt-4.1=2/8`. An empty text is no prices.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut prices = HashMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (model, pair) = entry.split_once('=').ok_or_else(|| {
                format!("`{entry}`: write model=input/output (USD per million tokens)")
            })?;
            let (input, output) = pair
                .split_once('/')
                .ok_or_else(|| format!("`{entry}`: the price is input/output, e.g. 3/15"))?;
            let number = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("`{entry}`: `{s}` is not a price in USD"))
            };
            prices.insert(
                model.trim().to_owned(),
                Price {
                    input_per_million: number(input)?,
                    output_per_million: number(output)?,
                },
            );
        }
        Ok(Self(prices))
    }

    pub fn of(&self, model: &str) -> Option<Price> {
        self.0.get(model).copied()
    }

    /// The cost of `usage` on `model`; `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: Usage) -> Option<f64> {
        self.of(model).map(|price| {
            (usage.input_tokens as f64 * price.input_per_million
                + usage.output_tokens as f64 * price.output_per_million)
                / 1_000_000.0
        })
    }
}

/// The limits of one task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub max_calls: u32,
    pub max_tokens: u64,
    pub max_cost_usd: Option<f64>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_calls: 8,
            max_tokens: 1_000_000,
            max_cost_usd: None,
        }
    }
}

/// What a task has spent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    pub calls: u32,
    pub usage: Usage,
    pub cost_usd: f64,
}

impl Spent {
    pub fn add(&mut self, usage: Usage, cost_usd: Option<f64>) {
        self.calls += 1;
        self.usage += usage;
        self.cost_usd += cost_usd.unwrap_or(0.0);
    }
}

/// A budget that is used up: which one, and the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetExceeded {
    /// The setting: `TASK_MAX_LLM_CALLS`, `TASK_MAX_TOKENS` or `TASK_MAX_COST_USD`.
    pub budget: &'static str,
    pub spent: String,
    pub limit: String,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the task's LLM budget is used up: {} of {} ({})",
            self.spent, self.limit, self.budget
        )
    }
}

impl Budget {
    /// Whether one more call may be sent after `spent`.
    pub fn allows_another(&self, spent: &Spent) -> Result<(), BudgetExceeded> {
        if spent.calls >= self.max_calls {
            return Err(BudgetExceeded {
                budget: "TASK_MAX_LLM_CALLS",
                spent: format!("{} calls", spent.calls),
                limit: format!("{} calls", self.max_calls),
            });
        }
        if spent.usage.total() >= self.max_tokens {
            return Err(BudgetExceeded {
                budget: "TASK_MAX_TOKENS",
                spent: format!("{} tokens", spent.usage.total()),
                limit: format!("{} tokens", self.max_tokens),
            });
        }
        if let Some(max) = self.max_cost_usd
            && spent.cost_usd >= max
        {
            return Err(BudgetExceeded {
                budget: "TASK_MAX_COST_USD",
                spent: format!("${:.4}", spent.cost_usd),
                limit: format!("${max:.4}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
        }
    }

    #[test]
    fn prices_parse_and_cost_per_million() {
        let prices = Prices::parse("claude-sonnet-4-5=3/15, gpt-4.1 = 2/8").expect("valid");
        let cost = prices
            .cost("claude-sonnet-4-5", usage(1_000_000, 100_000))
            .expect("priced");
        assert!((cost - 4.5).abs() < 1e-9, "{cost}");
        assert_eq!(prices.cost("unknown", usage(1, 1)), None);
        assert_eq!(Prices::parse("").expect("empty"), Prices::default());
        for bad in ["x", "x=3", "x=a/1", "x=-1/2", "x=1/inf"] {
            assert!(Prices::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_budget_stops_the_next_call_and_names_itself() {
        let budget = Budget {
            max_calls: 2,
            max_tokens: 1000,
            max_cost_usd: Some(0.01),
        };
        let mut spent = Spent::default();
        assert!(budget.allows_another(&spent).is_ok());
        spent.add(usage(100, 10), Some(0.001));
        assert!(budget.allows_another(&spent).is_ok());
        spent.add(usage(100, 10), Some(0.001));
        let stop = budget.allows_another(&spent).expect_err("two calls spent");
        assert_eq!(stop.budget, "TASK_MAX_LLM_CALLS");
        assert_eq!(
            stop.to_string(),
            "the task's LLM budget is used up: 2 calls of 2 calls (TASK_MAX_LLM_CALLS)"
        );

        let tokens = Spent {
            calls: 0,
            usage: usage(900, 100),
            cost_usd: 0.0,
        };
        assert_eq!(
            budget.allows_another(&tokens).expect_err("tokens").budget,
            "TASK_MAX_TOKENS"
        );
        let cost = Spent {
            calls: 0,
            usage: usage(1, 1),
            cost_usd: 0.02,
        };
        let stop = budget.allows_another(&cost).expect_err("cost");
        assert_eq!(
            (stop.budget, stop.spent.as_str(), stop.limit.as_str()),
            ("TASK_MAX_COST_USD", "$0.0200", "$0.0100")
        );
    }
}
