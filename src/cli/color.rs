//! Whether to colour output, by the conventions clap follows too (so `--help`, errors, logs and
//! `app status` agree): `NO_COLOR` set to anything non-empty turns colours off
//! (https://no-color.org), `CLICOLOR_FORCE` turns them on without a terminal, otherwise a
//! terminal gets colours and a pipe or a file does not.

/// Whether a stream gets ANSI colours; `is_terminal` says whether it is a terminal.
pub fn wanted(is_terminal: bool) -> bool {
    // no-color.org: any non-empty value, "0" included; CLICOLOR_FORCE: any value but "0".
    if std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty()) {
        return false;
    }
    std::env::var_os("CLICOLOR_FORCE").is_some_and(|value| !value.is_empty() && value != "0") || is_terminal
}

/// `text` in an SGR colour (`32` green, `31` red, `33` yellow) when `on`.
pub fn paint(text: &str, sgr: &str, on: bool) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
