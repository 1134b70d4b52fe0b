//! `app completions SHELL` and `app man`: the shell completions and the manual page, generated
//! from the clap definitions in `config`, so neither can drift from `--help`. The Debian and Nix
//! packages run these at build time and install the output.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::config::Config;

pub(crate) fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Config::command();
    clap_complete::generate(shell, &mut command, "app", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub(crate) fn man() -> ExitCode {
    let mut page = Vec::new();
    if let Err(error) = clap_mangen::Man::new(Config::command()).render(&mut page) {
        eprintln!("app man: {error}");
        return ExitCode::FAILURE;
    }
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("app man: {error}");
            ExitCode::FAILURE
        }
    }
}
