//! fio's job file syntax, and fio's command-line jobs, as sections of
//! options. A `[global]` section applies to the jobs after it (there may
//! be several); `;` and `#` start comment lines; `key=value` or a bare
//! `key` (a true boolean). On the command line, options before the first
//! `--name` are global and `--name=X` starts a job.

/// One `key[=value]`, with where it came from for error messages.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Opt {
    pub(crate) key: String,
    pub(crate) value: Option<String>,
    pub(crate) at: String,
}

/// A job with every option that applies to it: globals first, its own
/// after (later wins).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JobSection {
    pub(crate) name: String,
    pub(crate) options: Vec<Opt>,
    /// Options that came from `[global]` (reported as fio's "global options").
    pub(crate) globals: usize,
}

/// Parse a job file's text. `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<JobSection>, String> {
    let mut global: Vec<Opt> = Vec::new();
    let mut jobs: Vec<JobSection> = Vec::new();
    // None: before any section; Some(None): in a [global]; Some(Some(i)): in job i.
    let mut current: Option<Option<usize>> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("{at}: section header {line:?} has no closing ']'"))?
                .trim();
            if name.is_empty() {
                return Err(format!("{at}: empty section name"));
            }
            if name == "global" {
                current = Some(None);
            } else {
                if jobs.iter().any(|j| j.name == name) {
                    return Err(format!("{at}: job [{name}] is defined twice"));
                }
                jobs.push(JobSection { name: name.to_owned(), options: global.clone(), globals: global.len() });
                current = Some(Some(jobs.len() - 1));
            }
            continue;
        }
        let opt = option(line, &at)?;
        match current {
            None => {
                return Err(format!("{at}: option {:?} is outside any section (start with [global] or [job])", opt.key))
            }
            Some(None) => global.push(opt),
            Some(Some(i)) => jobs[i].options.push(opt),
        }
    }
    Ok(jobs)
}

/// `key=value` or `key`, whitespace around both trimmed.
fn option(text: &str, at: &str) -> Result<Opt, String> {
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
        None => (text.trim(), None),
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{at}: {text:?} is not an option (key=value or a bare key)"));
    }
    Ok(Opt { key: key.to_ascii_lowercase(), value, at: at.to_owned() })
}

/// Command-line jobs from `--key=value` arguments, fio style. Globals
/// before the first `--name` also apply to jobs from job files.
pub(crate) fn from_args(args: &[String]) -> Result<(Vec<Opt>, Vec<JobSection>), String> {
    let mut global = Vec::new();
    let mut jobs: Vec<JobSection> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let at = format!("argument {}", i + 1);
        let body = a.strip_prefix("--").ok_or_else(|| format!("{at}: {a:?} is not a --key=value option"))?;
        let opt = option(body, &at)?;
        if opt.key == "name" {
            let name =
                opt.value.clone().filter(|v| !v.is_empty()).ok_or_else(|| format!("{at}: --name needs a value"))?;
            jobs.push(JobSection { name, options: global.clone(), globals: global.len() });
        } else if let Some(job) = jobs.last_mut() {
            job.options.push(opt);
        } else {
            global.push(opt);
        }
    }
    Ok((global, jobs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(j: &JobSection) -> Vec<(String, Option<String>)> {
        j.options.iter().map(|o| (o.key.clone(), o.value.clone())).collect()
    }

    #[test]
    fn globals_apply_to_the_jobs_after_them() {
        let text = "; a comment\n# another\n[global]\nbs=4k\niodepth = 8\n\n[write]\nrw=write\ntime_based\n\
                    [global]\nbs=1m\n[read]\nrw=randread\n";
        let jobs = parse(text, "t.fio").expect("ok");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].name, "write");
        assert_eq!(
            keys(&jobs[0]),
            vec![
                ("bs".into(), Some("4k".into())),
                ("iodepth".into(), Some("8".into())),
                ("rw".into(), Some("write".into())),
                ("time_based".into(), None)
            ]
        );
        assert_eq!(jobs[0].globals, 2);
        // The second [global] adds to the first, for jobs after it only.
        assert_eq!(jobs[1].globals, 3);
        assert_eq!(jobs[1].options[2].value.as_deref(), Some("1m"));
        assert_eq!(jobs[1].options[3].at, "t.fio:13");
    }

    #[test]
    fn malformed_files_say_where() {
        assert_eq!(
            parse("bs=4k\n", "f").expect_err("must be refused"),
            "f:1: option \"bs\" is outside any section (start with [global] or [job])"
        );
        assert!(parse("[job\n", "f").expect_err("must be refused").starts_with("f:1: section header"));
        assert!(parse("[]\n", "f").expect_err("must be refused").contains("empty section name"));
        assert!(parse("[a]\n[a]\n", "f").expect_err("must be refused").contains("defined twice"));
        assert!(parse("[a]\nb s=1\n", "f")
            .expect_err("must be refused")
            .starts_with("f:2: \"b s=1\" is not an option"));
    }

    #[test]
    fn command_line_jobs_start_at_name() {
        let args: Vec<String> =
            ["--bs=64k", "--name=a", "--rw=write", "--name=b", "--rw=read"].iter().map(|s| s.to_string()).collect();
        let (global, jobs) = from_args(&args).expect("ok");
        assert_eq!(global.len(), 1);
        assert_eq!(jobs.len(), 2);
        assert_eq!(keys(&jobs[1]), vec![("bs".into(), Some("64k".into())), ("rw".into(), Some("read".into()))]);
        assert!(from_args(&["bs=4k".to_string()]).expect_err("must be refused").contains("not a --key=value option"));
        assert!(from_args(&["--name=".to_string()]).expect_err("must be refused").contains("--name needs a value"));
    }
}
