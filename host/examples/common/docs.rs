//! Man pages and shell completions from a clap command; shared by the
//! `sensor-docs` and `collector-docs` examples (scripts/build-deb.sh).

use std::path::Path;

use clap_complete::Shell;

/// The page of `cmd` and of each subcommand (`name-sub.1`), and the
/// bash, zsh and fish completions.
pub fn write_all(mut cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    cmd.build();
    let name = cmd.get_name().to_string();
    page(&cmd, &man.join(format!("{name}.1")))?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // clap names are static strings; this program ends right after.
        let sub_name: &'static str = format!("{name}-{}", sub.get_name()).leak();
        let sub = sub.clone().name(sub_name);
        page(&sub, &man.join(format!("{sub_name}.1")))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)?;
    }
    Ok(())
}

fn page(cmd: &clap::Command, path: &Path) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    // clap's `after_long_help` (the exit statuses) lands in a section
    // clap_mangen calls EXTRA; man pages call it EXIT STATUS.
    let text = String::from_utf8_lossy(&out).replace(".SH EXTRA", ".SH \"EXIT STATUS\"");
    std::fs::write(path, text)
}
