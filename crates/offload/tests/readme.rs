//! Keeps the README and the guides in `docs/` honest: every `offload ...` and `cargo run -- ...` command in
//! their shell blocks is run against a real server (or, for commands that do not return — `serve`, `worker`,
//! `bench` — and those that need another database, parsed by the real binary with `--help` added, which
//! checks every argument before it), and every relative link points to a file that exists and, with a
//! `#fragment`, to a heading in it.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Server, bin};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The README first, then every guide, in name order.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("read docs/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn name(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A piece of a Markdown document: prose, or a fenced block with its info string.
enum Part<'a> {
    Prose(Vec<&'a str>),
    Fence { info: &'a str, lines: Vec<&'a str> },
}

/// Splits a document into prose and fenced code blocks (```` ``` ```` fences only, as these documents use).
fn parts(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut prose = Vec::new();
    let mut fence: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match (&mut fence, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                parts.push(Part::Prose(std::mem::take(&mut prose)));
                fence = Some((info.trim(), Vec::new()));
            }
            (Some(_), Some(_)) => {
                let (info, lines) = fence.take().expect("inside a fence");
                parts.push(Part::Fence { info, lines });
            }
            (Some((_, lines)), None) => lines.push(line),
            (None, None) => prose.push(line),
        }
    }
    assert!(fence.is_none(), "a code fence is never closed");
    parts.push(Part::Prose(prose));
    parts
}

/// The logical lines of a shell block: continuation lines (ending in `\`) joined.
fn shell_lines(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in lines {
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Splits a shell command line into words as `sh` would for these simple commands: single and double quotes,
/// backslash escapes, and a `#` comment at the start of a word. `None` for a line using what this does not
/// model (variables, substitutions, pipes, redirections outside quotes).
fn words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '#' if word.is_none() => break,
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            w.push(chars.next()?);
                        }
                        '$' | '`' => return None,
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            '$' | '`' | '|' | '&' | ';' | '<' | '>' | '(' | ')' => return None,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// The arguments of an `offload` command: `offload ARGS` or `cargo run [--release] -- ARGS` (not another
/// package's binary). `None` for any other command.
fn offload_args(words: &[String]) -> Option<Vec<String>> {
    let start = words.iter().position(|w| !is_assignment(w))?;
    let words = &words[start..];
    match words.first()?.as_str() {
        "offload" => Some(words[1..].to_vec()),
        "cargo" if words.get(1)? == "run" => {
            let separator = words.iter().position(|w| w == "--")?;
            let options = &words[2..separator];
            options
                .iter()
                .all(|o| matches!(o.as_str(), "--release" | "--locked" | "-q" | "--quiet"))
                .then(|| words[separator + 1..].to_vec())
        }
        _ => None,
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// One command found in a document, with where it was found.
struct Found {
    doc: String,
    line: String,
    args: Vec<String>,
}

fn commands(doc: &Path) -> Vec<Found> {
    let text = read(doc);
    let mut found = Vec::new();
    for part in parts(&text) {
        let Part::Fence { info, lines } = part else {
            continue;
        };
        if !matches!(info, "sh" | "bash" | "shell") {
            continue;
        }
        for line in shell_lines(&lines) {
            let trimmed = line.trim();
            let mentions = trimmed.starts_with("offload ") || trimmed.contains("cargo run");
            let Some(words) = words(trimmed) else {
                assert!(
                    !mentions,
                    "{}: cannot read this command (quote it plainly): {trimmed}",
                    name(doc)
                );
                continue;
            };
            if let Some(args) = offload_args(&words) {
                found.push(Found {
                    doc: name(doc),
                    line: trimmed.to_owned(),
                    args,
                });
            }
        }
    }
    found
}

/// Commands checked by parsing only: they do not return (`serve`, `worker`, `bench`) or work on a database
/// named on the command line (`migrate`, `push secret`).
fn parse_only(args: &[String]) -> bool {
    let first = args.iter().find(|a| !a.starts_with('-'));
    matches!(
        first.map(String::as_str),
        Some("serve" | "worker" | "bench" | "migrate" | "push")
    )
}

/// `--help` added before a `--` separator (or at the end): clap checks every argument before it, then prints
/// the help and exits 0, so success means the command line parses.
fn with_help(args: &[String]) -> Vec<String> {
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut out = args[..at].to_vec();
    out.push("--help".into());
    out.extend_from_slice(&args[at..]);
    out
}

#[test]
fn every_command_in_the_readme_and_the_guides_parses_or_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for doc in documents() {
        for found in commands(&doc) {
            let (args, how) = if parse_only(&found.args) {
                (with_help(&found.args), "parsed")
            } else {
                (found.args.clone(), "run")
            };
            let out = Command::new(bin())
                .args(&args)
                .env("OFFLOAD_SERVER", &server.url)
                .env_remove("OFFLOAD_TOKEN")
                .current_dir(dir.path())
                .output()
                .expect("run offload");
            if out.status.success() {
                checked.push(format!("{how}: {}", found.args.join(" ")));
            } else {
                failures.push(format!(
                    "{}: `{}` ({how}) failed: {}",
                    found.doc,
                    found.line,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} commands checked:\n{}",
        checked.len(),
        checked.join("\n")
    );
}

#[test]
fn the_readme_names_the_two_commands() {
    let readme = commands(&root().join("README.md"));
    let first_words: HashSet<&str> = readme
        .iter()
        .filter_map(|f| f.args.first().map(String::as_str))
        .collect();
    for expected in ["serve", "job", "worker", "schedule"] {
        assert!(
            first_words.contains(expected),
            "the README shows no `{expected}` command"
        );
    }
    let text = read(&root().join("README.md"));
    let test_command = parts(&text).into_iter().any(|p| {
        matches!(p, Part::Fence { info: "sh", lines } if lines.iter().any(|l| l.trim() == "scripts/test"))
    });
    assert!(test_command, "the README does not show `scripts/test`");
    let script = std::fs::metadata(root().join("scripts/test")).expect("scripts/test exists");
    assert!(
        std::os::unix::fs::PermissionsExt::mode(&script.permissions()) & 0o111 != 0,
        "scripts/test is not executable"
    );
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    let text = strip_inline(heading);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Heading text as displayed: code spans' backticks dropped, links reduced to their text.
fn strip_inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](").zip(after.find(')')) {
            Some((close, end)) if close < end => {
                out.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace('`', "")
}

/// Every heading's anchor in a document (repeated headings get `-1`, `-2`, ... as on GitHub).
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for part in parts(text) {
        let Part::Prose(lines) = part else { continue };
        for line in lines {
            let Some(heading) = line.strip_prefix('#') else {
                continue;
            };
            let heading = heading.trim_start_matches('#');
            if !heading.starts_with(' ') {
                continue;
            }
            let base = slug(heading);
            let mut anchor = base.clone();
            let mut n = 0;
            while seen.contains(&anchor) {
                n += 1;
                anchor = format!("{base}-{n}");
            }
            seen.insert(anchor);
        }
    }
    seen
}

/// The targets of inline links `[text](target)` in prose, outside code spans.
fn links(text: &str) -> Vec<String> {
    let mut prose = String::new();
    for part in parts(text) {
        if let Part::Prose(lines) = part {
            for line in lines {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    // Code spans may run over a line break; drop them.
    let mut outside = String::new();
    for (i, piece) in prose.split('`').enumerate() {
        if i % 2 == 0 {
            outside.push_str(piece);
        }
    }
    let mut found = Vec::new();
    let mut rest = outside.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        found.push(after[..end].trim().to_owned());
        rest = &after[end.min(after.len())..];
    }
    found
}

#[test]
fn every_relative_link_points_to_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = read(&doc);
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().expect("a parent").join(path)
            };
            if !file.exists() {
                broken.push(format!("{}: `{target}`: no such file", name(&doc)));
                continue;
            }
            if let Some(fragment) = fragment {
                let ok = file.extension().is_some_and(|e| e == "md")
                    && anchors(&read(&file)).contains(fragment);
                if !ok {
                    broken.push(format!(
                        "{}: `{target}`: no heading with that anchor",
                        name(&doc)
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked >= 12,
        "only {checked} relative links found: the README should link every guide"
    );
}

#[test]
fn headings_words_and_links_are_read_as_github_and_sh_read_them() {
    assert_eq!(
        slug("Schedules in `offload.toml`"),
        "schedules-in-offloadtoml"
    );
    assert_eq!(
        slug("`offload worker`: any command as a worker"),
        "offload-worker-any-command-as-a-worker"
    );
    assert_eq!(
        slug("Push delivery (HTTP targets)"),
        "push-delivery-http-targets"
    );
    assert_eq!(
        words(r#"worker -q x -- sh -c 'cat; echo "{\"a\": 1}"'  # comment"#).unwrap(),
        [
            "worker",
            "-q",
            "x",
            "--",
            "sh",
            "-c",
            r#"cat; echo "{\"a\": 1}""#
        ]
    );
    assert_eq!(
        words(r#"echo "a \"b\"" c\ d"#).unwrap(),
        ["echo", r#"a "b""#, "c d"]
    );
    assert!(words("offload job ls | head").is_none());
    let cargo = words("cargo run --release -- job ls --queue q").unwrap();
    assert_eq!(offload_args(&cargo).unwrap(), ["job", "ls", "--queue", "q"]);
    let other = words("cargo run -p offload-example-worker -- x").unwrap();
    assert!(offload_args(&other).is_none());
    assert_eq!(
        links("see [a](docs/a.md#x), `[not](this.md)` and [b](https://e.com)"),
        ["docs/a.md#x", "https://e.com"]
    );
    let doc = "# Title\n```sh\n# not a heading\n```\n## Title\n";
    assert_eq!(
        anchors(doc),
        HashSet::from(["title".to_owned(), "title-1".to_owned()])
    );
}
