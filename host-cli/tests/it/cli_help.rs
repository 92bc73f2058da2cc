//! `--help` teaches: every command shows its whole description (not only the one-line
//! summary), with an example where one helps. A doc comment on a subcommand variant once
//! replaced these descriptions silently.

use crate::common::{ddiff, ok};

#[test]
fn every_command_help_has_its_description_and_example() {
    let with_example = [
        "server",
        "diff",
        "inventory",
        "load",
        "list",
        "build",
        "push",
        "pull",
        "verify",
    ];
    for cmd in with_example.iter().chain(&["demo", "inspect"]) {
        let text = ok(ddiff().args([cmd, "--help"]));
        let before_usage = text.split("Usage:").next().unwrap_or_default();
        // A summary line, a blank line, then at least one more paragraph.
        assert!(
            before_usage.trim().contains("\n\n"),
            "ddiff {cmd} --help has no description beyond its summary:\n{text}"
        );
        if with_example.contains(cmd) {
            assert!(
                text.contains(&format!("Example: ddiff {cmd} ")),
                "ddiff {cmd} --help has no example:\n{text}"
            );
        }
    }
}
