//! The command-line conventions users of other tools expect, checked on the real binary: shell
//! completions and a manual page made from the flags themselves, NO_COLOR, and durations written
//! the way unit files write them.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{temp_dir, BIN};

fn app(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("NOTIFY_SOCKET")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Runs `shell args... script` on a script written to a file; the shell's own verdict on it.
fn shell_accepts(shell: &str, args: &[&str], script: &str) -> Output {
    let dir = temp_dir();
    let path = dir.path().join("completion");
    std::fs::write(&path, script).unwrap();
    Command::new(shell).args(args).arg(&path).output().unwrap_or_else(|e| panic!("{shell}: {e}"))
}

#[test]
fn bash_completes_the_flags_subcommands_and_values() {
    let script = stdout(&app(&["completions", "bash"], &[]));
    // Loaded into a real bash, the function completes what the user typed so far.
    let complete = |words: &str| {
        let probe = format!(
            "source /dev/stdin; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _app app \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let mut child = Command::new("bash")
            .args(["-c", &probe])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let flags = complete("app --drain");
    assert_eq!(flags.trim(), "--drain-timeout", "{flags}");
    let subcommands = complete("app st");
    assert!(subcommands.lines().any(|w| w == "status"), "{subcommands}");
    let modes = complete("app --mode ''");
    assert!(modes.contains("fork") && modes.contains("cluster"), "{modes}");
    let shells = complete("app completions ''");
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.lines().any(|w| w == shell), "{shells}");
    }
}

#[test]
fn zsh_and_fish_completions_are_valid_scripts_for_those_shells() {
    let zsh = stdout(&app(&["completions", "zsh"], &[]));
    assert!(zsh.starts_with("#compdef app"), "{zsh}");
    assert!(zsh.contains("--drain-timeout") && zsh.contains("status"));
    let checked = shell_accepts("zsh", &["-n"], &zsh);
    assert!(checked.status.success(), "zsh -n: {}", String::from_utf8_lossy(&checked.stderr));

    let fish = stdout(&app(&["completions", "fish"], &[]));
    assert!(fish.contains("complete -c app") && fish.contains("drain-timeout"), "{fish}");
    let checked = shell_accepts("fish", &["--no-execute"], &fish);
    assert!(checked.status.success(), "fish: {}", String::from_utf8_lossy(&checked.stderr));

    let refused = app(&["completions", "tcsh"], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("tcsh"));
}

#[test]
fn the_manual_page_is_made_from_the_flags_and_man_renders_it() {
    let page = stdout(&app(&["man"], &[]));
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{}", &page[..200.min(page.len())]);
    assert!(page.contains(".TH app 1"), "a section 1 page");
    let dir = temp_dir();
    let path = dir.path().join("app.1");
    std::fs::write(&path, &page).unwrap();
    // man(1) itself formats it, as `man app` will once installed.
    let shown =
        Command::new("man").args(["-l", "-P", "cat"]).arg(&path).env("MANWIDTH", "100").output().unwrap();
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let text = String::from_utf8_lossy(&shown.stdout);
    for expected in
        ["NAME", "SYNOPSIS", "--drain-timeout", "APP_DRAIN_TIMEOUT", "status", "completions", "NO_COLOR"]
    {
        assert!(text.contains(expected), "man app does not show {expected}:\n{text}");
    }
}

#[test]
fn no_color_turns_colours_off_everywhere_clicolor_force_turns_them_on() {
    let has_escape = |bytes: &[u8]| bytes.contains(&0x1b);
    // clap's errors.
    let forced = app(&["--no-such-flag"], &[("CLICOLOR_FORCE", "1")]);
    assert!(has_escape(&forced.stderr), "{}", String::from_utf8_lossy(&forced.stderr));
    let plain = app(&["--no-such-flag"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!has_escape(&plain.stderr) && plain.stderr.starts_with(b"error:"));

    // The server's own log lines.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let forced = app(&["--port", &port], &[("CLICOLOR_FORCE", "1")]);
    let text = String::from_utf8_lossy(&forced.stderr);
    assert!(text.contains("cannot listen on") && has_escape(&forced.stderr), "{text}");
    let plain = app(&["--port", &port], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    let text = String::from_utf8_lossy(&plain.stderr);
    assert!(text.contains("cannot listen on") && !has_escape(&plain.stderr), "{text}");

    // The status table.
    let forced = app(&["status", "--ports", &port], &[("CLICOLOR_FORCE", "1")]);
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b[33munreachable\x1b[0m"));
    let plain = app(&["status", "--ports", &port], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    let table = String::from_utf8_lossy(&plain.stdout);
    assert!(table.contains("│ unreachable") && !has_escape(&plain.stdout), "{table}");
}

/// Every flag of the server that takes a duration.
const DURATION_FLAGS: &[&str] = &[
    "--drain-timeout",
    "--header-timeout",
    "--randoms-wait",
    "--sqlite-busy-timeout",
    "--chat-ping-interval",
    "--body-timeout",
    "--worker-ready-timeout",
];

/// Flags that take a retention rather than a wait: the same forms, hours and days included.
const LONG_DURATION_FLAGS: &[&str] = &["--idempotency-retention"];

const GOOD_DURATIONS: &[&str] = &["1min", "1.5s", "500ms", "10", "1min 30s", "2.5"];
const BAD_DURATIONS: &[&str] = &["5 parsecs", "soon", "1.2.3s", "2h"];

#[test]
fn every_duration_flag_takes_what_systemd_and_humantime_write() {
    let check = |flag: &str, good: &[&str], bad: &[&str]| {
        for value in good {
            // Only the port is wrong, so the server stops before serving: the duration passed.
            let output = app(&[flag, value, "--port", "http"], &[]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("--port") && !stderr.contains(flag), "{flag} {value}: {stderr}");
        }
        for value in bad {
            let output = app(&[flag, value], &[]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
            assert!(stderr.contains(flag), "{flag} {value} names the flag: {stderr}");
        }
    };
    for flag in DURATION_FLAGS {
        check(flag, GOOD_DURATIONS, BAD_DURATIONS);
    }
    let long_good: Vec<&str> = GOOD_DURATIONS.iter().copied().chain(["2h", "7days"]).collect();
    for flag in LONG_DURATION_FLAGS {
        check(flag, &long_good, &["5 parsecs", "soon", "1.2.3s", "0"]);
    }
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    for value in GOOD_DURATIONS {
        let output = app(&["status", "--ports", &gone, "--watch", "--count", "1", "--interval", value], &[]);
        assert!(output.status.success(), "--interval {value}: {}", String::from_utf8_lossy(&output.stderr));
    }
    for value in BAD_DURATIONS {
        let output = app(&["status", "--ports", &gone, "--watch", "--interval", value], &[]);
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("--interval"), "--interval {value}");
    }
}
