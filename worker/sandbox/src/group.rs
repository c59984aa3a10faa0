//! The command's process group: started with `process_group(0)`, so the group id is the
//! child's pid, and killed as a whole. With bubblewrap the group holds bwrap and the PID
//! namespace's init; killing the init makes the kernel kill everything in the namespace,
//! including what `setsid` moved out of the group.

use rustix::process::{Pid, Signal, kill_process_group};
use std::time::Duration;

#[derive(Debug)]
pub struct Group(Option<Pid>);

/// How often the group is signalled: a process forking in a loop may add a member between
/// the kernel's walk over the group and its own death.
const KILL_ROUNDS: usize = 50;

impl Group {
    pub fn of(child: &tokio::process::Child) -> Self {
        Self(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(Pid::from_raw),
        )
    }

    /// SIGKILL to every member until none is left (or the rounds are spent). The leader
    /// is reaped on the way: an unreaped zombie still counts as a member.
    pub async fn kill_all(&self, leader: &mut tokio::process::Child) {
        let Some(pid) = self.0 else { return };
        for _ in 0..KILL_ROUNDS {
            let _ = leader.try_wait();
            if kill_process_group(pid, Signal::KILL).is_err() {
                // ESRCH: nobody left in the group.
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::warn!(
            pgid = pid.as_raw_nonzero().get(),
            "process group still alive after SIGKILL rounds"
        );
    }
}

impl Drop for Group {
    /// A run dropped mid-way (the task's future cancelled) leaves nothing behind.
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

/// Whether this process holds any effective capability (root in a container): then the
/// process sandbox drops them for its children.
pub fn has_capabilities() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16) != Ok(0))
        .unwrap_or(true)
}
