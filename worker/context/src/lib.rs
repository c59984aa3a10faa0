//! Context selection (skeleton: being built under issue 5).

use std::path::{Path, PathBuf};

/// `worker context` arguments.
#[derive(Debug, clap::Args)]
pub struct ContextArgs {
    /// The repository folder (a git checkout or a plain folder).
    #[arg(long)]
    pub repo: PathBuf,
    /// A file holding the issue text (title and body).
    #[arg(long)]
    pub issue_file: PathBuf,
    /// Token budget of the packed context.
    #[arg(long, default_value_t = 16_000)]
    pub budget: usize,
    /// Output format.
    #[arg(long, default_value = "json")]
    pub format: String,
}

/// Ranked files and the packed context.
#[derive(Debug, Default, serde::Serialize)]
pub struct Selection {
    pub files: Vec<RankedFile>,
    pub included: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct RankedFile {
    pub path: String,
    pub score: f64,
}

pub fn select(_repo: &Path, _issue: &str, _budget: usize) -> anyhow::Result<Selection> {
    anyhow::bail!("context selection is not built yet")
}

pub fn run_cli(args: &ContextArgs) -> anyhow::Result<()> {
    let issue = std::fs::read_to_string(&args.issue_file)?;
    let selection = select(&args.repo, &issue, args.budget)?;
    println!("{}", serde_json::to_string(&selection)?);
    Ok(())
}
