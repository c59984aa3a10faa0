//! The per-replica memory of published deliveries: a redelivered webhook is answered
//! "duplicate" without a second message. Best effort by design (docs/contracts.md): the worker's
//! idempotent effects are what make duplicates harmless.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Published,
}

#[derive(Debug)]
struct Inner {
    states: HashMap<String, State>,
    published_order: VecDeque<String>,
    capacity: usize,
}

/// Bounded set of task ids: in flight (being published now) or published.
#[derive(Debug, Clone)]
pub struct Deliveries(Arc<Mutex<Inner>>);

/// The answer to "may I publish this task?".
#[derive(Debug)]
pub enum Claim {
    /// First sight: publish, then [`ClaimGuard::published`]. Dropping the guard unclaims.
    New(ClaimGuard),
    /// Published before: answer "duplicate".
    Duplicate,
    /// The same delivery is being published by a concurrent request right now.
    InFlight,
}

impl Deliveries {
    /// Remembers up to `capacity` published ids (oldest forgotten first).
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            states: HashMap::new(),
            published_order: VecDeque::new(),
            capacity: capacity.max(1),
        })))
    }

    pub fn claim(&self, task_id: &str) -> Claim {
        let mut inner = self.lock();
        match inner.states.get(task_id) {
            Some(State::Published) => Claim::Duplicate,
            Some(State::InFlight) => Claim::InFlight,
            None => {
                inner.states.insert(task_id.to_owned(), State::InFlight);
                Claim::New(ClaimGuard {
                    deliveries: self.clone(),
                    task_id: task_id.to_owned(),
                    published: false,
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Holds a claim while publishing; only a confirmed publish is remembered.
#[derive(Debug)]
pub struct ClaimGuard {
    deliveries: Deliveries,
    task_id: String,
    published: bool,
}

impl ClaimGuard {
    pub fn published(mut self) {
        self.published = true;
        let mut inner = self.deliveries.lock();
        inner.states.insert(self.task_id.clone(), State::Published);
        inner.published_order.push_back(self.task_id.clone());
        while inner.published_order.len() > inner.capacity {
            if let Some(old) = inner.published_order.pop_front() {
                inner.states.remove(&old);
            }
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.published {
            self.deliveries.lock().states.remove(&self.task_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_confirmed_publish_is_remembered() {
        let d = Deliveries::new(10);
        let Claim::New(guard) = d.claim("a") else {
            panic!("first claim")
        };
        assert!(matches!(d.claim("a"), Claim::InFlight));
        drop(guard); // publish failed
        let Claim::New(guard) = d.claim("a") else {
            panic!("retry after failure")
        };
        guard.published();
        assert!(matches!(d.claim("a"), Claim::Duplicate));
    }

    #[test]
    fn oldest_ids_are_forgotten_past_capacity() {
        let d = Deliveries::new(2);
        for id in ["a", "b", "c"] {
            let Claim::New(g) = d.claim(id) else {
                panic!("new")
            };
            g.published();
        }
        assert!(matches!(d.claim("a"), Claim::New(_)));
        assert!(matches!(d.claim("c"), Claim::Duplicate));
    }
}
