//! Colours in `app status`'s output, by the conventions clap follows too (so `--help`, errors, logs
//! and `app status` agree): see [`wanted`], which the process's logs use as well and so lives with
//! them (the process layer does not depend on the command line).

pub(crate) use crate::process::logging::colours_wanted as wanted;

/// `text` in an SGR colour (`32` green, `31` red, `33` yellow) when `on`.
pub(crate) fn paint(text: &str, sgr: &str, on: bool) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
