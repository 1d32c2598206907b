//! The README stays true to the binary: its `edgeplane routes` example is
//! the command's real output, its command synopsis lists every subcommand
//! and flag `--help` knows, and the files it points at exist.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_edgeplane");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap_or_else(|e| panic!("README.md: {e}"))
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run edgeplane {args:?}: {e}"));
    assert!(out.status.success(), "edgeplane {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fenced block after the line containing `marker`.
fn block_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("README has no `{marker}`"));
    let rest = &text[start..];
    let open = rest.find("```").expect("a fenced block after the marker");
    let body_start = open + rest[open..].find('\n').expect("fence line") + 1;
    let close = rest[body_start..].find("```").expect("closing fence") + body_start;
    rest[body_start..close].to_string()
}

#[test]
fn routes_example_is_the_real_output() {
    let shown = block_after(&readme(), "<!-- routes-example:");
    let real = run(&["routes", "examples/websocket-reasons"]);
    assert_eq!(
        shown, real,
        "README's `edgeplane routes examples/websocket-reasons` block is stale; paste the command's output"
    );
    // Every kind of reason is shown: the listener default, the gateway's
    // upgrades, a route override either way, and a delegate's inheritance.
    for reason in [
        "on: listener default",
        "off: gateway upgrades",
        "on: route override",
        "off: route override",
        "inherited from delegate route",
    ] {
        assert!(shown.contains(reason), "{reason}");
    }
}

/// Long flags in a `--help` text, without `--help`/`--version`.
fn flags(help: &str) -> Vec<String> {
    let mut out: Vec<String> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-").map_or(l, |_| {
                // `-h, --help` or `--flag <X>`
                l.split_once("--").map_or(l, |(_, r)| r)
            });
            let name = l.split(|c: char| c.is_whitespace() || c == '=').next()?;
            (!name.is_empty() && help.contains(&format!("--{name}"))).then(|| format!("--{name}"))
        })
        .filter(|f| f != "--help" && f != "--version" && f != "--log-json")
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn command_synopsis_lists_every_subcommand_and_flag() {
    let synopsis = block_after(&readme(), "## Commands");
    let top = run(&["--help"]);
    let subcommands: Vec<&str> = top
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("Options:").next())
        .expect("a Commands section in --help")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(subcommands.len() >= 8, "{subcommands:?}");
    let mut checked = 0;
    for sub in subcommands {
        // The synopsis lines of `sub`: its first line and the indented
        // continuation lines after it.
        let mut lines = synopsis.lines().skip_while(|l| {
            !l.starts_with(&format!("edgeplane {sub} ")) && *l != format!("edgeplane {sub}")
        });
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("README's command synopsis lacks `edgeplane {sub}`"));
        let mut text = first.to_string();
        for l in lines.take_while(|l| l.starts_with(' ')) {
            text.push_str(l);
        }
        let help = run(&[sub, "--help"]);
        let options = help.split("Options:").nth(1).unwrap_or_default();
        for flag in flags(options) {
            checked += 1;
            assert!(
                text.contains(&flag),
                "README's synopsis of `edgeplane {sub}` lacks {flag}: {text}"
            );
        }
    }
    // serve, bootstrap and status alone have more than 20 flags.
    assert!(checked > 20, "only {checked} flags found in --help");
}

#[test]
fn files_the_readme_points_at_exist() {
    let text = readme();
    for path in [
        "docs/FIELDS.md",
        "docs/status-page.png",
        "examples/websocket-reasons",
        "examples/manifests/virtualservice.yaml",
        "scripts/run-stack",
        "scripts/test",
        "scripts/setup",
        "docker-compose.yml",
    ] {
        assert!(text.contains(path), "README does not mention {path}");
        assert!(
            root().join(path).exists(),
            "README mentions {path}, which does not exist"
        );
    }
}

/// The quick-start port table matches what `scripts/run-stack` starts.
#[test]
fn quick_start_ports_are_the_stacks() {
    let text = readme();
    let stack =
        std::fs::read_to_string(root().join("scripts/run-stack")).expect("scripts/run-stack");
    let table = text
        .split("| port  | what |")
        .nth(1)
        .expect("the quick-start port table");
    let ports: Vec<&str> = table
        .lines()
        .skip(2) // the rest of the header line, the separator
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_start_matches('|').split('|').next())
        .map(str::trim)
        .collect();
    assert!(ports.len() >= 5, "{ports:?}");
    let manifests = std::fs::read_to_string(root().join("examples/manifests/gateway.yaml"))
        .unwrap_or_default()
        + &std::fs::read_to_string(root().join("examples/manifests/upstream.yaml"))
            .unwrap_or_default();
    for port in ports {
        assert!(
            stack.contains(port) || manifests.contains(port),
            "README's quick-start port {port} is not in scripts/run-stack or the sample manifests"
        );
    }
}

/// What a first run costs is said before it is paid: the first build's
/// time on the 2 cores CI has, and that Envoy's startup log is long.
#[test]
fn quick_start_says_what_the_first_run_costs() {
    let text = readme();
    let quick = text
        .split("## Quick start")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a quick start section");
    assert!(quick.contains("on 2 cores"), "{quick}");
    assert!(quick.contains("min"), "the build time, in minutes: {quick}");
    assert!(quick.contains("Envoy's startup log is"), "{quick}");
}
