//! The README's `--help` block is the binary's real `--help` output, word for word.

use std::process::Command;

#[test]
fn the_readme_shows_the_real_help() {
    let readme = include_str!("../../README.md");
    let start = "$ cargo run -p native -- --help\n";
    let block = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("README.md has a `cargo run -p native -- --help` block");
    // No environment: clap would show the values of the options' variables.
    let out = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    if block != help {
        let first = block
            .lines()
            .zip(help.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(block.lines().count().min(help.lines().count()));
        panic!(
            "README.md's --help block differs from `sessionserver --help` from line {} on; \
             paste the real output:\n{help}",
            first + 1
        );
    }
}
