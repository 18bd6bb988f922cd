//! Files generated from the clap definitions for the packages: shell completions and man
//! pages, so they never drift from the real options.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use super::{exit, Cli};

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hakeep", &mut script);
    match std::io::stdout().write_all(&script) {
        // `hakeep completions bash | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(exit::OK),
    }
}

/// hakeep.1 and one hakeep-COMMAND.1 per visible subcommand.
pub fn man_pages(dir: &Path) -> anyhow::Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = Cli::command().version(super::VERSION);
    write_page(dir, "hakeep", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("hakeep-{}", sub.get_name());
        let sub = sub.clone().name(name.clone()).version(super::VERSION);
        write_page(dir, &name, sub)?;
    }
    Ok(exit::OK)
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .with_context(|| format!("rendering {name}.1"))?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_visible_subcommand_gets_a_page() {
        let dir = tempfile::tempdir().unwrap();
        super::man_pages(dir.path()).unwrap();
        for name in [
            "hakeep",
            "hakeep-status",
            "hakeep-plan",
            "hakeep-switchover",
        ] {
            let page = std::fs::read_to_string(dir.path().join(format!("{name}.1"))).unwrap();
            assert!(page.contains(".TH"), "{name}: {page}");
        }
        assert!(!dir.path().join("hakeep-peer-command.1").exists());
    }
}
